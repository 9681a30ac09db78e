"""The table "What Atsuko does on data we can make" (docs/atsuko_evidence.md) (issue 16, part 4) from the results
of configs/sweeps/atsuko_stress.yaml: per synthetic recipe and model, test MAE mean ± sample std
over seeds (n), the Welch p of atsuko against atsuko_base (leaderboard.stats.welch), and the
router response from the `routing` objects of Atsuko's records (models/atsuko/diagnostics.py). A stress recipe's
row names the version its records' data id holds (`corrupt (s2)`): records of two versions of one recipe are two
rows, never one mean.

    python bench/atsuko_stress_table.py --out results/atsuko_stress [more result folders ...]

Several folders: their records are read together (an identity recorded in two: the later folder's).
A model must have one config per recipe in them (a what-if with -c overrides belongs in a folder
of its own; `run.py leaderboard` labels such rows by config hash): two are refused, not mixed.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mmsa_atsuko.data.synthetic_stress import STRESS_VERSIONS, recipe_kind_of, recipe_version  # noqa: E402
from mmsa_atsuko.leaderboard.stats import Cell, welch  # noqa: E402
from mmsa_atsuko.results import latest_by_identity, ok_records, read_records  # noqa: E402

MODELS = ("atsuko", "atsuko_base", "emoe", "tfn")
ORDER = ("corrupt", "bands", "redundant", "standard")


def _mean_std(values):
    cell = Cell(list(values))          # the leaderboard's cell, with its n always said here
    return f"{cell.text()} (n={cell.n})" if cell.n else cell.text()


def _avg(values):
    values = [v for v in values if v is not None]
    return statistics.mean(values) if values else None


def response(records: list[dict], recipe: str) -> str:
    """Atsuko's router under the true condition, averaged over seeds."""
    routing = [r["routing"] for r in records if r.get("routing")]
    if not routing:
        return "-"
    spread = _avg([statistics.mean(x["modality_weights"][m]["std"] for m in "LVA") for x in routing])
    text = f"w spread {spread:.3f}"
    if recipe == "corrupt":
        parts = []
        for m in "LVA":
            hit = _avg([x["condition"]["modality_weight"][m]["corrupted"] for x in routing])
            clean = _avg([x["condition"]["modality_weight"][m]["clean"] for x in routing])
            parts.append(f"{m} {hit:.3f}/{clean:.3f} (x{hit / clean:.2f})")
        text += "; corrupted/clean: " + ", ".join(parts)
    elif recipe == "bands":
        cue = _avg([x["condition"].get("cue_band_weight") for x in routing])
        noise = _avg([x["condition"].get("noise_band_weight") for x in routing])
        if cue is not None:
            text += f"; vision cue band {cue:.3f} vs noise band {noise:.3f}"
    elif recipe == "redundant":
        parts = []
        for m in "AV":
            cleaner = _avg([x["condition"]["modality_weight"][m]["cleaner"] for x in routing])
            noisier = _avg([x["condition"]["modality_weight"][m]["noisier"] for x in routing])
            parts.append(f"{m} {cleaner:.3f}/{noisier:.3f}")
        text += "; cleaner/noisier: " + ", ".join(parts)
    return text


def table(*outs: Path) -> str:
    records = ok_records(list(latest_by_identity([r for out in outs for r in read_records(out)]).values()))
    groups: dict = {}
    for r in records:
        groups.setdefault((_recipe_row(r["data"]), r["model"]), []).append(r)
    hashes = {key: sorted({r["config_hash"] for r in rs}) for key, rs in groups.items()}
    mixed = [f"{model} on {row} ({', '.join(h)})" for (row, model), h in hashes.items() if len(h) > 1]
    if mixed:
        raise SystemExit("error: several configs of one model in these folders: " + "; ".join(mixed)
                         + "; keep a what-if's runs in a folder of its own")
    header = " | ".join(f"{m} test MAE" for m in MODELS)
    lines = [f"| recipe | {header} | Welch p (atsuko vs base) | atsuko router response |",
             "|---" * (len(MODELS) + 3) + "|"]
    seen = {row for row, _ in groups}
    # A recipe without records still has its row, at the version today's code makes (as before versions were shown).
    seen |= {(recipe, STRESS_VERSIONS.get(recipe)) for recipe in ORDER if not any(row[0] == recipe for row in seen)}
    for recipe, version in sorted(seen, key=lambda row: (ORDER.index(row[0]), row[1] or "")):
        maes = {m: [r["metrics"]["MAE"] for r in groups.get(((recipe, version), m), [])] for m in MODELS}
        p = "-"
        if len(maes["atsuko"]) > 1 and len(maes["atsuko_base"]) > 1:
            p = f"{welch(maes['atsuko'], maes['atsuko_base']).p:.3g}"
        name = f"{recipe} ({version})" if version else recipe
        lines.append(f"| {name} | " + " | ".join(_mean_std(maes[m]) for m in MODELS) + f" | {p} | "
                     f"{response(groups.get(((recipe, version), 'atsuko'), []), recipe)} |")
    return "\n".join(lines)


def _recipe_row(data_id) -> tuple[str, str | None]:
    """The row a record goes to: its recipe and that recipe's version (None for the standard recipe)."""
    return recipe_kind_of(data_id), recipe_version(data_id)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", nargs="+", default=["results/atsuko_stress"])
    print(table(*map(Path, p.parse_args().out)))


if __name__ == "__main__":
    main()
