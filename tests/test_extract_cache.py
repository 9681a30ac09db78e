"""extract's cache files are read as hostile: checked before use, and never taken from beside --out.

A red team found the cache trusted whole: a `<out>.cache/` that came with a shared folder stood in for the
features unseen, a zip bomb was inflated whole (3.4 MB: 50 s and 3.9 GB), an array of the wrong width was a
traceback, and NaN features were written with exit 0. Each test here extracts two clips, spoils a cache file
as found, extracts again and compares with the first file.
"""
import hashlib
import io
import os
import pickle
import shlex
import subprocess
import sys
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from media_fixtures import require_extract, write_video

from mmsa_atsuko.cli import main
from mmsa_atsuko.data.extract import ExtractConfig, extract
from mmsa_atsuko.data.tiny_bert import write_tiny_bert

SMALL = ExtractConfig(text_len=12, audio_len=40, vision_len=15)
CLIPS = ("a", "b")


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    require_extract()
    root = tmp_path_factory.mktemp("cache")
    videos = root / "videos"
    videos.mkdir()
    for i, clip in enumerate(CLIPS):
        write_video(videos / f"{clip}.mp4", seed=i)
    transcripts = root / "t.csv"
    transcripts.write_text("id,text,label,split\na,w001 w002,1.0,train\nb,w003,-1.0,test\n")
    return {"videos": videos, "transcripts": transcripts, "bert": write_tiny_bert(root / "bert")}


@pytest.fixture
def user_cache(tmp_path, monkeypatch):
    folder = tmp_path / "user-cache"
    monkeypatch.setenv("MMSA_ATSUKO_CACHE", str(folder))
    return folder


def _extract(clips, out, lines=None):
    return extract(clips["videos"], clips["transcripts"], out, bert=clips["bert"], config=SMALL,
                   echo=(lines.append if lines is not None else lambda _: None))


def _raw(path):
    with open(path, "rb") as f:
        return pickle.load(f)


def _cache_file(out, clip) -> Path:
    """The one cache file of `clip`, wherever extract keeps it (beside --out before, the user's cache now)."""
    found = [*out.with_name(out.name + ".cache").glob(f"{clip}-*.npz"),
             *(Path(os.environ["MMSA_ATSUKO_CACHE"]) / "extract_features").glob(f"{clip}-*.npz")]
    assert len(found) == 1, found
    return found[0]


MIB = 1 << 20


def _stamp(video: Path) -> np.ndarray:
    """What extract stamps a cache file with: size, mtime_ns and the sha256 of the first and last MiB (the whole of a
    video of 2 MiB or less) as four little-endian int64."""
    st, data = video.stat(), video.read_bytes()
    sampled = hashlib.sha256(data[:MIB] + data[max(MIB, len(data) - MIB):]).digest()
    return np.array([st.st_size, st.st_mtime_ns, *np.frombuffer(sampled, "<i8")], np.int64)


def _spoil_and_extract_again(clips, tmp_path, spoil):
    """(the first file, the second, what the second call printed, its result) after `spoil(cache file of a,
    video of a)` between two calls."""
    out = tmp_path / "f.pkl"
    _extract(clips, out)
    first = _raw(out)
    spoil(_cache_file(out, "a"), clips["videos"] / "a.mp4")
    lines = []
    result = _extract(clips, out, lines)
    return first, _raw(out), lines, result


def _same_features(first, second):
    for split in ("train", "test"):
        for key in ("audio", "vision", "audio_lengths", "vision_lengths"):
            assert np.array_equal(first[split][key], second[split][key]), (split, key)


def _saved_with(path, video, **changed):
    """Rewrite the cache file at `path` with `changed` arrays, its stamp still the video's."""
    with np.load(path) as saved:
        arrays = {key: saved[key] for key in saved.files}
    arrays.update(stamp=_stamp(video), **changed)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def test_a_zip_bomb_is_refused_by_its_declared_size_before_it_is_inflated(clips, tmp_path, user_cache):
    """np.savez_compressed of 50,000 x 25 zeros is 5 MB in a file of under 12 KB (what a cache file of these
    settings may take): it was inflated whole, its rows cut and the clip counted from the cache. Its zip declares
    5 MB for the audio, over the 4,000 bytes (40 rows of 25 float32) and a header a file of these settings holds:
    it is not used, and the clip is extracted again."""
    def bomb(path, video):
        with np.load(path) as saved:
            arrays = {key: saved[key] for key in saved.files}
        with open(path, "wb") as f:
            np.savez_compressed(f, **{**arrays, "audio": np.zeros((50_000, 25), np.float32)})
        assert path.stat().st_size < 12_000

    first, second, lines, result = _spoil_and_extract_again(clips, tmp_path, bomb)
    assert (result.extracted, result.cached) == (1, 1)
    _same_features(first, second)
    (line,) = [line for line in lines if line.startswith("cache file")]
    assert f"(its audio declares {50_000 * 25 * 4 + 128} bytes, over the {40 * 25 * 4 + 256} " in line, line
    assert line.endswith(": extracting a again")


def test_a_zip_bomb_is_checked_without_inflating_it(tmp_path):
    """The red team's bomb, 30,000,000 x 29 zeros (3.5 GB) in 3.4 MB, took 50 s and 3.9 GB. One of a thirtieth
    its rows (116 MB in 113 KB) is larger than any cache file of these settings (40 audio and 15 vision rows:
    13,232 bytes: the stamp is 6 int64): it is refused unread."""
    from mmsa_atsuko.data.extract.feature_cache import CacheShape, read_cached
    video, cache = tmp_path / "v.mp4", tmp_path / "v.npz"
    video.write_bytes(b"a clip")
    np.savez_compressed(cache, stamp=_stamp(video), seconds=np.float64(2.0), vision=np.zeros((15, 74), np.float32),
                        audio=np.zeros((1_000_000, 29), np.float32))
    tracemalloc.start()
    try:
        found = read_cached(cache, video, CacheShape(29, 40, 15))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert found == (None, "it is larger than the 13232 bytes a cache file of these settings takes")
    assert peak < 2 ** 20, peak


def test_audio_of_the_wrong_width_is_not_used(clips, tmp_path, user_cache):
    """Audio of 5 columns where opensmile gives 25 was a ValueError traceback (broadcast into the padded array)."""
    first, second, lines, result = _spoil_and_extract_again(
        clips, tmp_path, lambda path, video: _saved_with(path, video, audio=np.ones((52, 5), np.float32)))
    assert (result.extracted, result.cached) == (1, 1)
    _same_features(first, second)
    assert any("(its audio has shape (52, 5), not (at most 40, 25))" in line for line in lines), lines


def test_rows_past_the_padded_length_are_not_used(clips, tmp_path, user_cache):
    """41 rows where the padded length is 40: no cache file extract writes holds them."""
    first, second, lines, result = _spoil_and_extract_again(
        clips, tmp_path, lambda path, video: _saved_with(path, video, audio=np.ones((41, 25), np.float32)))
    assert (result.extracted, result.cached) == (1, 1)
    _same_features(first, second)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_vision_that_is_not_finite_is_not_used(clips, tmp_path, user_cache, bad):
    """NaN vision was written with exit 0 (training refused the file later)."""
    def spoil(path, video):
        with np.load(path) as saved:
            vision = saved["vision"].copy()
        vision[3, 5] = bad
        _saved_with(path, video, vision=vision)

    first, second, lines, result = _spoil_and_extract_again(clips, tmp_path, spoil)
    assert (result.extracted, result.cached) == (1, 1)
    _same_features(first, second)
    assert np.isfinite(second["train"]["vision"]).all()
    assert any("(its vision holds values that are not finite (NaN or infinite))" in line for line in lines), lines


def test_a_cache_folder_beside_out_is_never_read(clips, tmp_path, user_cache, capsys):
    """A `<out>.cache/` that came with a shared folder, its files forged (every feature 7.0) under the names and
    stamps extract gave them: "0 videos extracted, 2 from the cache", exit 0, the forged features in the file.
    Its names and stamps are no secret (ids, a settings hash, sizes and mtimes an archive sets); extract keeps
    its cache in the user's own now, and says it ignores this one."""
    reference = tmp_path / "reference.pkl"
    _extract(clips, reference)
    out = tmp_path / "shared" / "f.pkl"
    planted = out.with_name("f.pkl.cache")
    planted.mkdir(parents=True)
    for clip in CLIPS:
        settings = _cache_file(reference, clip).name.rsplit("-", 1)[1]          # '<media hash>.npz'
        video = clips["videos"] / f"{clip}.mp4"
        name = f"{clip}-{hashlib.sha256(clip.encode()).hexdigest()[:8]}-{settings}"   # as extract named them
        np.savez(planted / name, stamp=_stamp(video), seconds=np.float64(1.2),
                 audio=np.full((30, 25), 7.0, np.float32), vision=np.full((12, 74), 7.0, np.float32))
    code = main(["extract", "--videos", str(clips["videos"]), "--transcripts", str(clips["transcripts"]),
                 "--out", str(out), "--bert", str(clips["bert"]), "--text-len", "12", "--audio-len", "40",
                 "--vision-len", "15"])
    printed = capsys.readouterr().out
    assert code == 0 and "(train 1, test 1; 0 videos extracted, 2 from the cache, 0 skipped)" in printed, printed
    assert f"ignoring {planted} (extract reads no cache beside --out any more" in printed, printed
    _same_features(_raw(reference), _raw(out))
    assert not (_raw(out)["train"]["audio"] == 7.0).any()


def test_a_link_beside_out_where_the_cache_was_is_left_alone(clips, tmp_path, user_cache):
    """`<out>.cache` as a link to another's folder was followed (every clip's features written where it led);
    then refused before any work. Nothing is read or written there now."""
    victim = tmp_path / "victim"
    victim.mkdir()
    out = tmp_path / "out" / "f.pkl"
    out.parent.mkdir()
    out.with_name("f.pkl.cache").symlink_to(victim, target_is_directory=True)
    lines = []
    result = _extract(clips, out, lines)
    assert result.counts == {"train": 1, "test": 1} and list(victim.iterdir()) == []
    assert any(line.startswith("ignoring ") for line in lines), lines


def test_the_line_about_an_old_cache_beside_out_gives_the_command_that_removes_it(clips, tmp_path, user_cache):
    """'ignoring <out>.cache (...): delete it' came on every call and left the user to work out how. It ends with
    the command now, quoted for a shell (the folder's name holds a space and a quote): run as printed, it removes
    the folder (a link: the link alone), and the next call says nothing of it."""
    out = tmp_path / "it's shared" / "f.pkl"
    old = out.with_name("f.pkl.cache")
    (old / "sub").mkdir(parents=True)
    (old / "sub" / "a-1-2.npz").write_bytes(b"old")
    victim = tmp_path / "victim"
    victim.mkdir()
    for made in ("folder", "link"):
        if made == "link":
            old.symlink_to(victim, target_is_directory=True)
        lines = []
        _extract(clips, out, lines)
        (line,) = [line for line in lines if line.startswith("ignoring ")]
        command = line.rsplit("remove it with  ", 1)[1]
        assert command.startswith("rm -r -- ") and shlex.split(command)[3] == str(old), line
        subprocess.run(["sh", "-c", command], check=True)
        assert not os.path.lexists(old) and victim.is_dir()
        lines = []
        _extract(clips, out, lines)
        assert not any(line.startswith("ignoring ") for line in lines), lines


def test_a_video_replaced_by_another_of_its_size_and_mtime_is_a_miss(tmp_path):
    """The stamp was the video's size and mtime: a video replaced by another of its size with the mtime kept (rsync -t,
    cp -p, tar) was served the old video's features. A byte changed in the first or the last MiB of a 3 MiB video, its
    mtime set back to the nanosecond, is a miss now; the video as it was is still a hit. The cache file is stamped as
    extract stamps it (`file_stamp`), which is the stamp worked out here."""
    from mmsa_atsuko.data.extract.feature_cache import CacheShape, file_stamp, read_cached
    video, cache = tmp_path / "v.mp4", tmp_path / "v.npz"
    original = np.random.default_rng(0).bytes(3 * MIB)
    shape = CacheShape(25, 40, 15)
    for where in (10, 3 * MIB - 10):
        video.write_bytes(original)
        os.utime(video, ns=(1_600_000_000_123_456_789, 1_600_000_000_123_456_789))
        np.savez(cache, stamp=file_stamp(video), seconds=np.float64(2.0), audio=np.ones((3, 25), np.float32),
                 vision=np.ones((2, 74), np.float32))
        features, why = read_cached(cache, video, shape)
        assert why is None and features["seconds"] == 2.0
        replaced = bytearray(original)
        replaced[where] ^= 0xFF
        video.write_bytes(bytes(replaced))
        os.utime(video, ns=(1_600_000_000_123_456_789, 1_600_000_000_123_456_789))
        assert read_cached(cache, video, shape) == (None, None), where
        assert np.array_equal(file_stamp(video), _stamp(video))


def test_a_cache_file_of_the_stamp_before_is_a_quiet_miss(clips, tmp_path, user_cache):
    """A cache file extract wrote before the stamp held sampled bytes (named without `-stamp2`, its stamp size and
    mtime) is never read: its clip is extracted again without a line, never a crash."""
    out = tmp_path / "f.pkl"
    _extract(clips, out)
    first = _raw(out)
    for clip in CLIPS:
        new = _cache_file(out, clip)
        video = clips["videos"] / f"{clip}.mp4"
        with np.load(new) as saved:
            arrays = {key: saved[key] for key in saved.files}
        new.unlink()
        with open(new.with_name(new.name.replace("-stamp2.npz", ".npz")), "wb") as f:
            np.savez(f, **{**arrays, "stamp": np.array([video.stat().st_size, video.stat().st_mtime_ns], np.int64)})
    lines = []
    result = _extract(clips, out, lines)
    assert (result.extracted, result.cached) == (2, 0) and not any("cache file" in line for line in lines), lines
    _same_features(first, _raw(out))


def test_extract_says_what_its_cache_holds_and_clean_empties_that_cache_alone(clips, tmp_path, user_cache, capsys,
                                                                              monkeypatch):
    """Nothing ever emptied `<cache>/extract_features/`. `run.py extract` ends with a line saying what it holds (its
    cache files, and what a killed writer left), and `run.py clean --extract-cache` removes those files and nothing
    else of the user's cache (MIntRec's text features live there too), with no results folder needed; the next
    extract extracts every video again."""
    monkeypatch.chdir(tmp_path)                 # no results/ here
    folder = user_cache / "extract_features"
    folder.mkdir(parents=True)
    (folder / ".a-1-2-stamp2.npz.tmp-99-0a0b0c0d").write_bytes(b"\0" * 1000)     # what a killed writer left
    mintrec = user_cache / "mintrec_text_features" / "bert-0123.safetensors"
    mintrec.parent.mkdir()
    mintrec.write_bytes(b"kept")
    argv = ["extract", "--videos", str(clips["videos"]), "--transcripts", str(clips["transcripts"]),
            "--out", str(tmp_path / "f.pkl"), "--bert", str(clips["bert"]), "--text-len", "12", "--audio-len", "40",
            "--vision-len", "15"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    total = sum(path.stat().st_size for path in folder.iterdir())
    assert len(list(folder.iterdir())) == 3 and 1_000 < total < 1_000_000
    lines = printed.splitlines()
    said = lines[[i for i, line in enumerate(lines) if line.startswith("wrote ")][0] + 1]      # the line after it
    assert said == (f"extract's cache {folder} holds 3 file(s), {total / 1000:.1f} kB: "
                    f"`run.py clean --extract-cache` empties it"), printed
    assert main(["clean", "--extract-cache"]) == 0
    assert capsys.readouterr().out == f"removed 3 file(s), {total / 1000:.1f} kB, from extract's cache {folder}\n"
    assert list(folder.iterdir()) == [] and mintrec.read_bytes() == b"kept"
    assert main(argv) == 0
    assert "2 videos extracted, 0 from the cache" in capsys.readouterr().out


HOLD_CACHE = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_CREAT, 0o644)
fcntl.flock(fd, fcntl.LOCK_SH)      # as an extract holds it (feature_cache.using_cache)
print("held", flush=True)
sys.stdin.read()                    # until the test closes our stdin
"""


def test_clean_refuses_while_another_process_holds_the_cache_as_an_extract_does(user_cache, tmp_path, capsys,
                                                                                  monkeypatch):
    """clean --extract-cache took no lock: run beside an extract, it removed the cache files of clips the extract had
    just extracted, which it then skipped. Now, while another process holds the cache's lock (`extract_features.lock`
    beside the folder) shared, as an extract does from its first look at the cache to its reading the clips back (the
    test below), clean refuses in one line naming that process, exit 1, removing nothing; once it ends, clean removes
    the cache files, and neither counts nor removes the lock file."""
    monkeypatch.chdir(tmp_path)
    folder = user_cache / "extract_features"
    folder.mkdir(parents=True)
    (folder / "a-1-2-stamp2.npz").write_bytes(b"\0" * 2000)
    lock = user_cache / "extract_features.lock"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_CACHE, str(lock)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        assert main(["clean", "--extract-cache"]) == 1
        out, err = capsys.readouterr()
        assert out == "" and err == (f"error: an extract is running (pid {holder.pid}) with extract's cache {folder}, "
                                     f"and would skip the clips whose files a clean removed: run clean after it "
                                     f"ends; nothing was removed\n")
        assert [path.name for path in folder.iterdir()] == ["a-1-2-stamp2.npz"]
        # /proc/locks naming no holder (overlayfs or btrfs print another device than stat's, in any container): it
        # guessed 'another host's or container's?'
        from mmsa_atsuko.data.extract import feature_cache
        monkeypatch.setattr(feature_cache, "holder_pids", lambda path: [])
        assert main(["clean", "--extract-cache"]) == 1
        assert capsys.readouterr().err == (f"error: an extract is running (its pid unknown) with extract's cache "
                                           f"{folder}, and would skip the clips whose files a clean removed: run "
                                           f"clean after it ends; nothing was removed\n")
        assert [path.name for path in folder.iterdir()] == ["a-1-2-stamp2.npz"]
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    assert holder.returncode == 0
    assert main(["clean", "--extract-cache"]) == 0
    assert capsys.readouterr().out == f"removed 1 file(s), 2.0 kB, from extract's cache {folder}\n"
    assert list(folder.iterdir()) == [] and lock.is_file()


def test_a_clean_during_an_extract_is_refused_and_the_extract_keeps_its_clips(clips, tmp_path, user_cache, capsys,
                                                                              monkeypatch):
    """A clean run between an extract's extracting its clips and its reading them back removed their cache files:
    both clips were skipped ('failed the cache's checks once extracted'), and no file was written. The extract holds
    the cache's lock over both, so that clean is refused, and the extract writes both clips."""
    from mmsa_atsuko.data.extract import clip_features
    cleans = []

    def run_videos_then_clean(*args, **kwargs):
        skipped = real_run_videos(*args, **kwargs)
        cleans.append(main(["clean", "--extract-cache"]))
        return skipped

    real_run_videos = clip_features.run_videos
    monkeypatch.setattr(clip_features, "run_videos", run_videos_then_clean)
    result = _extract(clips, tmp_path / "f.pkl")
    assert cleans == [1] and f"error: an extract is running (pid {os.getpid()}) " in capsys.readouterr().err
    assert result.skipped == [] and result.extracted == 2 and result.counts == {"train": 1, "test": 1}
    assert len(list((user_cache / "extract_features").iterdir())) == 2


def test_a_member_that_inflates_past_its_declared_size_is_not_read_past_it(tmp_path):
    """A zip of under 12 KB (what a cache file of these settings may take) whose audio declares 4,000 bytes but
    inflates to 8 MB: zipfile inflates no more than the size declared, and the member then fails its .npy header,
    so it is a miss, not 8 MB of memory."""
    from mmsa_atsuko.data.extract.feature_cache import CacheShape, read_cached
    video, cache = tmp_path / "v.mp4", tmp_path / "v.npz"
    video.write_bytes(b"a clip")
    buffer = io.BytesIO()
    np.save(buffer, np.zeros((80_000, 25), np.float32))
    arrays = {"stamp": _stamp(video), "seconds": np.float64(1.0), "vision": np.zeros((1, 74), np.float32)}
    with zipfile.ZipFile(cache, "w", zipfile.ZIP_DEFLATED) as archive:
        for key, value in arrays.items():
            one = io.BytesIO()
            np.save(one, value)
            archive.writestr(f"{key}.npy", one.getvalue())
        archive.writestr("audio.npy", buffer.getvalue())
    raw = bytearray(cache.read_bytes())
    central = raw.rindex(b"audio.npy") - 46             # its central directory record: 46 bytes, then its name
    assert raw[central:central + 4] == b"PK\x01\x02"
    assert int.from_bytes(raw[central + 24:central + 28], "little") == 8_000_128
    raw[central + 24:central + 28] = (4000).to_bytes(4, "little")     # its declared (uncompressed) size
    cache.write_bytes(bytes(raw))
    assert len(raw) < 12_000
    tracemalloc.start()
    try:
        features, why = read_cached(cache, video, CacheShape(25, 40, 15))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert features is None and why.startswith("it cannot be read"), why
    assert peak < 2 ** 20, peak


def test_features_that_fail_the_checks_as_extracted_are_skipped_not_written(clips, tmp_path, user_cache, monkeypatch):
    """What the workers write is read back as any cache file is: vision with a NaN, as an extractor gave it, went
    into the file (exit 0, training refused it later); now the clip is skipped, saying why, and the rest written."""
    from clip_fakes import nan_vision_for_a
    from mmsa_atsuko.data.extract import clip_workers
    monkeypatch.setattr(clip_workers, "extract_one", nan_vision_for_a)      # the worker's extractor gives a a NaN
    out = tmp_path / "f.pkl"
    result = _extract(clips, out)
    assert result.skipped == ["a: its features failed the cache's checks once extracted (its vision holds values "
                              "that are not finite (NaN or infinite))"]
    assert result.counts == {"test": 1} and np.isfinite(_raw(out)["test"]["vision"]).all()
