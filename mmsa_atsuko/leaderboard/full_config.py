"""The note on rows trained at their model's full config (no `--preset`) with keys set apart from it: `--max-epochs 1`
or `-c learning_rate=...` runs sat beside the published numbers, whose rows ran the full config, and no line said so
(`notes.trainer_overrides_note` names only the keys set apart from a preset)."""
from __future__ import annotations

import json

from ..config import load_config
from ..errors import ToolkitError
from .row_text import note_by_row_text

# `--synthetic` sets it (the generated data's tiny BERT), as `config.trainer_keys_apart` leaves it out
LEFT_OUT = {"pretrained"}


def full_config_note(rows: list) -> list[str]:
    """`set apart from today's configs/<model>.yaml (...): max_epochs=1 in every row`, once for a table: the config
    keys whose value in a full-config row's runs (the record's resolved config) is not the one configs/<model>.yaml
    gives today for that dataset, each row by its text; rows at a preset (`notes.preset_note`) and rows with nothing
    apart are not named. A key the record lacks (one added to the toolkit after it ran) or today's config lacks is not
    compared, and a row whose model's config cannot be loaded here (a model of your own without its folder) is not
    named."""
    loaded: dict[tuple, dict | None] = {}
    # Held against the YAML as it reads now: a full-config record keeps its resolved config only, never the YAML's
    # values it started from (a preset's run keeps its keys apart, `trainer_overrides`), so the note says "today's".
    return note_by_row_text(rows, "set apart from today's configs/<model>.yaml (each model's full config): ",
                            lambda row: apart_from_full_text(row.records[-1], loaded))


def apart_from_full_text(record: dict, loaded: dict) -> str:
    """`max_epochs=1, learning_rate=0.01`: the keys of a full-config `record`'s config apart from its model's full
    config, in the config's order; "" for a record at a preset, or of nothing apart. `loaded`: the full configs read
    so far, by (model, dataset), JSON's values (a list, where the YAML's tuple was stored as one)."""
    config = record.get("config")
    if record.get("preset") or not isinstance(config, dict):
        return ""
    model, dataset = str(record.get("model")), str(record.get("dataset"))
    if (model, dataset) not in loaded:
        try:
            loaded[model, dataset] = json.loads(json.dumps(dict(load_config(model, dataset)), default=str))
        except ToolkitError:
            loaded[model, dataset] = None
    full = loaded[model, dataset]
    if full is None:
        return ""
    return ", ".join(f"{key}={value!r}" for key, value in config.items()
                     if key not in LEFT_OUT and key in full and value != full[key])
