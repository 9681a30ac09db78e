"""How a row's seeds ran, as both CSVs' `run_*` cells say it: the MMSA CSV's (`mmsa_csv.mmsa_row`) and the
leaderboard's (`leaderboard.csv_table`). One function makes both, so the two files never tell one run two ways.

A cell says what the records say (`record.precision_of`, `kernels_of`, `device_of`), on the CPU as on a GPU:
`deterministic` for a CPU run that asked for deterministic kernels. The leaderboard's notes judge that kernels give
a CPU row the same numbers and name no kernels there (`leaderboard.notes`); a trace cell is no judgement, and an
empty one read as 'not recorded' in one file beside `deterministic` in the other for the same runs.
"""
from __future__ import annotations

from collections import Counter

from .record import device_of, kernels_of, precision_of

# The `run_<kind>` cells both CSVs share, and what each reads of a record.
HOW_RAN_OF = {"precision": precision_of, "kernels": kernels_of, "device": device_of}


def how_ran_cell(values) -> str:
    """A row's value of one way its seeds ran (`fp32`), or, where they mix values, each with its count as the
    leaderboard's notes write it, the most seeds first (on a tie, in name order): `3 fp32, 2 bf16`. No preset (the
    full config) is `none` in a mix, empty alone."""
    counts = Counter(values)
    if len(counts) == 1:
        return next(iter(counts))
    return ", ".join(f"{n} {value or 'none'}" for value, n in sorted(counts.items(), key=lambda item: (-item[1],
                                                                                                     item[0])))


def how_ran_cells(records: list[dict]) -> dict[str, str]:
    """`run_precision`, `run_kernels` and `run_device` of a row over `records` (its seeds), as `how_ran_cell` says
    each."""
    return {f"run_{kind}": how_ran_cell(map(value_of, records)) for kind, value_of in HOW_RAN_OF.items()}
