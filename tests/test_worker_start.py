"""Extract's workers that cannot be started, or hang as they start: one line that says so, never a bare EOFError nor
the cache blamed; and a worker started by a Python whose fork server is named otherwise still lives."""
import errno
import multiprocessing.popen_forkserver
import os
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import clip_fakes
import pytest

from mmsa_atsuko.data.extract import clip_workers, videos
from mmsa_atsuko.data.extract.clip_features import clip_features
from mmsa_atsuko.errors import DataError

# An unguarded script run as under Python 3.13.8+/3.14 (CPython gh-126631): there the fork server is given the main
# script's path and, '__main__' in its preload, imports the script itself, as a worker would.
AS_3_14 = textwrap.dedent("""
    import sys
    from multiprocessing import spawn
    from mmsa_atsuko.data.extract import videos
    from mmsa_atsuko.errors import ToolkitError
    prepared = spawn.get_preparation_data

    def as_3_14(name):
        data = prepared(name)
        if "init_main_from_path" in data:
            data["main_path"] = data["init_main_from_path"]
        return data
    spawn.get_preparation_data = as_3_14
    todo = [(f"v{i}", f"v{i}.mp4", f"v{i}.npz") for i in range(3)]
    try:                                  # no `if __name__ == "__main__":` around this
        videos.run_videos(todo, "librosa", 1.0, int(sys.argv[1]), 10.0, echo=lambda _: None)
    except ToolkitError as e:
        print(e, file=sys.stderr)
        sys.exit(e.exit_code)
""")


@pytest.mark.skipif("forkserver" not in multiprocessing.get_all_start_methods(), reason="no fork server here")
@pytest.mark.parametrize("jobs", ["1", "2"])
def test_an_unguarded_script_under_a_fork_server_that_imports_main_gets_the_one_line(tmp_path, jobs):
    """'__main__' was in the fork server's preload: where the server imports the script (3.13.8+), the script's
    extract ended the server itself (exit 86), and the caller got a traceback ending in a bare EOFError."""
    script = tmp_path / "no_guard.py"
    script.write_text(AS_3_14)
    done = subprocess.run([sys.executable, str(script), jobs], capture_output=True, text=True, timeout=300,
                          cwd=tmp_path, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.stderr.splitlines() == [
        f"extract's worker processes could not start: each runs {script} again as it starts (Python's "
        f"multiprocessing), and that script calls extract at its top level: put the call under "
        f'`if __name__ == "__main__":`']
    assert (done.returncode, done.stdout) == (2, "")


def _fork_server_gone(*_):
    raise EOFError          # what a start gets from a fork server that ended: its connection closed


@pytest.mark.skipif("forkserver" not in multiprocessing.get_all_start_methods(), reason="no fork server here")
@pytest.mark.parametrize("jobs", [1, 2])
def test_a_worker_that_cannot_be_started_is_one_line_not_a_bare_eof_error(monkeypatch, tmp_path, jobs):
    """A fork server gone at a worker's start raised a bare EOFError from Process.start (--jobs 1) or pool.submit."""
    monkeypatch.setattr(multiprocessing.popen_forkserver.Popen, "_launch", _fork_server_gone)
    todo = [(f"v{i}", f"v{i}.mp4", tmp_path / f"v{i}.npz") for i in range(3)]
    with pytest.raises(DataError, match=r"^extract's worker process could not be started \(EOFError\), so no clip is "
                                        r"to blame: run the same command again"):
        videos.run_videos(todo, "librosa", 1.0, jobs, 10.0, echo=lambda _: None)


def _no_fork(*_):
    raise OSError(errno.EAGAIN, "Resource temporarily unavailable")     # a process limit reached


@pytest.mark.skipif("forkserver" not in multiprocessing.get_all_start_methods(), reason="no fork server here")
def test_a_fork_that_fails_is_not_blamed_on_the_cache_folder(monkeypatch, tmp_path):
    """Every OSError from the extraction was reported as extract's cache folder that could not be written."""
    monkeypatch.setenv("MMSA_ATSUKO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(multiprocessing.popen_forkserver.Popen, "_launch", _no_fork)
    config = SimpleNamespace(audio="librosa", fps=1.0, audio_len=40, vision_len=15)
    with pytest.raises(DataError) as raised:
        clip_features({"v0": tmp_path / "v0.mp4"}, ["v0"], {}, "h", config, 1, 10.0, echo=lambda _: None)
    assert str(raised.value).startswith("extract's worker process could not be started (BlockingIOError: [Errno 11] "
                                        "Resource temporarily unavailable), so no clip is to blame")


def test_a_probe_worker_that_hangs_as_it_starts_is_killed_and_said(monkeypatch):
    """With no clip finished, a broken pool starts one worker alone to tell whether one can start; one that hung as
    it started was joined without a limit, and extract hung with it."""
    monkeypatch.setattr(clip_workers, "_serve", clip_fakes.hang_at_start)
    monkeypatch.setattr(clip_workers, "PROBE_SECONDS", 1.0)
    failure = clip_workers.probe_start()
    assert isinstance(failure, DataError)
    assert str(failure).startswith("extract's worker process could not start: it hung as it started (and was killed) "
                                   "before it took a clip")


def test_a_clip_worker_that_hangs_as_it_starts_is_killed_and_said(monkeypatch):
    """--jobs 1: the clip was sent and its acknowledgement waited for without a limit, so a worker that hung as it
    started hung extract with it. After PROBE_SECONDS it is killed and the start is said to have failed."""
    monkeypatch.setattr(clip_workers, "_serve", clip_fakes.hang_at_start)
    monkeypatch.setattr(clip_workers, "PROBE_SECONDS", 1.0)
    worker = clip_workers.ClipWorker()
    with pytest.raises(DataError) as raised:
        worker.extract("v0.mp4", "v0.npz", "librosa", 1.0, 10.0)
    assert str(raised.value).startswith("extract's worker process could not start: it hung as it started (and was "
                                        "killed) before it took a clip")
    assert worker.process.exitcode is not None          # killed, not left running
    worker.close()


def test_a_probe_worker_that_cannot_be_started_is_the_line_returned(monkeypatch):
    """An error starting the probe worker escaped probe_start raw, in place of the pool's line."""
    monkeypatch.setattr(multiprocessing.popen_forkserver.Popen, "_launch", _fork_server_gone)
    failure = clip_workers.probe_start()
    assert isinstance(failure, DataError) and str(failure).startswith(
        "extract's worker process could not be started (EOFError)")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_worker_lives_where_the_fork_servers_alive_pipe_is_named_otherwise():
    """Whether a worker's parent was main's fork server was told by multiprocessing's private attribute alone: a
    Python that renamed it made every worker os._exit(1) as it started."""
    process = clip_workers.start_context().Process(target=clip_fakes.without_alive_fd_attribute, args=(os.getpid(),))
    process.start()
    process.join(60)
    assert process.exitcode == 0
