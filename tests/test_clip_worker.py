"""The clip workers: how they start (not forked from the caller), and what the --jobs 1 worker
(`clip_workers.ClipWorker`) and a --jobs 2 pool's do when they, or their parent, die between or during clips."""
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time

import clip_fakes
import pytest

from mmsa_atsuko.data.extract import clip_workers, videos
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
    monkeypatch.setattr(clip_workers, "extract_one", _fake_extract)
    worker = clip_workers.ClipWorker()
    yield worker
    worker.close(kill=True)


def test_the_workers_are_not_forked_from_the_caller_and_import_no_torch(monkeypatch):
    """Forked from a process that held OpenMP's and tokenizers' threads (the test suite's), a worker of
    `extract --jobs 2` once waited 8 minutes on a lock one of those threads held at the fork. The workers now come
    from the fork server (spawn where there is none), and start without torch, which they never use."""
    import torch
    assert torch.__version__          # the caller holds torch (and its threads): a forked worker would too
    methods = multiprocessing.get_all_start_methods()
    assert clip_workers.start_context().get_start_method() == ("forkserver" if "forkserver" in methods else "spawn")
    monkeypatch.setattr(clip_workers, "extract_one", clip_fakes.modules_of_note)
    todo = [(f"v{i}", f"v{i}.mp4", f"v{i}.npz") for i in range(2)]
    assert videos.run_videos(todo, "librosa", 1.0, 2, 10.0, echo=lambda _: None) == {}
    worker = clip_workers.ClipWorker()
    try:
        assert worker.extract("v", "c") == (True, None)
    finally:
        worker.close()


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
        another = clip_workers.ClipWorker()
        assert another.extract("ok", "c") == (True, None)
        another.close()
        assert len(os.listdir("/proc/self/fd")) == before
    finally:
        gc.enable()


PARENT = textwrap.dedent("""
    import sys
    import clip_fakes
    from mmsa_atsuko.data.extract import clip_workers, videos
    clip_workers.extract_one = clip_fakes.hang          # a decoder that hangs
    if sys.argv[1] == "1":
        worker = clip_workers.ClipWorker()
        print(worker.process.pid, flush=True)
        worker.extract("hang", "c")
    else:
        todo = [(f"v{i}", f"v{i}.mp4", f"v{i}.npz") for i in range(2)]
        videos.run_videos(todo, "librosa", 1.0, 2, 10.0, echo=lambda _: None)
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
def test_a_worker_ends_when_its_parent_is_killed(how):
    """Under --jobs 1, killing the parent left its worker, hung in a decoder, running under init for ever. Its parent
    is now the fork server (forkserver), which ends with the parent: the worker dies with both."""
    parent, pids = _parent("1"), []
    try:
        child = int(parent.stdout.readline())
        hung, pid, server = parent.stdout.readline().split()     # killed before: it saw the pipe end, and ended
        pids = [child, int(server)]
        assert (hung, int(pid)) == ("hung", child)
        parent.send_signal(how)
        parent.wait(timeout=60)
        assert _survivors(pids) == [], "the worker or the fork server outlived the parent"
    finally:
        _kill(parent, pids)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
def test_the_workers_of_a_pool_end_when_their_parent_is_killed(how):
    """Under --jobs 2 the pool's workers did not ask to die with the parent: killed while both hung in a decoder,
    it left them running under init for ever (and, forked from it, they could hold its threads' locks)."""
    parent, pids = _parent("2"), []
    try:
        hung = [parent.stdout.readline().split() for _ in range(2)]
        assert [line[0] for line in hung] == ["hung", "hung"]
        pids = sorted({int(pid) for _, pid, _ in hung} | {int(server) for *_, server in hung})
        parent.send_signal(how)
        parent.wait(timeout=60)
        assert _survivors(pids) == [], "a worker of the pool (or its parent, the fork server) outlived the parent"
        assert len(pids) == 3 and parent.pid not in pids          # two workers, and the fork server that forked both
    finally:
        _kill(parent, pids)


def _parent(jobs: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", PARENT, jobs], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})


def _survivors(pids: list) -> list:
    """Those of `pids` still alive after up to 30 s."""
    for _ in range(600):                  # the kernel's signal is immediate; a loaded machine may be slow to run it
        if not _alive(pids):
            break
        time.sleep(0.05)
    return _alive(pids)


def _alive(pids: list) -> list:
    return [pid for pid in pids if _state(pid) not in ("gone", "Z")]     # Z: dead, reaped by init any moment


def _kill(parent: subprocess.Popen, pids: list) -> None:
    """The test's processes ended, whatever it found."""
    parent.kill()
    parent.wait()
    parent.stdout.close()
    for pid in _alive(pids):              # only those alive now: a pid gone may be another process's already
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


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
    monkeypatch.setattr(clip_workers.ClipWorker, "_start", no_fork)
    with pytest.raises(OSError, match="Cannot allocate memory"):
        worker.extract("ok", "c2")
    worker.close(kill=True)
    worker.close()


NO_GUARD = textwrap.dedent("""
    import sys
    from mmsa_atsuko.data.extract import ExtractConfig, extract
    from mmsa_atsuko.errors import ToolkitError
    videos, transcripts, out, bert, jobs = sys.argv[1:]
    try:                                  # no `if __name__ == "__main__":` around this
        extract(videos, transcripts, out, bert=bert, config=ExtractConfig(text_len=12, audio_len=40, vision_len=15),
                jobs=int(jobs), echo=lambda _: None)
    except ToolkitError as e:
        print(e, file=sys.stderr)
        sys.exit(e.exit_code)
""")


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_script_that_calls_extract_without_the_main_guard_gets_one_line_and_nothing_written(tmp_path, jobs):
    """Each worker runs the caller's script again as it starts (forkserver, spawn): unguarded, the script's extract
    raised multiprocessing's bootstrapping RuntimeError in every worker, each printed it, and under --jobs 1 every
    clip was skipped as 'ended with exit status 1' (a skipped list written), under --jobs 2 the pool's line blamed
    memory or a damaged video."""
    from media_fixtures import require_extract, write_corpus

    from mmsa_atsuko.data.tiny_bert import write_tiny_bert
    require_extract()
    videos_folder, transcripts = write_corpus(tmp_path / "data")
    bert = write_tiny_bert(tmp_path / "bert")
    script, out = tmp_path / "no_guard.py", tmp_path / "out" / "features.pkl"
    script.write_text(NO_GUARD)
    command = [sys.executable, str(script), str(videos_folder), str(transcripts), str(out), str(bert), jobs]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.stderr.splitlines() == [
        f"extract's worker processes could not start: each runs {script} again as it starts (Python's "
        f"multiprocessing), and that script calls extract at its top level: put the call under "
        f'`if __name__ == "__main__":`']
    assert (done.returncode, done.stdout) == (2, "")
    assert not out.parent.exists()       # neither the file nor a list of skipped videos


def test_a_worker_killed_before_its_first_clip_could_not_start_and_no_clip_is_blamed(monkeypatch, tmp_path):
    """A worker dead before it took a clip skipped that clip as if it had crashed its worker, then the next, and so
    on: each clip was blamed for a worker that never started."""
    monkeypatch.setattr(clip_workers, "_serve", clip_fakes.killed_at_start)
    todo = [(f"v{i}", f"v{i}.mp4", tmp_path / f"v{i}.npz") for i in range(3)]
    with pytest.raises(DataError, match=r"^extract's worker process could not start: it was killed by SIGKILL before "
                                        r"it took a clip, so no clip is to blame: run the same command again"):
        videos.run_videos(todo, "librosa", 1.0, 1, 10.0, echo=lambda _: None)


def test_a_worker_that_dies_before_a_clip_twice_in_a_row_could_not_start(worker, monkeypatch):
    """A worker found dead between clips is replaced; a replacement that dies too before it takes the clip could not
    start, and the clip, which no worker took, was blamed as if it had crashed it."""
    assert worker.extract("ok", "c1") == (True, None)
    os.kill(worker.process.pid, signal.SIGKILL)
    worker.process.join()
    monkeypatch.setattr(clip_workers, "_serve", clip_fakes.killed_at_start)       # what the replacement runs
    with pytest.raises(DataError, match=r"^extract's worker process could not start: it was killed by SIGKILL"):
        worker.extract("ok", "c2")


def test_pool_workers_that_cannot_start_are_one_line_of_that(monkeypatch, tmp_path):
    """Under --jobs 2 a pool whose workers died as they started was blamed on memory or a damaged video."""
    monkeypatch.setattr(clip_workers, "_start_worker", clip_fakes.killed_at_start)     # the pool's initializer
    monkeypatch.setattr(clip_workers, "_serve", clip_fakes.killed_at_start)            # and a worker started alone
    todo = [(f"v{i}", f"v{i}.mp4", tmp_path / f"v{i}.npz") for i in range(3)]
    with pytest.raises(DataError, match=r"^extract's worker process could not start: it was killed by SIGKILL"):
        videos.run_videos(todo, "librosa", 1.0, 2, 10.0, echo=lambda _: None)
