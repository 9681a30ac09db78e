"""Does band routing carry Atsuko's gain? Rows of labelled result folders (one config each, e.g. atsuko_sbn at its
defaults, at -c band_temperature=1000, at -c band_mask_rate=0, and atsuko_base), per synthetic recipe: the test
MAE of every seed, mean ± sample std, how far the band router moves (band-weight spread: the std over test samples
of each band weight, averaged over bands and modalities; 0 = pinned at uniform) and, on `bands`, the vision band
router's weight on the cue band against the noise band. Then Welch tests (two-sided, unpaired on purpose: two
configs draw their init and dropout from different streams, so seed 1111 of one is no partner of seed 1111 of the
other) for each `--vs A:B` on every recipe both rows hold, with Holm's correction over all of them (the family).

    python bench/atsuko_band_control.py --row sbn=/tmp/k30/sbn-corrupt,/tmp/k30/sbn-bands \\
        --row base=/tmp/k30/base-corrupt,/tmp/k30/base-bands --vs sbn:base
    python bench/atsuko_band_control.py --holm 0.020 0.0047 0.86     # Holm over p values as printed elsewhere

docs/atsuko_evidence.md, "Which part wins", holds its table and the commands that made the folders.
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mmsa_atsuko.data.synthetic_stress import recipe_kind_of, recipe_version  # noqa: E402
from mmsa_atsuko.leaderboard.stats import Cell, welch  # noqa: E402
from mmsa_atsuko.results import latest_by_identity, ok_records, read_records  # noqa: E402

ORDER = ("corrupt", "bands", "redundant", "standard")


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjusted p values, in the order given: the k-th smallest of m is multiplied by m - k + 1
    (k from 1), and no adjusted value is below the one before it in that order. A NaN (no test) stays NaN and is
    not counted in m."""
    finite = sorted((p, i) for i, p in enumerate(pvalues) if not math.isnan(p))
    adjusted = [math.nan] * len(pvalues)
    running = 0.0
    for rank, (p, i) in enumerate(finite):
        running = max(running, min(1.0, (len(finite) - rank) * p))
        adjusted[i] = running
    return adjusted


def band_spread(record: dict) -> float | None:
    bands = (record.get("routing") or {}).get("band_weights")
    if not bands:
        return None
    return statistics.mean(statistics.mean(b["std"]) for b in bands.values())


def cue_noise(records: list[dict]) -> str:
    conditions = [(r.get("routing") or {}).get("condition") or {} for r in records]
    pairs = [(c["cue_band_weight"], c["noise_band_weight"]) for c in conditions
             if c.get("cue_band_weight") is not None]
    if not pairs:
        return "-"
    return f"{statistics.mean(p[0] for p in pairs):.3f} / {statistics.mean(p[1] for p in pairs):.3f}"


def _recipe(record: dict) -> str:
    version = recipe_version(record["data"])
    kind = recipe_kind_of(record["data"])
    return f"{kind} {version}" if version else kind


def load(rows: dict[str, list[Path]]) -> dict[tuple[str, str], list[dict]]:
    """(recipe, label) -> the ok records, one per seed, in seed order. A label whose folders hold two configs of
    one model on one recipe is refused: that would be two rows averaged into one."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for label, folders in rows.items():
        records = ok_records(list(latest_by_identity([r for f in folders for r in read_records(f)]).values()))
        for r in records:
            groups.setdefault((_recipe(r), label), []).append(r)
    for (recipe, label), records in groups.items():
        configs = {(r["model"], r["config_hash"]) for r in records}
        if len(configs) > 1:
            raise SystemExit(f"error: row {label} holds {len(configs)} configs on {recipe}; give each its own --row")
        records.sort(key=lambda r: r["seed"])
    return groups


def table(rows: dict[str, list[Path]], comparisons: list[tuple[str, str]]) -> str:
    groups = load(rows)
    recipes = sorted({recipe for recipe, _ in groups}, key=lambda r: (ORDER.index(r.split()[0])
                                                                        if r.split()[0] in ORDER else 99, r))
    lines = ["| recipe | row | model | seeds | test MAE per seed | mean ± std | band-weight spread"
             " | cue / noise band |", "|---|---|---|---|---|---|---|---|"]
    for recipe in recipes:
        for label in rows:
            records = groups.get((recipe, label), [])
            if not records:
                continue
            maes = [r["metrics"]["MAE"] for r in records]
            spreads = [s for s in map(band_spread, records) if s is not None]
            spread = f"{statistics.mean(spreads):.4f}" if spreads else "-"
            lines.append(f"| {recipe} | {label} | {records[0]['model']} | {' '.join(str(r['seed']) for r in records)}"
                         f" | {' '.join(f'{v:.4f}' for v in maes)} | {Cell(maes).text()} | {spread}"
                         f" | {cue_noise(records) if recipe.startswith('bands') else '-'} |")
    tests = []
    for recipe in recipes:
        for a, b in comparisons:
            xa = [r["metrics"]["MAE"] for r in groups.get((recipe, a), [])]
            xb = [r["metrics"]["MAE"] for r in groups.get((recipe, b), [])]
            if len(xa) > 1 and len(xb) > 1:
                tests.append((recipe, a, b, welch(xa, xb)))
    if not tests:
        return "\n".join(lines)
    adjusted = holm([t[3].p for t in tests])
    lines += ["", f"Welch tests, two-sided and unpaired; Holm over these {len(tests)}:", "",
              "| recipe | comparison | diff (A - B) | Welch p | Holm p |", "|---|---|---|---|---|"]
    for (recipe, a, b, w), p_holm in zip(tests, adjusted):
        lines.append(f"| {recipe} | {a} vs {b} | {w.diff:+.4f} | {w.p:.2g} | {p_holm:.2g} |")
    return "\n".join(lines)


def _row(text: str) -> tuple[str, list[Path]]:
    label, sep, folders = text.partition("=")
    if not sep or not label or not folders:
        raise argparse.ArgumentTypeError(f"--row wants LABEL=FOLDER[,FOLDER...], got {text!r}")
    paths = [Path(f) for f in folders.split(",")]
    missing = [str(p) for p in paths if not p.is_dir()]
    if missing:
        raise argparse.ArgumentTypeError(f"no results folder {', '.join(missing)} (--row {label})")
    return label, paths


def _vs(text: str) -> tuple[str, str]:
    a, sep, b = text.partition(":")
    if not sep or not a or not b:
        raise argparse.ArgumentTypeError(f"--vs wants A:B (two --row labels), got {text!r}")
    return a, b


def _p(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"--holm wants p values between 0 and 1, got {text!r}")
    return value


class _OneLineParser(argparse.ArgumentParser):
    def error(self, message):           # bad input is one line, not the usage block above it
        self.exit(2, f"{self.prog}: error: {message}\n")


def main(argv: list[str] | None = None) -> None:
    parser = _OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("--row", type=_row, action="append", default=[], metavar="LABEL=FOLDER[,FOLDER...]")
    parser.add_argument("--vs", type=_vs, action="append", default=[], metavar="A:B",
                        help="test row A against row B on every recipe both hold")
    parser.add_argument("--holm", type=_p, nargs="+", metavar="P",
                        help="print Holm-adjusted values of these p values (the family) and nothing else")
    args = parser.parse_args(argv)
    if args.holm:
        print(" ".join(f"{p:.3g}" for p in holm(args.holm)))
        return
    rows = dict(args.row)
    if not rows:
        parser.error("give at least one --row (or --holm P ...)")
    unknown = sorted({name for pair in args.vs for name in pair} - set(rows))
    if unknown:
        parser.error(f"--vs names no --row label: {', '.join(unknown)}")
    print(table(rows, args.vs))


if __name__ == "__main__":
    main()
