"""Stand-ins for `clip_workers.extract_one`, at module level so that a worker process finds them by name.

The workers are no fork of the test's process (forkserver): a monkeypatch made there is not in them. The caller sends
`extract_one` by reference (a pool's task, a ClipWorker's target), so a test sets `clip_workers.extract_one` to one of
these, and the worker imports this module (light: no torch) and runs it; the real extract_one they call is the
worker's own.
"""
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np
from media_fixtures import BROKEN, CLIPS, NO_FACE

from mmsa_atsuko.data.extract import clip_workers, frame_features

REAL_EXTRACT = clip_workers.extract_one        # taken at import: in the test's process, before any monkeypatch


def hang(video, *_):
    """A decoder that hangs: says so (with this worker's pid and its parent's), then sleeps."""
    os.write(1, f"hung {os.getpid()} {os.getppid()}\n".encode())    # one write: a pool's workers share the pipe
    time.sleep(3600)


def sigint_to_self(*_):
    """Ctrl-C, as the terminal sends it to the whole process group, reaching this worker mid-clip: None where the
    worker ignores it, else what it raised."""
    try:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0)           # the handler runs here at the latest
    except KeyboardInterrupt:
        return "KeyboardInterrupt"
    return None


def started_then_wait_for_go(video, cache, *args):
    """Says it started the clip (a file `started-<clip>` in $CLIP_MARKERS), then extracts it once the test has put
    a file `go` there, as the real extract_one."""
    markers = Path(os.environ["CLIP_MARKERS"])
    (markers / f"started-{Path(video).stem}").touch()
    deadline = time.monotonic() + 120
    while not (markers / "go").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    return REAL_EXTRACT(video, cache, *args)


def kill_self(*_):
    """The worker's end, as the OOM killer's."""
    os.kill(os.getpid(), signal.SIGKILL)


def killed_at_start(*_):
    """A worker killed as it starts, before it takes a clip (a ClipWorker's `_serve`, a pool's initializer)."""
    os.kill(os.getpid(), signal.SIGKILL)


def no_space(video, cache, *_):
    """A cache file that cannot be written: a full disk."""
    import errno
    raise OSError(errno.ENOSPC, "No space left on device", cache)


def modules_of_note(*_):
    """A reason naming the libraries this worker holds that it never uses (None: none)."""
    held = [name for name in ("torch", "transformers", "tokenizers") if name in sys.modules]
    return f"imported {', '.join(held)}" if held else None


def no_audio_for_v07(video, *_):
    return "no audio stream" if video == "v07" else None


def killed_on_clip03(video, cache, *args):
    """clip03 kills its worker (SIGKILL); the rest are extracted."""
    if Path(video).stem == NO_FACE:
        os.kill(os.getpid(), signal.SIGKILL)
    return REAL_EXTRACT(video, cache, *args)


def segv_on_clip03(video, cache, *args):
    """clip03 crashes its worker (SIGSEGV, as a decoder would); the rest are extracted."""
    if Path(video).stem == NO_FACE:
        import faulthandler
        faulthandler.disable()           # it would print this process's stacks
        os.kill(os.getpid(), signal.SIGSEGV)
    return REAL_EXTRACT(video, cache, *args)


def killed_on_clip03_last(video, cache, *args):
    """clip03 kills its worker once the corrupt video has been tried and the other clips' cache files exist in
    its cache folder, and the parent has had half a second to read their results."""
    folder = Path(cache).parent
    if Path(video).stem == BROKEN:
        (folder / "broken-tried").touch()
    if Path(video).stem == NO_FACE:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (
                (folder / "broken-tried").exists() and len(list(folder.glob("clip*.npz"))) == len(CLIPS) - 1):
            time.sleep(0.05)
        time.sleep(0.5)      # lets the parent read the others' results, as the old count needed
        os.kill(os.getpid(), signal.SIGKILL)
    return REAL_EXTRACT(video, cache, *args)


def nan_vision_for_a(video, cache, *args):
    """The extractor gives the video named a a vision row with a NaN; extract_one writes it as it would."""
    real = frame_features.video_features

    def with_nan(path, *a, **k):
        features = real(path, *a, **k)
        features["vision"][0, 0] = np.nan
        return features

    if Path(video).stem != "a":
        return REAL_EXTRACT(video, cache, *args)
    frame_features.video_features = with_nan      # in this worker, for this clip
    try:
        return REAL_EXTRACT(video, cache, *args)
    finally:
        frame_features.video_features = real


def hang_at_start(*_):
    """A worker that hangs as it starts, before it takes a clip (a ClipWorker's `_serve`)."""
    time.sleep(3600)


def without_alive_fd_attribute(main_pid: int) -> None:
    """A worker under a Python whose fork server names its "alive" pipe otherwise: `parent_death.die_with` must
    still tell that its parent is main_pid's fork server, and let it live."""
    from multiprocessing import forkserver

    from mmsa_atsuko import parent_death
    del forkserver._forkserver._forkserver_alive_fd
    parent_death.die_with(main_pid)
