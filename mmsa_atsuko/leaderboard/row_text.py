"""One note line over a table's rows, grouped by a text each row has or not: the preset's trainer keys set apart
(`notes.trainer_overrides_note`) and the full config's (`full_config.full_config_note`) both say theirs so."""
from __future__ import annotations


def note_by_row_text(rows: list, head: str, text_of) -> list[str]:
    """`head` and each text `text_of(row)` gives, with the labels of the rows that have it, as one line ("... in
    every row" where one text is every row's); [] where no row has one. `rows`: tables.Row (`label`, `records`)."""
    by_text: dict[str, list[str]] = {}
    for row in rows:
        if text := text_of(row):
            by_text.setdefault(text, []).append(row.label)
    if not by_text:
        return []
    if len(by_text) == 1 and len(next(iter(by_text.values()))) == len(rows):
        return [head + f"{next(iter(by_text))} in every row"]
    return [head + "; ".join(f"{text} in {', '.join(labels)}" for text, labels in by_text.items())]
