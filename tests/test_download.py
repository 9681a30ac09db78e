"""`run.py download`: fetch to a temporary name, verify, rename; offline -> one line with the
manual steps; `--check`. The network is never touched: a fake `Downloader` serves local
bytes, and the real one is only run with `socket.create_connection` failing."""
import hashlib
import pickle
import socket
from pathlib import Path

import pytest

from mmsa_atsuko.cli import main
from mmsa_atsuko.data import download as dl
from mmsa_atsuko.errors import DataError

MOSI = "MOSI/Processed/unaligned_50.pkl"
SIMSV2 = "SIMSv2/Processed/sims_unaligned.pkl"
GOOD = pickle.dumps({"train": {}, "valid": {}, "test": {}}, protocol=4)


class FakeDownloader:
    """Serves `files[relpath]` (bytes). `online=False` fails the connectivity check;
    `interrupt_after` writes that many bytes, then raises KeyboardInterrupt."""

    def __init__(self, files, online=True, interrupt_after=None):
        self.files, self.online, self.interrupt_after = files, online, interrupt_after
        self.fetched = []

    def check_online(self):
        if not self.online:
            raise dl.Offline("cannot reach drive.google.com (fake)")

    def fetch(self, relpath, dest):
        self.fetched.append((relpath, Path(dest)))
        data = self.files[relpath]
        with open(dest, "wb") as f:
            if self.interrupt_after is not None:
                f.write(data[:self.interrupt_after])
                raise KeyboardInterrupt
            f.write(data)


@pytest.fixture
def published_mosi(monkeypatch):
    """MOSI's published checksum, replaced by the one of our stand-in file."""
    monkeypatch.setitem(dl.PUBLISHED_SHA256, MOSI, hashlib.sha256(GOOD).hexdigest())


def only_final_files(folder: Path):
    """Everything under `folder` (hidden temporary files included)."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


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
    assert hashlib.sha256(GOOD + b"tampered").hexdigest() in message and dl.PUBLISHED_SHA256[MOSI] in message
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
        def fetch(self, relpath, dest):
            Path(f"{dest}a1b2c3d4.part").write_bytes(GOOD[:10])
            raise dl.FetchFailed("gdown failed: Download is incomplete")

    with pytest.raises(DataError, match="Download is incomplete"):
        dl.download("mosi", data_root=tmp_path, downloader=GdownLike({}), say=lambda _: None)
    assert sorted(p.name for p in (tmp_path / MOSI).parent.iterdir()) == []


@pytest.fixture(scope="module")
def simsv2_file(tmp_path_factory):
    """A small SIMSv2 feature file in MMSA's format: what the structure check must accept."""
    from mmsa_atsuko.data.synthetic import write_synthetic
    return write_synthetic("simsv2", tmp_path_factory.mktemp("simsv2") / "sims_unaligned.pkl").read_bytes()


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
    assert not list((tmp_path / SIMSV2).parent.glob(".*"))


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
    monkeypatch.setattr(dl, "default_downloader", lambda: fake)
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
    assert "python run.py download mosei --aligned" in states["mosei", "aligned"].detail

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
