"""The --jobs 1 clip worker (`videos.ClipWorker`): what it does when it, or its parent, dies between or during clips."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from mmsa_atsuko.data.extract import videos
from mmsa_atsuko.errors import DataError


def _fake_extract(video, cache, *_):
    """extract_one's stand-in: 'ok' extracts, 'segv' crashes, 'local' raises what does not pickle, 'args' raises
    what pickles but does not rebuild (its __init__ takes two arguments)."""
    if video == "segv":
        import faulthandler
        faulthandler.disable()
        os.kill(os.getpid(), signal.SIGSEGV)
    if video == "local":
        class Local(Exception):
            pass
        raise Local("no class to find\non the other side")
    if video == "args":
        raise TwoArgs("first", "second")
    return None if video == "ok" else f"reason {video}"


class TwoArgs(Exception):
    def __init__(self, a, b):          # pickled as its args ("first",): unpickling calls TwoArgs("first")
        super().__init__(a)


@pytest.fixture
def worker(monkeypatch):
    monkeypatch.setattr(videos, "extract_one", _fake_extract)
    worker = videos.ClipWorker()
    yield worker
    worker.close(kill=True)


def test_a_worker_killed_between_clips_is_replaced_and_the_next_clip_extracted(worker):
    """The idle worker holds the last clip's memory: the system killing it then skipped the next clip, blamed as
    'its extraction process was killed by SIGKILL'. The clip is now sent to a fresh worker."""
    assert worker.extract("ok", "c1") == (True, None)
    first = worker.process.pid
    os.kill(first, signal.SIGKILL)       # right after the kill, before it is reaped: the send may still succeed
    assert worker.extract("ok", "c2") == (True, None)
    assert worker.process.pid != first and worker.process.is_alive()
    os.kill(worker.process.pid, signal.SIGKILL)
    worker.process.join()                # long dead: the send itself fails
    assert worker.extract("named", "c3") == (True, "reason named")


def test_a_clip_that_kills_its_worker_is_still_blamed_and_not_retried(worker):
    assert worker.extract("ok", "c1") == (True, None)
    alive, reason = worker.extract("segv", "c2")
    assert not alive and reason.startswith("its extraction process was killed by SIGSEGV (a decoder crashing")


@pytest.mark.parametrize("video, line", [("local", "Local: no class to find on the other side"),
                                         ("args", "TwoArgs: first")])
def test_an_error_that_cannot_cross_the_pipe_is_raised_in_the_caller_as_one_line(worker, video, line):
    """An exception of a local class crashed the worker on pickling (the clip then blamed as a crash); one whose
    arguments do not rebuild it raised TypeError in the caller's recv (a traceback)."""
    with pytest.raises(DataError) as error:
        worker.extract(video, "c")
    assert str(error.value) == line
    assert worker.extract("ok", "c2") == (True, None)       # the same worker goes on


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts this process's fds in /proc")
def test_close_closes_the_process_handle_without_waiting_for_the_garbage_collector(worker):
    import gc
    worker.close()
    with pytest.raises(ValueError, match="process object is closed"):
        worker.process.is_alive()
    gc.disable()          # what the collector would close is not counted as closed
    try:
        before = len(os.listdir("/proc/self/fd"))
        another = videos.ClipWorker()
        assert another.extract("ok", "c") == (True, None)
        another.close()
        assert len(os.listdir("/proc/self/fd")) == before
    finally:
        gc.enable()


PARENT = textwrap.dedent("""
    import sys, time
    from mmsa_atsuko.data.extract import videos
    videos.extract_one = lambda *args: (print("hung", flush=True), time.sleep(3600))     # a decoder that hangs
    worker = videos.ClipWorker()
    print(worker.process.pid, flush=True)
    worker.extract("hang", "c")
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
def test_a_worker_ends_when_its_parent_is_killed(how):
    """Under --jobs 1, killing the parent left its worker, hung in a decoder, running under init for ever."""
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        child = int(parent.stdout.readline())
        assert parent.stdout.readline() == "hung\n"     # killed before: the worker saw the pipe end, and ended
        parent.send_signal(how)
        parent.wait(timeout=60)
        for _ in range(600):              # the kernel's signal is immediate; a loaded machine may be slow to run it
            try:
                os.kill(child, 0)
            except ProcessLookupError:
                break
            if _state(child) == "Z":      # reaped by init any moment: dead
                break
            time.sleep(0.05)
        else:
            os.kill(child, signal.SIGKILL)
            pytest.fail("the worker outlived its parent")
    finally:
        parent.kill()
        parent.wait()


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def test_a_worker_whose_replacement_cannot_start_is_closed_once(worker, monkeypatch):
    """The dead worker is closed before its replacement starts: a fork that fails then (no memory) raised from
    extract, and the caller's close(kill=True) raised ValueError on the closed process instead of letting it be."""
    assert worker.extract("ok", "c1") == (True, None)
    os.kill(worker.process.pid, signal.SIGKILL)
    worker.process.join()

    def no_fork(self):
        raise OSError(12, "Cannot allocate memory")
    monkeypatch.setattr(videos.ClipWorker, "_start", no_fork)
    with pytest.raises(OSError, match="Cannot allocate memory"):
        worker.extract("ok", "c2")
    worker.close(kill=True)
    worker.close()
