"""Progress within a long clip (`clip_progress`, `Progress.status`): how far a worker has decoded the clip it
decodes, shown while it decodes. At the default, CLIP_STATUS_SECONDS of decoding before a clip's first line; here
0 s, so that a short clip shows its status after each packet decode reads."""
import io
import re
import sys

import pytest
from media_fixtures import require_extract, write_video

from mmsa_atsuko.progress import Progress

STATUS = re.compile(r"^extract: (\d+)/(\d+) videos, \d+ s; (clip0\d): (\d+\.\d)/(\d+\.\d) s decoded, \d+ s$")


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Two clips of 1.2 s (write_video's): 30 frames at 25 fps, 1.2 s of AAC."""
    require_extract()
    root = tmp_path_factory.mktemp("clips")
    for i in range(2):
        write_video(root / f"clip0{i}.mp4", face=False, seed=i)
    return root


def _packets(path) -> int:
    """The packets of `path` that decode reads (PyAV's demux of its audio and video, the flush packets at the
    end of each stream included): decode reports after each."""
    import av
    with av.open(str(path)) as container:
        return sum(1 for _ in container.demux(container.streams.audio[0], container.streams.video[0]))


def _run(clips, tmp_path, names, jobs, seconds, monkeypatch) -> list:
    from mmsa_atsuko.data.extract import clip_progress, videos
    monkeypatch.setattr(clip_progress, "CLIP_STATUS_SECONDS", seconds)     # given to the workers as they start
    todo = [(name, clips / f"{name}.mp4", tmp_path / f"{name}.npz") for name in names]
    lines = []
    assert videos.run_videos(todo, "opensmile", 10.0, jobs, 600.0, lines.append) == {}
    return lines


def test_a_clip_decoded_past_the_threshold_shows_how_far_it_is_decoded(clips, tmp_path, monkeypatch):
    """At the default a clip of 4K30 may decode for minutes with no line (the Progress counted finished clips). Its
    status comes after each packet once the threshold has passed, before the clip is counted: the seconds decoded
    (the longer of its audio and video) of the 1.2 s its header declares, up to the 1.216 s its AAC decodes to
    (whole frames of 1024 samples), shown as 1.2."""
    *status, count = _run(clips, tmp_path, ["clip00"], 1, 0.0, monkeypatch)
    assert re.match(r"^extract: 1/1 videos, \d+ s$", count)
    parsed = [STATUS.match(line) for line in status]
    assert None not in parsed, status
    assert len(parsed) == _packets(clips / "clip00.mp4")
    assert {m.group(1, 2, 3, 5) for m in parsed} == {("0", "1", "clip00", "1.2")}
    decoded = [float(m.group(4)) for m in parsed]
    assert decoded == sorted(decoded) and decoded[0] <= 0.1 and decoded[-1] == 1.2


def test_a_clip_decoded_in_less_than_the_threshold_shows_nothing_new(clips, tmp_path):
    """The default threshold (30 s of decoding) is far above the 1.2 s clip's: the lines are those from before."""
    from mmsa_atsuko.data.extract import clip_progress, videos
    assert clip_progress.CLIP_STATUS_SECONDS == 30.0
    lines = []
    todo = [(name, clips / f"{name}.mp4", tmp_path / f"{name}.npz") for name in ("clip00", "clip01")]
    assert videos.run_videos(todo, "opensmile", 10.0, 1, 600.0, lines.append) == {}
    assert [line.split(",")[0] for line in lines] == ["extract: 1/2 videos", "extract: 2/2 videos"]


def test_the_workers_of_a_pool_show_each_clip_s_status_through_one_pipe(clips, tmp_path, monkeypatch):
    """Under --jobs 2 both workers write to one pipe; every status of each clip is shown, none lost or torn."""
    lines = _run(clips, tmp_path, ["clip00", "clip01"], 2, 0.0, monkeypatch)
    assert re.match(r"^extract: 2/2 videos, \d+ s$", lines[-1])
    status = [STATUS.match(line) for line in lines if ";" in line]
    assert None not in status
    assert len(lines) - len(status) == 2            # and the two counts
    for name in ("clip00", "clip01"):
        decoded = [float(m.group(4)) for m in status if m.group(3) == name]
        assert len(decoded) == _packets(clips / f"{name}.mp4") and decoded == sorted(decoded)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_status_is_a_line_off_a_terminal_the_bar_s_postfix_on_one_and_nothing_when_quiet(monkeypatch):
    lines = []
    progress = Progress(4, lines.append)
    progress.update()
    progress.status("clip01: 2.0/5.0 s decoded, 31 s")
    assert re.match(r"^extract: 1/4 videos, \d+ s; clip01: 2\.0/5\.0 s decoded, 31 s$", lines[-1])
    assert len(lines) == 2          # the count's own line (a tenth of 4 is 1), and the status
    Progress(4, lines.append, quiet=True).status("clip01: 2.0/5.0 s decoded, 31 s")
    assert len(lines) == 2
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    bar = Progress(4, lines.append)
    bar.status("clip01: 2.0/5.0 s decoded, 31 s")
    assert bar.bar.postfix == "clip01: 2.0/5.0 s decoded, 31 s" and "clip01: 2.0/5.0 s decoded" in terminal.getvalue()
    bar.update()                   # the clip is done: its status goes
    assert bar.bar.postfix == ""
    bar.close()
    assert len(lines) == 2
