"""Hostile inputs of 1 KB to 10 MB through the project's loaders: seconds and peak extra memory.

    nice -n 10 python bench/bench_hostile.py [--sizes 1e3 1e5 1e6 1e7] [--timeout 30] [--only NAME ...]

Target (issue 20): every hostile loader case fails in under 1 s and under 200 MB of extra memory.
Four loaders, each as the toolkit calls it:

- features: `mmsa_atsuko.data.load_dataset("mosi", feature_path=F)` (the restricted unpickler,
  then the format checks; a fresh hash cache, so every load also computes the file's sha256);
- best.pt: `mmsa_atsuko.predict.checkpoint.load_checkpoint(run folder)` (model.json of a real run, then the
  file as its best.pt; `run.py predict`, and `torch.load(weights_only=True)` as analysis and
  --resume call it);
- model.json: the same `load_checkpoint`, the run's own best.pt beside a hostile model.json (a
  card's config sizes the model: before it was checked, a 1.7 KB card took 4.6 GB);
- runs.jsonl: `results.ok_records(results.read_records(folder))`, what every table reads first.

Each kind of file is built at every size (`fill` repeats its unit up to the size), beside a valid
file of about the same size for that loader (a real-format feature file with as many samples as
fit, a torch.save of one float tensor, real records repeated), so a slow case can be told from a
large file: the table gives each case's time over the valid file's. Cases run one after another
in a child process that imports everything first; before each, the child's peak RSS is reset
(/proc/self/clear_refs), so "extra MB" is the peak RSS during the load over the RSS before it.
A case that runs past --timeout is killed and the rest go on in a new child.

Outcome: `refused` (a one-line ToolkitError, as the CLI prints it), `loaded`, or `raised X` (an
exception the CLI would print as a traceback). Cases over 1 s or 200 MB are marked OVER.
"""
import argparse
import io
import json
import os
import random
import select
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SECONDS, MEGABYTES = 1.0, 200

# ------------------------------------------------------------------------------------------
# pickle opcodes
# ------------------------------------------------------------------------------------------
PROTO2, PROTO4, STOP, NONE, POP, MARK = b"\x80\x02", b"\x80\x04", b".", b"N", b"0", b"("
EMPTY_LIST, EMPTY_DICT, EMPTY_SET, EMPTY_TUPLE = b"]", b"}", b"\x8f", b")"
LIST, APPENDS, SETITEMS, SETITEM, TUPLE1, TUPLE2, REDUCE = b"l", b"e", b"u", b"s", b"\x85", b"\x86", b"R"
MEMOIZE = b"\x94"


def put(i):
    return b"q" + bytes([i]) if i < 256 else b"r" + struct.pack("<I", i)


def get(i):
    return b"h" + bytes([i]) if i < 256 else b"j" + struct.pack("<I", i)


def binunicode(text: str) -> bytes:
    data = text.encode()
    return b"X" + struct.pack("<I", len(data)) + data


def fill(head: bytes, unit, tail: bytes, size: int) -> bytes:
    """head + units + tail, about `size` bytes; `unit` is bytes or a function of the index."""
    parts, used, i = [head], len(head) + len(tail), 0
    while used < size:
        piece = unit(i) if callable(unit) else unit
        parts.append(piece)
        used += len(piece)
        i += 1
    return b"".join(parts) + tail


def shared_tuple(levels: int, first: int = 0) -> bytes:
    """t[i] = (t[i-1], t[i-1]) through the memo: 13 bytes a level, 2**levels paths to hash or print."""
    out = EMPTY_TUPLE + put(first) + POP
    for i in range(1, levels + 1):
        out += get(first + i - 1) + get(first + i - 1) + TUPLE2 + put(first + i) + (POP if i < levels else b"")
    return out


def shared_tuple_kept(levels: int) -> bytes:
    """The same tuple without POP, which torch's weights_only unpickler lacks: each level stays
    on the stack under what comes next, and in the memo at index `level`."""
    return EMPTY_TUPLE + put(0) + b"".join(get(i - 1) + get(i - 1) + TUPLE2 + put(i) for i in range(1, levels + 1))


def pickle_cases(size: int, rng: random.Random) -> dict:
    """Hostile (or merely odd) pickles of about `size` bytes, by name."""
    nop = NONE + POP
    return {
        "nop_pairs": fill(PROTO2, nop, NONE + STOP, size),                    # opcodes that build nothing
        "nones_on_stack": fill(PROTO2 + MARK, NONE, LIST + STOP, size),        # one pointer a byte
        "empty_sets": fill(PROTO4 + MARK, EMPTY_SET, LIST + STOP, size),       # 216 bytes of set a byte
        "empty_dicts": fill(PROTO2 + MARK, EMPTY_DICT, LIST + STOP, size),
        "empty_lists": fill(PROTO2 + MARK, EMPTY_LIST, LIST + STOP, size),
        "marks": fill(PROTO2, MARK, NONE + STOP, size),                        # a list on the metastack a byte
        "deep_tuple1": fill(PROTO2 + NONE, TUPLE1, STOP, size),
        "memoize": fill(PROTO4, NONE + MEMOIZE + POP, NONE + STOP, size),     # a memo entry per 3 bytes
        "memo_refs_in_list": fill(PROTO2 + binunicode("x") + put(0) + POP + EMPTY_LIST + MARK, get(0),
                                  APPENDS + STOP, size),
        "short_strings": fill(PROTO4 + EMPTY_LIST + MARK, lambda i: b"\x8c\x03" + f"{i % 1000:03d}".encode(),
                              APPENDS + STOP, size),
        "ints": fill(PROTO2 + EMPTY_LIST + MARK, lambda i: b"J" + struct.pack("<i", 1000 + i), APPENDS + STOP, size),
        "str_keys_dict": fill(PROTO2 + EMPTY_DICT + MARK, lambda i: binunicode(f"k{i}") + NONE, SETITEMS + STOP, size),
        "long_string": PROTO2 + binunicode("a" * max(0, size - 8)) + STOP,
        "huge_int": PROTO2 + b"\x8b" + struct.pack("<I", max(1, size - 8)) + b"\x01" * max(1, size - 8) + STOP,
        "shared_tuple_key": fill(PROTO2, nop, EMPTY_DICT + shared_tuple(30, 10) + NONE + SETITEM + STOP, size),
        "random_bytes": rng.randbytes(size),
        "random_after_proto": PROTO2 + rng.randbytes(max(0, size - 2)),
    }


# ------------------------------------------------------------------------------------------
# valid files of a given size, and damaged copies
# ------------------------------------------------------------------------------------------
def valid_features(size: int) -> bytes:
    """A real-format MOSI feature pickle of about `size` bytes (at least one sample per split):
    the small synthetic file's samples, repeated or cut; without the text features when small."""
    import pickle

    import numpy as np

    from mmsa_atsuko.data.synthetic import make_synthetic
    base = make_synthetic("mosi", size="small")

    def build(n: int, with_text: bool) -> bytes:
        data = {}
        for split, share in (("train", 0.6), ("valid", 0.2), ("test", 0.2)):
            source, k = base[split], max(1, round(n * share))
            take = [i % len(source["id"]) for i in range(k)]
            part = {}
            for key, value in source.items():
                if key == "text" and not with_text:
                    continue
                if key == "id":
                    part[key] = [f"{value[i]}_{j}" for j, i in enumerate(take)]
                elif isinstance(value, np.ndarray):
                    part[key] = value[take]
                else:
                    part[key] = [value[i] for i in take]
            data[split] = part
        return pickle.dumps(data, protocol=4)

    with_text = len(build(3, True)) <= size
    n = 3
    while len(blob := build(n, with_text)) < size and n < 100_000:
        n = max(n + 1, int(n * size / len(blob)))
    return blob if len(blob) <= size * 1.1 or n == 3 else build(n - 1, with_text)


def damaged(blob: bytes, rng: random.Random) -> dict:
    flipped = bytearray(blob)
    for _ in range(8):
        i = rng.randrange(len(flipped))
        flipped[i] ^= 1 << rng.randrange(8)
    return {"truncated": blob[: len(blob) // 2], "bit_flipped": bytes(flipped)}


def checkpoint_zip(data_pkl: bytes, zeros: int = 0, records: int = 0) -> bytes:
    """A best.pt in torch's zip layout whose data.pkl is `data_pkl`; with `zeros`, storage record 0
    holds that many zero bytes, deflated (torch writes its records stored, never compressed); with
    `records`, that many empty storage records (each buys the checker one tensor's budget)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", data_pkl)
        for key in range(records):
            z.writestr(f"archive/data/{key}", b"")
        z.writestr("archive/byteorder", "little")
        if zeros:
            info = zipfile.ZipInfo("archive/data/0")
            info.compress_type = zipfile.ZIP_DEFLATED
            with z.open(info, "w", force_zip64=True) as record:
                block = bytes(1 << 20)
                for start in range(0, zeros, len(block)):
                    record.write(block[: min(len(block), zeros - start)])
        z.writestr("archive/version", "3\n")
    return out.getvalue()


def tensor_pickle(numel: int) -> bytes:
    """data.pkl of an OrderedDict {'w': float tensor of numel elements in storage '0'}, as torch writes it."""
    glob = lambda m, n: b"c" + m.encode() + b"\n" + n.encode() + b"\n"            # noqa: E731
    return (PROTO2 + glob("collections", "OrderedDict") + EMPTY_TUPLE + REDUCE + binunicode("w")
            + glob("torch._utils", "_rebuild_tensor_v2") + MARK + MARK + binunicode("storage")
            + glob("torch", "FloatStorage") + binunicode("0") + binunicode("cpu") + b"J" + struct.pack("<i", numel)
            + b"t" + b"Q" + b"K\x00" + b"J" + struct.pack("<i", numel) + TUPLE1 + b"K\x01" + TUPLE1 + b"\x89"
            + glob("collections", "OrderedDict") + EMPTY_TUPLE + REDUCE + b"t" + REDUCE + SETITEM + STOP)


def checkpoint_cases(size: int, rng: random.Random, real: bytes) -> dict:
    import torch
    valid = io.BytesIO()
    torch.save({"w": torch.zeros(max(1, (size - 1500) // 4))}, valid)
    def pad(body: bytes) -> bytes:          # a filler string first: torch's unpickler has no POP
        return PROTO2 + binunicode("a" * max(0, size - len(body) - 7)) + body

    cases = {
        "valid_same_size": valid.getvalue(),
        "random_bytes": rng.randbytes(size),
        "pkl_nones": checkpoint_zip(fill(PROTO2, NONE, STOP, size)),            # opcodes that build nothing
        "pkl_empty_sets": checkpoint_zip(fill(PROTO2 + EMPTY_LIST + MARK, EMPTY_SET, APPENDS + STOP, size)),
        "pkl_marks": checkpoint_zip(fill(PROTO2, MARK, NONE + STOP, size)),
        # half the file in empty storage records (about 120 bytes each), half in opcodes they pay for
        "records_nones": checkpoint_zip(fill(PROTO2, NONE, STOP, size // 2), records=size // 240),
        "records_empty_sets": checkpoint_zip(fill(PROTO2 + EMPTY_LIST + MARK, EMPTY_SET, APPENDS + STOP, size // 2),
                                             records=size // 240),
        # hashing a memo-shared tuple as a dict key walks 2**30 paths
        "pkl_shared_tuple_key": checkpoint_zip(pad(shared_tuple_kept(30) + EMPTY_DICT + get(30) + NONE + SETITEM
                                                   + STOP)),
        # torch's error for an unknown REDUCE target prints it: str() of 2**40 paths
        "pkl_shared_tuple_reduce": checkpoint_zip(pad(shared_tuple_kept(40) + EMPTY_TUPLE + REDUCE + STOP)),
        # a deflated storage record: inflates to 1000 times the file, up to 1 GB
        "deflated_storage": checkpoint_zip(tensor_pickle(min(size * 1000, 1 << 30) // 4),
                                           zeros=min(size * 1000, 1 << 30)),
    }
    cases.update(damaged(real if size <= len(real) * 2 else cases["valid_same_size"], rng))
    return cases


def card_cases(size: int, real: bytes) -> dict:
    """model.json files of about `size` bytes beside the real run's best.pt: the real card padded
    with spaces, then cards that are no JSON object, or whose config sizes another model."""
    def padded(config=None, **fields) -> bytes:
        card = json.loads(real)
        card["config"].update(config or {})
        card.update(fields)
        text = json.dumps(card).encode()
        return text + b" " * max(0, size - len(text))

    return {
        "valid_same_size": padded(),
        "deep_nesting": b"[" * size,
        "huge_int": b'{"card_version": 1' + b"1" * max(0, size - 20) + b"}",
        "long_string": padded(data="x" * max(0, size - len(real))),
        "larger_model": padded({"post_fusion_dim": 4000, "hidden_dims": [64, 64, 64], "text_out": 64}),
        "terabyte_model": padded({"hidden_dims": [128, 128, 128], "text_out": 128, "post_fusion_dim": 10 ** 6}),
    }


def record_cases(size: int, rng: random.Random, real: bytes) -> dict:
    line = real.splitlines()[0] + b"\n"
    return {
        "valid_same_size": fill(b"", line, b"", size),
        "deep_nesting": b'{"config": ' + b"[" * (size // 2) + b"]" * (size // 2) + b"}\n",
        "huge_int": b'{"seed": 1' + b"1" * max(0, size - 12) + b"}\n",
        "long_run_id": line.replace(b'"run_id": "', b'"run_id": "' + b"x" * size, 1),
        "empty_objects": fill(b"", b"{}\n", b"", size),
        "many_metrics": line.replace(b'"metrics": {', b'"metrics": {' + fill(b"", lambda i: b'"m%d": 1, ' % i, b"",
                                                                             size), 1),
        "random_bytes": rng.randbytes(size),
    }


# ------------------------------------------------------------------------------------------
# the child that loads
# ------------------------------------------------------------------------------------------
CHILD = r"""
import gc, json, sys, time, warnings
warnings.simplefilter("ignore")
import torch
from mmsa_atsuko.data import load_dataset
from mmsa_atsuko.errors import ToolkitError
from mmsa_atsuko.predict.checkpoint import load_checkpoint
from mmsa_atsuko.results import ok_records, read_records

def kb(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field))

LOADERS = {
    "features": lambda path: load_dataset("mosi", feature_path=path),
    "best.pt": lambda path: load_checkpoint(path),             # the run folder holding it
    "model.json": lambda path: load_checkpoint(path),
    "runs.jsonl": lambda path: ok_records(read_records(path)),  # the results folder holding it
}
for line in sys.stdin:
    case = json.loads(line)
    print(json.dumps({"started": case["name"]}), flush=True)
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")                    # peak RSS := RSS now
    before = kb("VmRSS")
    start = time.perf_counter()
    try:
        result = LOADERS[case["loader"]](case["path"])
        outcome, message = "loaded", ""
    except ToolkitError as e:
        outcome, message = ("refused" if "\n" not in str(e) else "refused in several lines"), str(e)
    except BaseException as e:
        outcome, message = f"raised {type(e).__name__}", f"{type(e).__name__}: {str(e)[:300]}"
    seconds = time.perf_counter() - start
    extra_mb = (kb("VmHWM") - before) / 1024
    result = None
    print(json.dumps({"name": case["name"], "outcome": outcome, "seconds": seconds, "extra_mb": extra_mb,
                      "message": " ".join(message.split())[:160]}), flush=True)
"""


def run_cases(cases: list[dict], timeout: float, env: dict) -> dict:
    """name -> result; a case past `timeout` is killed (and the rest run in a new child)."""
    results, left = {}, list(cases)
    while left:
        child = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, text=True, cwd=ROOT, env=env)
        child.stdin.write("".join(json.dumps(c) + "\n" for c in left))
        child.stdin.close()
        current, deadline = None, None
        while True:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([child.stdout], [], [], wait)
            if not ready:                               # the current case ran past the timeout
                child.kill()
                results[current] = {"name": current, "outcome": f"timeout (killed after {timeout:.0f} s)",
                                    "seconds": float("inf"), "extra_mb": float("nan"), "message": ""}
                break
            line = child.stdout.readline()
            if not line:                                # the child died (out of memory, a crash)
                if current is not None:
                    results[current] = {"name": current, "outcome": f"child died ({child.wait()})",
                                        "seconds": float("inf"), "extra_mb": float("nan"), "message": ""}
                break
            row = json.loads(line)
            if "started" in row:
                current, deadline = row["started"], time.monotonic() + timeout
            else:
                results[row["name"]] = row
                current, deadline = None, None
        child.kill()
        child.wait()
        child.stdout.close()
        left = [c for c in left if c["name"] not in results]
    return results


def real_run(work: Path, env: dict) -> Path:
    """A finished small tfn run (its model.json, best.pt and record)."""
    out = work / "run"
    if not (out / "runs.jsonl").exists():
        subprocess.run([sys.executable, str(ROOT / "run.py"), "-m", "tfn", "-d", "mosi", "--synthetic", "--preset",
                        "small", "--max-epochs", "1", "--seeds", "1111", "--out", str(out)], cwd=ROOT, env=env,
                       check=True, capture_output=True)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=float, nargs="+", default=[1e3, 1e5, 1e6, 1e7])
    p.add_argument("--timeout", type=float, default=30.0, help="seconds before a case is killed")
    p.add_argument("--only", nargs="+", help="loaders or case names to run (default: all)")
    p.add_argument("--work", type=Path, help="where the files go (default: a temp dir)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-hostile-"))
    env = dict(os.environ, MMSA_ATSUKO_CACHE=str(work / "cache"), OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1",
               PYTHONPATH=str(ROOT))
    os.environ.update(MMSA_ATSUKO_CACHE=env["MMSA_ATSUKO_CACHE"])
    sys.path.insert(0, str(ROOT))
    rng = random.Random(args.seed)
    run_out = real_run(work, env)
    record_line = (run_out / "runs.jsonl").read_bytes()
    run_dir = run_out / json.loads(record_line)["run_dir"]
    real_best = (run_dir / "best.pt").read_bytes()
    real_card = (run_dir / "model.json").read_bytes()

    cases = []
    for size in map(int, args.sizes):
        files = work / f"{size}"
        files.mkdir(parents=True, exist_ok=True)
        valid = valid_features(size)
        built = {"features": {"valid_same_size": valid, **pickle_cases(size, rng), **damaged(valid, rng)},
                 "best.pt": checkpoint_cases(size, rng, real_best),
                 "model.json": card_cases(size, real_card),
                 "runs.jsonl": record_cases(size, rng, record_line)}
        for loader, blobs in built.items():
            for name, blob in blobs.items():
                if args.only and loader not in args.only and name not in args.only:
                    continue
                case = f"{loader}/{name}/{size}"
                if loader == "features":
                    path = files / f"{name}.pkl"
                    path.write_bytes(blob)
                else:                       # a folder: a copy of the run's model.json, or a results folder
                    path = files / loader.replace(".", "_") / name
                    path.mkdir(parents=True, exist_ok=True)
                    if loader == "best.pt":
                        (path / "model.json").write_bytes(real_card)
                    elif loader == "model.json":
                        (path / "best.pt").write_bytes(real_best)
                    (path / loader).write_bytes(blob)
                cases.append({"name": case, "loader": loader, "path": str(path), "bytes": len(blob)})
    results = run_cases(cases, args.timeout, env)

    print(f"{'case':<44} {'bytes':>9} {'outcome':<26} {'seconds':>8} {'x valid':>8} {'extra MB':>9}")
    over = []
    for case in cases:
        r = results[case["name"]]
        loader, name, size = case["name"].split("/")
        reference = results.get(f"{loader}/valid_same_size/{size}")
        ratio = r["seconds"] / reference["seconds"] if reference and reference["seconds"] > 0 else float("nan")
        flag = ""
        if name != "valid_same_size" and (r["seconds"] >= SECONDS or not r["extra_mb"] < MEGABYTES):
            flag = " OVER"
            over.append(case["name"])
        print(f"{case['name']:<44} {case['bytes']:>9} {r['outcome'][:26]:<26} {r['seconds']:>8.3f} {ratio:>8.1f} "
              f"{r['extra_mb']:>9.1f}{flag}  {r['message'][:90]}")
    worst_s = max((results[c['name']]['seconds'] for c in cases if '/valid_same_size/' not in c['name']), default=0)
    worst_mb = max((results[c['name']]['extra_mb'] for c in cases if '/valid_same_size/' not in c['name']),
                   default=0)
    tracebacks = [c["name"] for c in cases if results[c["name"]]["outcome"].startswith(("raised", "timeout", "child"))]
    print(f"hostile: {len(cases)} cases, {len(over)} over {SECONDS:g} s or {MEGABYTES} MB"
          f"{': ' + ', '.join(over) if over else ''}; slowest {worst_s:.3f} s, most memory {worst_mb:.1f} MB; "
          f"{len(tracebacks)} not one line{': ' + ', '.join(tracebacks) if tracebacks else ''}")
    return 1 if over or tracebacks else 0


if __name__ == "__main__":
    sys.exit(main())
