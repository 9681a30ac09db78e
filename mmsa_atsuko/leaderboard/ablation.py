"""The Table 4 ablation: the Atsuko family's rows by their switches (use_sbn, use_mcm), side by side per dataset.

Built from the leaderboard tables (`tables.build_tables`), so its cells, best marks and seed notes (notes.py) are the
leaderboard's: one `Ablation` per (aligned flag, data kind), one group of columns per table.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from ..data.synthetic_stress import recipe_kind_of
from ..models.atsuko.family import ATSUKO_FAMILY, TABLE4_ROWS, switches_of     # no torch: family.py imports none
from .notes import protocol_notes
from .tables import Row, Table, best_cells


@dataclass
class Ablation:
    aligned: bool
    synthetic: bool
    groups: list[Table]                   # one per dataset/data id, side by side
    rows: list[tuple[bool, bool]]
    chosen: dict[tuple, Row]              # (group index, flags) -> row
    notes: list[str] = field(default_factory=list)
    best: set = field(default_factory=set)    # (group index, flags, metric) of the bold cells

    def group_names(self) -> list[str]:
        """Each group's name in the column headers: its dataset, or, where a dataset comes twice
        (synthetic recipes of one dataset side by side), the dataset and its recipe, else its data id."""
        counts = Counter(t.dataset for t in self.groups)
        names = [t.dataset if counts[t.dataset] == 1 else
                 f"{t.dataset} {recipe_kind_of(t.data_id)}" if t.synthetic else t.data_id
                 for t in self.groups]
        return [name if names.count(name) == 1 else t.data_id for name, t in zip(names, self.groups)]


def _flags(row: Row) -> tuple[bool, bool]:
    """The row's Table 4 switches, read from its latest run's config."""
    return switches_of(row.records[-1].get("config"))


def build_ablations(tables: list[Table]) -> list[Ablation]:
    """Table 4 from the Atsuko family (flags read from each run's config), per aligned/data kind."""
    ablations: dict[tuple, Ablation] = {}
    notes: dict[tuple, list[tuple[int, str]]] = {}     # (group, note): named once every group is known
    for table in tables:
        family = [row for row in table.rows if row.model in ATSUKO_FAMILY and not row.condition]
        if len({_flags(row) for row in family}) < 2:          # nothing to compare
            continue
        ab = ablations.setdefault((table.aligned, table.synthetic),
                                  Ablation(table.aligned, table.synthetic, [], [], {}))
        group_notes = notes.setdefault((table.aligned, table.synthetic), [])
        g = len(ab.groups)
        ab.groups.append(table)
        for flags in TABLE4_ROWS:
            candidates = [row for row in family if _flags(row) == flags]
            if not candidates:
                continue
            # Several configs with the same switches: show the one with the most seeds.
            row = max(candidates, key=lambda r: (len(r.records), max(x.get("started_at", "") for x in r.records)))
            ab.chosen[(g, flags)] = row
            if len(candidates) > 1:
                group_notes.append((g, f"{len(candidates)} configs with SBN={flags[0]}, MCM={flags[1]}; "
                                       f"showing {row.label} (n={len(row.records)}), the leaderboard has all"))
        shown = [row for (group, _), row in ab.chosen.items() if group == g]
        group_notes += [(g, note) for note in protocol_notes(shown)]
    for key, ab in ablations.items():
        names = ab.group_names()
        ab.notes = [f"{names[g]}: {note}" for g, note in notes[key]]
        ab.rows = [flags for flags in TABLE4_ROWS if any(f == flags for _, f in ab.chosen)]
        for g, table in enumerate(ab.groups):
            rows = {flags: ab.chosen[(g, flags)] for flags in ab.rows if (g, flags) in ab.chosen}
            for m in table.metrics:          # every metric: --paper shows the Has0 halves too
                ab.best |= {(g, flags, m) for flags in best_cells(m, {f: r.cells[m] for f, r in rows.items()})}
    return list(ablations.values())
