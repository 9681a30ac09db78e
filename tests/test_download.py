"""`run.py download`: fetch to a temporary name, verify, rename; offline -> one line with the
manual steps; `--check`. The network is never touched: a fake `Downloader` serves local
bytes, the real one is only run with `socket.create_connection` failing, or with gdown's
HTTP session answered by a local stream (`fake_drive`)."""
import hashlib
import importlib
import io
import os
import pickle
import shutil
import socket
import stat
import threading
from pathlib import Path

import pytest

from mmsa_atsuko.config import dataset_facts
from mmsa_atsuko.cli import main
from mmsa_atsuko.data import download as dl
from mmsa_atsuko.data.download import commands, facts     # patched where download() reads a name
from mmsa_atsuko.errors import DataError

MOSI = "MOSI/Processed/unaligned_50.pkl"
SIMSV2 = "SIMSv2/Processed/sims_unaligned.pkl"
GOOD = pickle.dumps({"train": {}, "valid": {}, "test": {}}, protocol=4)


class FakeDownloader:
    """Serves `files[relpath]` (bytes) as one chunk, announcing its size to the progress hook.
    `online=False` fails the connectivity check; `interrupt_after` writes that many bytes, then
    raises KeyboardInterrupt. The file is written 0600, as gdown's temporary file is."""

    def __init__(self, files, online=True, interrupt_after=None):
        self.files, self.online, self.interrupt_after = files, online, interrupt_after
        self.fetched = []

    def check_online(self):
        if not self.online:
            raise dl.Offline("cannot reach drive.google.com (fake)")

    def fetch(self, relpath, dest, progress):
        self.fetched.append((relpath, Path(dest)))
        data = self.files[relpath]
        with os.fdopen(os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
            if self.interrupt_after is not None:
                f.write(data[:self.interrupt_after])
                raise KeyboardInterrupt
            f.write(data)
        progress(len(data), len(data))


@pytest.fixture
def published_mosi(monkeypatch):
    """MOSI's published checksum, replaced by the one of our stand-in file (in the facts config.published_sha256
    reads, for the download)."""
    from mmsa_atsuko.config import datasets as dataset_table
    real = dataset_table.dataset_facts
    stand_in = {"unaligned": hashlib.sha256(GOOD).hexdigest()}
    monkeypatch.setattr(dataset_table, "dataset_facts",
                        lambda name: {**real(name), "sha256": stand_in} if name == "mosi" else real(name))


LOCK_SUFFIX = ".download.lock"


def only_final_files(folder: Path):
    """Everything under `folder` (hidden temporary files included) but the empty lock files that
    downloads leave beside their file (`.<file>.download.lock`, kept as store locks are)."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                  if p.is_file() and not (p.name.endswith(LOCK_SUFFIX) and p.stat().st_size == 0))


def test_a_verified_download_is_not_hashed_again(tmp_path, published_mosi, monkeypatch):
    # The temporary copy was hashed to verify it; its digest is remembered for the file it became, so
    # the next load or --check of a multi-GB file does not read it all again.
    from mmsa_atsuko import cache
    (path,) = dl.download("mosi", data_root=tmp_path, downloader=FakeDownloader({MOSI: GOOD}), say=lambda line: None)

    def no_hashing(*args, **kwargs):
        raise AssertionError("the downloaded file was hashed again")
    monkeypatch.setattr(cache.hashlib, "file_digest", no_hashing)
    assert cache.sha256_of(path) == hashlib.sha256(GOOD).hexdigest()


def test_good_file_is_fetched_to_a_temp_name_verified_and_renamed(tmp_path, published_mosi):
    fake = FakeDownloader({MOSI: GOOD})
    lines = []
    (path,) = dl.download("mosi", data_root=tmp_path, downloader=fake, say=lines.append)
    assert path == tmp_path / MOSI and path.read_bytes() == GOOD
    (relpath, temp), = fake.fetched
    # into a private folder beside the destination, which is gone afterwards
    assert relpath == MOSI and temp.parent.parent == path.parent and temp.name == "unaligned_50.pkl"
    assert temp.parent.name.startswith(".unaligned_50.pkl.part-") and not temp.parent.exists()
    assert only_final_files(tmp_path) == [MOSI]
    assert lines[-1].endswith("sha256 verified")
    # A second call finds it verified and fetches nothing.
    dl.download("mosi", data_root=tmp_path, downloader=fake, say=lines.append)
    assert len(fake.fetched) == 1 and "already there (sha256 verified)" in lines[-1]


def test_bad_checksum_leaves_nothing(tmp_path, published_mosi):
    fake = FakeDownloader({MOSI: GOOD + b"tampered"})
    with pytest.raises(DataError) as info:
        dl.download("mosi", data_root=tmp_path, downloader=fake, say=lambda line: None)
    message = str(info.value)
    assert "\n" not in message and "was discarded" in message
    assert hashlib.sha256(GOOD + b"tampered").hexdigest() in message and dl.published_sha256(MOSI) in message
    assert only_final_files(tmp_path) == []


def test_a_bad_download_never_replaces_an_existing_copy(tmp_path, published_mosi):
    dest = tmp_path / MOSI
    dest.parent.mkdir(parents=True)
    dest.write_bytes(GOOD[:-1])                                    # damaged local copy
    with pytest.raises(DataError):
        dl.download("mosi", data_root=tmp_path, downloader=FakeDownloader({MOSI: b"\x80junk"}), say=lambda _: None)
    assert dest.read_bytes() == GOOD[:-1] and only_final_files(tmp_path) == [MOSI]
    # ... and a good one does replace it.
    dl.download("mosi", data_root=tmp_path, downloader=FakeDownloader({MOSI: GOOD}), say=lambda _: None)
    assert dest.read_bytes() == GOOD


def test_interrupted_download_leaves_nothing(tmp_path, published_mosi):
    fake = FakeDownloader({MOSI: GOOD}, interrupt_after=10)
    with pytest.raises(KeyboardInterrupt):
        dl.download("mosi", data_root=tmp_path, downloader=fake, say=lambda line: None)
    assert fake.fetched and only_final_files(tmp_path) == []


def test_a_failed_gdown_leaves_no_partial_file(tmp_path, published_mosi):
    """gdown writes `<output>XXXX.part` beside the output and keeps it after a failure."""
    class GdownLike(FakeDownloader):
        def fetch(self, relpath, dest, progress):
            Path(f"{dest}a1b2c3d4.part").write_bytes(GOOD[:10])
            raise dl.FetchFailed("gdown failed: Download is incomplete")

    with pytest.raises(DataError, match="Download is incomplete"):
        dl.download("mosi", data_root=tmp_path, downloader=GdownLike({}), say=lambda _: None)
    assert sorted(p.name for p in (tmp_path / MOSI).parent.iterdir()) == [".unaligned_50.pkl.download.lock"]


def small_simsv2():
    """The splits of a small SIMSv2 feature file in MMSA's format, without the generator's stamp."""
    from mmsa_atsuko.data.synthetic import make_synthetic
    return make_synthetic("simsv2")


@pytest.fixture(scope="module")
def small_simsv2_bytes():
    return pickle.dumps(small_simsv2(), protocol=4)


@pytest.fixture
def small_simsv2_facts(monkeypatch):
    """SIMSv2's real sizes and shapes as download sees them (datasets.yaml's), replaced by those of
    the small file: the check itself is unchanged (as `published_mosi` does for a checksum)."""
    replace_simsv2_layout(monkeypatch)


def replace_simsv2_layout(patch):
    from mmsa_atsuko.data.synthetic import synthetic_shapes
    real = facts.real_layout
    patch.setattr(facts, "real_layout",
                  lambda name, setting: synthetic_shapes("simsv2", "small") if name == "simsv2" else real(name, setting))


@pytest.fixture
def simsv2_file(small_simsv2_bytes, small_simsv2_facts):
    """A small SIMSv2 feature file that the structure check must accept."""
    return small_simsv2_bytes


def test_unpublished_checksum_still_needs_a_pickle(tmp_path, simsv2_file):
    # SIMSv2 has no published sha256; a web page in its place (Drive's quota page) is refused.
    html = b"<!DOCTYPE html><html><title>Google Drive - Quota exceeded</title></html>"
    with pytest.raises(DataError, match="a web page, not a pickle"):
        dl.download("simsv2", data_root=tmp_path, downloader=FakeDownloader({SIMSV2: html}), say=lambda _: None)
    assert only_final_files(tmp_path) == []
    (path,) = dl.download("simsv2", data_root=tmp_path, downloader=FakeDownloader({SIMSV2: simsv2_file}),
                          say=lambda _: None)
    assert path.read_bytes() == simsv2_file


@pytest.mark.parametrize("payload", [bytes(range(256)) * 40, GOOD], ids=["random-bytes", "empty-splits"])
def test_unpublished_checksum_needs_the_structure_the_loader_checks(tmp_path, payload):
    """SIMSv2 (no published sha256) is verified by loading it: random bytes or a pickle without the
    dataset's keys are discarded, and no temporary folder is left behind."""
    with pytest.raises(DataError, match="not a valid simsv2 feature file"):
        dl.download("simsv2", data_root=tmp_path, downloader=FakeDownloader({SIMSV2: payload}), say=lambda _: None)
    assert only_final_files(tmp_path) == []
    assert [p.name for p in (tmp_path / SIMSV2).parent.glob(".*")] == [".sims_unaligned.pkl.download.lock"]


def test_a_killed_attempts_partial_folder_is_removed_before_the_next(tmp_path, simsv2_file):
    stale = (tmp_path / SIMSV2).parent / ".sims_unaligned.pkl.part-dead1234"
    stale.mkdir(parents=True)
    (stale / "sims_unaligned.pkl").write_bytes(b"half a file")
    dl.download("simsv2", data_root=tmp_path, downloader=FakeDownloader({SIMSV2: simsv2_file}), say=lambda _: None)
    assert only_final_files(tmp_path) == [SIMSV2]


def test_offline_fails_at_once_with_the_manual_steps(tmp_path):
    fake = FakeDownloader({MOSI: GOOD}, online=False)
    with pytest.raises(DataError) as info:
        dl.download(["mosi", "sims"], data_root=tmp_path, downloader=fake, say=lambda line: None)
    message = str(info.value)
    assert "\n" not in message and message.startswith("no network")
    assert dl.MMSA_DRIVE_FOLDER in message and "qq0b" in message
    assert MOSI in message and "SIMS/Processed/unaligned_39.pkl" in message and str(tmp_path) in message
    assert message.endswith(f"then run `python run.py download --check --data-root {tmp_path}`")
    assert fake.fetched == [] and only_final_files(tmp_path) == []


def test_cli_offline_with_the_real_downloader_is_one_line(tmp_path, monkeypatch, capsys):
    def no_network(*args, **kwargs):
        raise OSError(-2, "Name or service not known")
    monkeypatch.setattr(socket, "create_connection", no_network)
    for variable in dl.PROXY_VARIABLES:            # with a proxy the probe is skipped: keep it off
        monkeypatch.delenv(variable, raising=False)
    assert main(["download", "mosi", "--aligned", "--data-root", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and captured.out == ""
    assert "drive.google.com" in lines[0] and f"put it at {tmp_path / 'MOSI/Processed/aligned_50.pkl'}" in lines[0]
    assert only_final_files(tmp_path) == []


def test_cli_download_uses_the_downloader_interface(tmp_path, monkeypatch, capsys, published_mosi):
    fake = FakeDownloader({MOSI: GOOD})
    monkeypatch.setattr(commands, "default_downloader", lambda: fake)
    assert main(["download", "mosi", "--data-root", str(tmp_path)]) == 0
    assert (tmp_path / MOSI).read_bytes() == GOOD and "sha256 verified" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["download", "sims", "--aligned"], "sims has no aligned feature file"),
    (["download", "mintrec"], "github.com/thuiar/MIntRec"),
    (["download", "mosii"], "choose from mosi, mosei, sims, simsv2"),
    (["download"], "or pass --check"),
    (["download", "mosi", "--check"], "give it no dataset"),
])
def test_cli_bad_requests_exit_2(tmp_path, capsys, args, message):
    assert main([*args, "--data-root", str(tmp_path)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]


def test_check_reports_every_dataset(tmp_path, capsys, published_mosi, simsv2_file):
    (tmp_path / MOSI).parent.mkdir(parents=True)
    (tmp_path / MOSI).write_bytes(GOOD)                                             # verified
    (tmp_path / "MOSI/Processed/aligned_50.pkl").write_bytes(GOOD)                 # wrong sha256
    (tmp_path / SIMSV2).parent.mkdir(parents=True)
    (tmp_path / SIMSV2).write_bytes(simsv2_file)                            # no published sum: structure
    mintrec = tmp_path / "MIntRec"
    for rel in ("train.tsv", "dev.tsv", "video_data/video_feats.pkl"):
        (mintrec / rel).parent.mkdir(parents=True, exist_ok=True)
        (mintrec / rel).write_text("x")

    states = {(s.dataset, s.setting): s for s in dl.check(tmp_path)}
    assert {k: s.state for k, s in states.items()} == {
        ("mosi", "unaligned"): "verified", ("mosi", "aligned"): "bad",
        ("mosei", "unaligned"): "missing", ("mosei", "aligned"): "missing",
        ("sims", "unaligned"): "missing", ("simsv2", "unaligned"): "verified",
        ("mintrec", "unaligned"): "missing"}
    assert "test.tsv, audio_data/audio_feats.pkl" in states["mintrec", "unaligned"].detail
    # the command names the root it checked: copied without it, it downloaded into $MMSA_DATA_ROOT or the default
    assert f"python run.py download mosei --aligned --data-root {tmp_path}`" in states["mosei", "aligned"].detail

    assert main(["download", "--check", "--data-root", str(tmp_path)]) == 1       # a damaged file
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"data root {tmp_path}") and len(out) == 1 + len(states)
    (tmp_path / "MOSI/Processed/aligned_50.pkl").unlink()
    assert main(["download", "--check", "--data-root", str(tmp_path)]) == 0       # missing is not damage


def test_parse_drive_folder_view():
    html = """<html><head><title>Processed</title></head><body>
      <a href="https://drive.google.com/file/d/1AbCdEfGhIjKlMnOpQrStUvWxYz012345/view?usp=drive_web">
        <div class="flip-entry-title">unaligned_50.pkl</div></a>
      <a href="https://drive.google.com/drive/folders/1ZyXwVuTsRqPoNmLkJiHgFeDcBa98765">Raw</a>
      <a href="https://www.google.com/intl/en/policies">Terms</a></body></html>"""
    assert dl.parse_folder_view(html) == {
        "unaligned_50.pkl": ("1AbCdEfGhIjKlMnOpQrStUvWxYz012345", False),
        "Raw": ("1ZyXwVuTsRqPoNmLkJiHgFeDcBa98765", True)}


# ------------------------------------------------------------------ two downloads of one file

def test_a_second_download_of_a_file_waits_for_the_first(tmp_path, published_mosi):
    """Two downloads of one file take turns: the second says it waits, then finds the file the
    first put there and fetches nothing; it never removes the first's scratch folder as a
    leftover (which failed the first with a misleading FileNotFoundError)."""
    started, go_on = threading.Event(), threading.Event()

    class Slow(FakeDownloader):
        def fetch(self, relpath, dest, progress):
            Path(dest).write_bytes(GOOD[:10])
            started.set()
            go_on.wait(10)
            with open(dest, "ab") as f:         # the scratch folder must still be there
                f.write(GOOD[10:])
            progress(len(GOOD), len(GOOD))

    first, second, outcome = Slow({MOSI: GOOD}), FakeDownloader({MOSI: GOOD}), {}

    def run_first():
        try:
            outcome["first"] = dl.download("mosi", data_root=tmp_path, downloader=first, say=lambda _: None)
        except BaseException as e:   # reported by the assertion below
            outcome["first"] = e

    thread = threading.Thread(target=run_first)
    thread.start()
    assert started.wait(10)
    lines = []

    def say(line):
        lines.append(line)
        if line.startswith("waiting for another download"):
            go_on.set()

    try:
        (path,) = dl.download("mosi", data_root=tmp_path, downloader=second, say=say)
    finally:
        # Without a lock the second never waits: it is done now, and so is the first's wait. (A 3 s timer set
        # go_on before: a second download slower than that to reach the lock found it free and said no wait.)
        go_on.set()
        thread.join(10)
    assert outcome["first"] == [tmp_path / MOSI]
    assert lines[0] == f"waiting for another download of {MOSI} to {tmp_path / MOSI} to finish"
    assert second.fetched == [] and lines[-1].endswith("put there by another download meanwhile (sha256 verified); "
                                                       "nothing to do")
    assert path.read_bytes() == GOOD and only_final_files(tmp_path) == [MOSI]


# ------------------------------------------------------------------ SIMSv2: the real sizes and shapes

def simsv2_changed(change) -> bytes:
    data = small_simsv2()
    change(data)
    return pickle.dumps(data, protocol=4)


def drop_last_test_sample(data):
    data["test"] = {key: value[:-1] for key, value in data["test"].items()}


def shorter_audio(data):
    for split in data.values():
        split["audio"] = split["audio"][:, :-1]
        split["audio_lengths"] = [min(n, split["audio"].shape[1]) for n in split["audio_lengths"]]


def number_ids(data):
    data["train"]["id"] = list(range(len(data["train"]["id"])))


def repeat_an_id(data):
    data["test"]["id"] = list(data["test"]["id"])
    data["test"]["id"][3] = data["train"]["id"][5]


@pytest.mark.parametrize("change, message", [
    (drop_last_test_sample, "its test split has 31 samples, the real simsv2 file's has 32 (configs/datasets.yaml "
                            "real_sizes)"),
    (shorter_audio, "its audio features are 23 steps x 25 dims per sample, the real simsv2 file's are 24 x 25"),
    (number_ids, "split 'train', key 'id': expected 'video$_$clip' strings, as MMSA writes them, found a int at "
                 "sample 0"),
    (repeat_an_id, "split 'test', key 'id': expected a different id for every sample, found"),
], ids=["a-sample-short", "audio-shorter", "number-ids", "repeated-id"])
def test_unpublished_checksum_needs_the_real_sizes_shapes_and_ids(tmp_path, small_simsv2_facts, change, message):
    """A SIMSv2 file (no published sha256) that loads but is not shaped like the real one is
    discarded, and --check calls it bad: the first mismatch, in one line."""
    payload = simsv2_changed(change)
    with pytest.raises(DataError) as info:
        dl.download("simsv2", data_root=tmp_path, downloader=FakeDownloader({SIMSV2: payload}), say=lambda _: None)
    assert "\n" not in str(info.value) and "was discarded" in str(info.value) and message in str(info.value)
    assert only_final_files(tmp_path) == []
    (tmp_path / SIMSV2).write_bytes(payload)                            # put there by hand
    status = {(s.dataset, s.setting): s for s in dl.check(tmp_path)}["simsv2", "unaligned"]
    assert status.state == "bad" and message in status.detail


def test_a_small_or_generated_simsv2_is_not_taken_for_the_real_one(tmp_path, small_simsv2_bytes, capsys):
    """The facts as datasets.yaml gives them: a file with a few samples loads and validates, but
    is not MMSA's SIMSv2; nor is a file the generator stamped, whatever its shapes."""
    with pytest.raises(DataError, match="its train split has 96 samples, the real simsv2 file's has 2722"):
        dl.download("simsv2", data_root=tmp_path, downloader=FakeDownloader({SIMSV2: small_simsv2_bytes}),
                    say=lambda _: None)
    (tmp_path / SIMSV2).write_bytes(small_simsv2_bytes)
    assert main(["download", "--check", "--data-root", str(tmp_path)]) == 1
    assert "its train split has 96 samples" in capsys.readouterr().out

    from mmsa_atsuko.data.synthetic import write_synthetic
    stamped = write_synthetic("simsv2", tmp_path / "stamped.pkl").read_bytes()
    with pytest.MonkeyPatch.context() as patch:
        replace_simsv2_layout(patch)
        with pytest.raises(DataError, match=r"it is generated data \(synthetic:simsv2-small-unaligned-seed0-v2\), "
                                            r"not MMSA's simsv2 file"):
            dl.download("simsv2", data_root=tmp_path / "other", downloader=FakeDownloader({SIMSV2: stamped}),
                        say=lambda _: None)


# ------------------------------------------------------------------ size cap and free space

class Body(io.RawIOBase):
    """A response body of `size` bytes, counting what was read of it."""

    def __init__(self, size):
        self.left, self.sent = size, 0

    def readable(self):
        return True

    def readinto(self, buffer):
        n = min(len(buffer), self.left)
        buffer[:n] = b"\x80" * n
        self.left -= n
        self.sent += n
        return n


@pytest.fixture
def fake_drive(monkeypatch, tmp_path_factory):
    """The real GdownDownloader and gdown, with Drive's folder listing and the file's response
    answered locally: `serve(size, announce=None)` makes the file a body of `size` bytes, with
    Content-Length `announce`; returns the body (its `.sent`)."""
    import requests
    from requests.structures import CaseInsensitiveDict
    gdown_download = importlib.import_module("gdown.download")     # the module: its cookie file out of ~
    monkeypatch.setattr(gdown_download, "DEFAULT_COOKIES_FILE", str(tmp_path_factory.mktemp("gdown") / "cookies.txt"))
    folder = {"SIMSv2": ("F" * 25 + "1", True), "Processed": ("F" * 25 + "2", True),
              "sims_unaligned.pkl": ("A" * 25 + "3", False)}
    monkeypatch.setattr(dl.GdownDownloader, "_list", lambda self, folder_id: folder)
    monkeypatch.setattr(dl.GdownDownloader, "check_online", lambda self: None)

    def serve(size, announce=None):
        body = Body(size)

        def get(session, url, **kwargs):
            response = requests.Response()
            response.status_code, response.url, response.raw = 200, url, body
            response.headers = CaseInsensitiveDict({"Content-Type": "application/octet-stream",
                                                    "Content-Disposition": 'attachment; filename="x.pkl"'})
            if announce is not None:
                response.headers["Content-Length"] = str(announce)
            return response
        monkeypatch.setattr(requests.Session, "get", get)
        return body
    return serve


def free_space(*frees):
    """A shutil.disk_usage answering `frees` in turn (the last one from then on)."""
    answers = list(frees)

    def disk_usage(path):
        free = answers.pop(0) if len(answers) > 1 else answers[0]
        return shutil._ntuple_diskusage(10 ** 13, 0, free)
    return disk_usage


def test_a_server_announcing_more_than_the_file_can_hold_is_refused_at_once(tmp_path, fake_drive):
    body = fake_drive(64 << 20, announce=10 ** 13)                 # announces 10 TB
    with pytest.raises(DataError) as info:
        dl.download("simsv2", data_root=tmp_path, downloader=dl.GdownDownloader(), say=lambda _: None)
    _, at_most = dl.size_bounds(SIMSV2)
    assert str(info.value).startswith(f"the server announced 10000.0 GB for {SIMSV2}, more than the real file can "
                                      f"hold (at most {at_most / 1e9:.1f} GB, from its sizes and shapes in "
                                      f"configs/datasets.yaml): refused; try again later, or download ")
    assert body.sent <= 1 << 20 and only_final_files(tmp_path) == []


def test_a_download_stops_past_the_most_the_file_can_hold(tmp_path, fake_drive, monkeypatch):
    monkeypatch.setattr(commands, "size_bounds", lambda relpath: (1000, 2 << 20))   # a 2 MiB cap
    body = fake_drive(64 << 20)                                    # no Content-Length, 64 MiB
    with pytest.raises(DataError, match=f"^stopped downloading {SIMSV2} at 2.6 MB: more than the real file can hold "
                                        f"\\(at most 2.1 MB"):
        dl.download("simsv2", data_root=tmp_path, downloader=dl.GdownDownloader(), say=lambda _: None)
    assert body.sent <= 3 << 20 and only_final_files(tmp_path) == []

    class NoHook(FakeDownloader):          # a downloader that never calls the hook is checked after
        def fetch(self, relpath, dest, progress):
            Path(dest).write_bytes(b"\x80" * (3 << 20))
    with pytest.raises(DataError, match=f"^stopped downloading {SIMSV2} at 3.1 MB: more than the real file can hold"):
        dl.download("simsv2", data_root=tmp_path, downloader=NoHook({}), say=lambda _: None)
    assert only_final_files(tmp_path) == []


def test_a_download_needs_room_on_the_disk(tmp_path, fake_drive, monkeypatch):
    about, _ = dl.size_bounds(SIMSV2)
    folder = (tmp_path / SIMSV2).parent
    # Before fetching: the features at the real sizes and shapes do not fit.
    monkeypatch.setattr(shutil, "disk_usage", free_space(about // 2))
    fake = FakeDownloader({SIMSV2: GOOD})
    with pytest.raises(DataError) as info:
        dl.download("simsv2", data_root=tmp_path, downloader=fake, say=lambda _: None)
    assert str(info.value) == (f"{SIMSV2} holds about {facts.size_text(about)} of features and the disk holding "
                               f"{folder} has {facts.size_text(about // 2)} free: free some space or choose another "
                               f"--data-root")
    assert fake.fetched == []
    # The size the server announces does not fit.
    monkeypatch.setattr(shutil, "disk_usage", free_space(3 * 10 ** 9))
    body = fake_drive(64 << 20, announce=4 * 10 ** 9)
    with pytest.raises(DataError, match=f"^{SIMSV2} is 4.0 GB and the disk holding {folder} has 3.0 GB free: "):
        dl.download("simsv2", data_root=tmp_path, downloader=dl.GdownDownloader(), say=lambda _: None)
    assert body.sent <= 1 << 20
    # No size announced, and the disk fills up meanwhile.
    monkeypatch.setattr(shutil, "disk_usage", free_space(3 * 10 ** 9, 100 * 10 ** 6))
    body = fake_drive(64 << 20)
    with pytest.raises(DataError, match=f"^stopped downloading {SIMSV2} at 524.3 kB: the disk holding {folder} has "
                                        f"only 100.0 MB left"):
        dl.download("simsv2", data_root=tmp_path, downloader=dl.GdownDownloader(), say=lambda _: None)
    assert body.sent <= 1 << 20 and only_final_files(tmp_path) == []


# ------------------------------------------------------------------ what stands where the file goes

def test_a_link_to_a_device_or_a_pipe_where_the_file_goes_says_what_it_is(tmp_path, published_mosi):
    """A link to /dev/zero at the file's place was 'a broken symbolic link': it leads somewhere, to a device."""
    dest = tmp_path / MOSI
    dest.parent.mkdir(parents=True)
    dest.symlink_to("/dev/zero")
    status = {(s.dataset, s.setting): s for s in dl.check(tmp_path)}["mosi", "unaligned"]
    assert status.state == "bad" and status.detail == (f"{dest} is a device, not a file: move it away, then run "
                                                       f"`python run.py download mosi --data-root {tmp_path}`")
    dest.unlink()
    os.mkfifo(dest)
    status = {(s.dataset, s.setting): s for s in dl.check(tmp_path)}["mosi", "unaligned"]
    assert status.detail.startswith(f"{dest} is a pipe, not a file: ")


def test_a_folder_where_the_file_goes_is_reported_before_fetching(tmp_path, published_mosi, monkeypatch, capsys):
    dest = tmp_path / MOSI
    dest.mkdir(parents=True)
    fake = FakeDownloader({MOSI: GOOD})
    status = {(s.dataset, s.setting): s for s in dl.check(tmp_path)}["mosi", "unaligned"]
    assert status.state == "bad" and status.detail == (f"{dest} is a folder, not a file: move it away, then run "
                                                       f"`python run.py download mosi --data-root {tmp_path}`")
    with pytest.raises(DataError) as info:
        dl.download("mosi", data_root=tmp_path, downloader=fake, say=lambda _: None)
    assert str(info.value) == (f"{dest} is a folder, not a file, where the download of {MOSI} goes: move it away "
                               f"(or choose another --data-root), then run the command again")
    assert fake.fetched == []
    monkeypatch.setattr(commands, "default_downloader", lambda: fake)
    assert main(["download", "mosi", "--data-root", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert len(captured.err.strip().splitlines()) == 1 and "is a folder, not a file" in captured.err
    assert main(["download", "--check", "--data-root", str(tmp_path)]) == 1
    assert fake.fetched == []
    # A file where one of its folders goes.
    dest.rmdir()
    dest.parent.rmdir()
    dest.parent.write_bytes(b"x")
    with pytest.raises(DataError, match=f"^{dest.parent} is a file, not a folder, where the download"):
        dl.download("mosi", data_root=tmp_path, downloader=fake, say=lambda _: None)
    assert fake.fetched == []


# ------------------------------------------------------------------ permissions

@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640)])
def test_a_downloaded_file_gets_the_permissions_of_a_plain_file(tmp_path, published_mosi, umask, mode):
    """gdown's temporary file is 0600 (the fake writes it so); the file in place is not."""
    old = os.umask(umask)
    try:
        (path,) = dl.download("mosi", data_root=tmp_path, downloader=FakeDownloader({MOSI: GOOD}), say=lambda _: None)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == mode


def test_the_facts_are_read_from_the_table_as_it_is_when_asked(tmp_path, monkeypatch):
    """PUBLISHED_SHA256 and REAL_LAYOUT were frozen when the module was imported: a caller in Python
    who named a datasets file afterwards ($MMSA_ATSUKO_DATASETS) got 'no usable real_sizes'."""
    import yaml
    digest = hashlib.sha256(b"probe").hexdigest()
    block = {"format": "mmsa", "task": "regression", "metrics": "mosi", "headline": "MAE", "language": "en",
             "label_range": [-3.0, 3.0], "files": {"unaligned": "Probe/Processed/probe.pkl"}, "config": {},
             "download": "mmsa-drive", "sha256": {"unaligned": digest},
             "real_sizes": {"train": 10, "valid": 4, "test": 6},
             "real_shapes": {"unaligned": {"text": [3, 768], "audio": [5, 2], "vision": [7, 4]}}}
    (tmp_path / "probe.yaml").write_text(yaml.safe_dump({"datasets": {"probe": block}}))
    with pytest.raises(KeyError):
        dl.published_sha256("Probe/Processed/probe.pkl")
    monkeypatch.setenv("MMSA_ATSUKO_DATASETS", str(tmp_path / "probe.yaml"))
    assert dl.published_sha256("Probe/Processed/probe.pkl") == digest
    per_sample = (3 * 768 + 5 * 2 + 7 * 4) * dl.FLOAT_BYTES
    assert dl.size_bounds("Probe/Processed/probe.pkl") == (per_sample * 20, dl.SIZE_SLACK * per_sample * 20
                                                           + dl.SIZE_MARGIN)
    assert dl.published_sha256(SIMSV2) is None and dl.published_sha256(MOSI) == dataset_facts("mosi")[
        "sha256"]["unaligned"]


def _own_downloadable(folder: Path, entry: str) -> Path:
    """A --datasets file whose one block is downloadable from MMSA's folder, its unaligned file at `entry`."""
    import yaml
    block = {"format": "mmsa", "task": "regression", "metrics": "mosi", "headline": "MAE", "language": "en",
             "label_range": [-3.0, 3.0], "files": {"unaligned": entry}, "config": {}, "download": "mmsa-drive",
             "real_sizes": {"train": 10, "valid": 4, "test": 6},
             "real_shapes": {"unaligned": {"text": [3, 768], "audio": [5, 2], "vision": [7, 4]}}}
    (folder / "probe.yaml").write_text(yaml.safe_dump({"datasets": {"probe": block}}))
    return folder / "probe.yaml"


def everything_under(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


@pytest.mark.parametrize("escape", ["../outside/sub/probe.pkl", "Probe/../../outside/probe.pkl"])
def test_a_download_whose_files_entry_leaves_the_data_root_creates_nothing_outside(tmp_path, monkeypatch, escape,
                                                                                   capsys):
    """The folders and the lock of such a download were made beside the data root before the fetch failed."""
    monkeypatch.setenv("MMSA_ATSUKO_DATASETS", str(_own_downloadable(tmp_path, escape)))
    root = tmp_path / "root"
    root.mkdir()
    fake = FakeDownloader({escape: b"\x80\x04N."})
    monkeypatch.setattr(commands, "default_downloader", lambda: fake)
    assert main(["download", "probe", "--data-root", str(root)]) == 2
    assert fake.fetched == []
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "leaves the data root ('..')" in err and "Traceback" not in err
    assert everything_under(tmp_path) == ["probe.yaml", "root"]


def test_a_download_whose_files_entry_is_absolute_writes_nothing_there(tmp_path, monkeypatch):
    """An absolute entry names a file of your own to read; a download made its folders and lock there."""
    target = tmp_path / "elsewhere" / "sub" / "probe.pkl"
    monkeypatch.setenv("MMSA_ATSUKO_DATASETS", str(_own_downloadable(tmp_path, str(target))))
    root = tmp_path / "root"
    fake = FakeDownloader({str(target): b"\x80\x04N."})
    with pytest.raises(DataError, match="absolute path, and a download writes only under the data root"):
        dl.download("probe", data_root=root, downloader=fake, say=lambda _: None)
    assert fake.fetched == [] and everything_under(tmp_path) == ["probe.yaml"]


@pytest.mark.parametrize("check", [True, False])
def test_a_data_root_whose_name_is_too_long_is_one_line(tmp_path, capsys, check):
    """`run.py download` and its --check stopped in an OSError (ENAMETOOLONG) traceback at the first look under it."""
    root = tmp_path / ("a" * 300)
    argv = ["download", "--check"] if check else ["download", "mosi"]
    assert main([*argv, "--data-root", str(root)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "(--data-root) names no folder (it, or a folder name in it, is longer than the " \
        "system allows): give a shorter path" in err, err[-300:]


def test_a_download_never_writes_through_a_link_out_of_the_data_root(tmp_path, published_mosi):
    """A data root from elsewhere (an unpacked archive, a shared folder) holding MOSI -> a folder outside it: the
    download made Processed/, its lock, its scratch folder and the file there."""
    outside, root = tmp_path / "outside", tmp_path / "root"
    outside.mkdir()
    root.mkdir()
    (root / "MOSI").symlink_to(outside)
    fake = FakeDownloader({MOSI: GOOD})
    with pytest.raises(DataError, match=rf"^{root / 'MOSI'} is a symbolic link to {outside}, and the download of "
                                        rf"{MOSI} would write there, outside the data root {root}: download into"):
        dl.download("mosi", data_root=root, downloader=fake, say=lambda _: None)
    assert fake.fetched == [] and list(outside.iterdir()) == []


def test_a_link_to_the_same_path_on_another_disk_names_the_data_root_that_writes_there(tmp_path, published_mosi):
    """R/MOSI -> /big/MOSI keeps data on another disk: the refusal said only to download elsewhere and move the file;
    it names `--data-root /big`, which writes exactly where the link leads, and that root downloads there."""
    big, root = tmp_path / "big", tmp_path / "root"
    (big / "MOSI").mkdir(parents=True)
    root.mkdir()
    (root / "MOSI").symlink_to(big / "MOSI")
    fake = FakeDownloader({MOSI: GOOD})
    with pytest.raises(DataError) as refused:
        dl.download("mosi", data_root=root, downloader=fake, say=lambda _: None)
    assert str(refused.value) == (f"{root / 'MOSI'} is a symbolic link to {big / 'MOSI'}, and the download of {MOSI} "
                                  f"would write there, outside the data root {root}: --data-root {big} writes exactly "
                                  f"there")
    assert fake.fetched == [] and list((big / "MOSI").iterdir()) == []
    (path,) = dl.download("mosi", data_root=big, downloader=fake, say=lambda _: None)
    assert path == big / MOSI and (root / MOSI).read_bytes() == GOOD


def test_a_download_goes_through_a_link_inside_the_data_root_and_into_a_root_that_is_a_link(tmp_path, published_mosi):
    """Links that keep the file under the data root are the owner's layout: the root given as a link, MOSI -> a
    folder of the root."""
    real = tmp_path / "disk"
    (real / "mosi-files").mkdir(parents=True)
    (tmp_path / "root").symlink_to(real)
    (real / "MOSI").symlink_to(real / "mosi-files")
    (path,) = dl.download("mosi", data_root=tmp_path / "root", downloader=FakeDownloader({MOSI: GOOD}),
                          say=lambda _: None)
    assert (real / "mosi-files" / "Processed" / "unaligned_50.pkl").read_bytes() == GOOD


def test_a_verified_file_behind_a_link_out_of_the_root_is_kept_as_it_is(tmp_path, published_mosi):
    """Nothing is written when the file there verifies: the link is refused only where a download would write."""
    outside, root = tmp_path / "outside", tmp_path / "root"
    (outside / "Processed").mkdir(parents=True)
    (outside / "Processed" / "unaligned_50.pkl").write_bytes(GOOD)
    root.mkdir()
    (root / "MOSI").symlink_to(outside)
    lines = []
    dl.download("mosi", data_root=root, downloader=FakeDownloader({}, online=False), say=lines.append)
    assert "is already there" in lines[0] and sorted(p.name for p in (outside / "Processed").iterdir()) == [
        "unaligned_50.pkl"]
