"""What a table says under its rows: the notes of every leaderboard (`table_notes`) and Table 4 group
(`protocol_notes`), built from the rows' records (tables.Row); render.py only prints them, and
csv_table.py puts a row's run labels (`row_run_labels`) on its CSV line.

- a model with several configs in the table: per row, the config keys that differ, and its runs' labels;
- a row whose runs are labelled (a tune study's final runs) and not named above: where its config came from;
- a row over one seed: never bold and not Welch-tested (`Row.few_seeds`);
- how the rows chose their best epoch (`results.model_selection`: the valid metric, and for the valid Loss its
  `valid_loss` rule), on which seeds they ran, at which `--preset`, and the trainer keys set apart from it (a sweep
  file's `max_epochs`), as the run recorded them; at the full config, the keys set apart from it (`full_config`);
- at which precision, with which kernels and on which kind of device their seeds ran (`results.precision_of`,
  `results.kernels_of` for seeds off the CPU, `results.device_of`), where a row mixes them, the rows differ, or every
  row ran otherwise than at fp32 with deterministic kernels;
- a row whose seeds ran on several code versions (`git_commit`, else the package version): its mean mixes them;
- the config hash and the code version every row shares, once (`shared_trace_note`), as the CSV names them per row.
"""
from __future__ import annotations

from collections import Counter

from ..config import load_config, trainer_keys_apart
from ..errors import ToolkitError
from ..results import code_version, device_of, kernels_of, model_selection, precision_of, run_label
from .full_config import full_config_note
from .row_text import note_by_row_text

# `rows` below are tables.Row (model, label, config_hash, records, few_seeds), named in no annotation: tables builds the
# rows and imports this module to note them, and this module importing tables back would make a circle of two.


def table_notes(rows: list, several_configs: list[str]) -> list[str]:
    """A leaderboard's notes, in this order: the configs of each model of `several_configs` (the models with rows
    under more than one config hash, in the order the store first has them), the other rows' run labels,
    `protocol_notes`, and the rows whose seeds ran on several code versions."""
    notes = []
    for model in several_configs:
        one_per_hash = {row.config_hash: row for row in reversed(rows) if row.model == model}
        notes += _config_notes(list(one_per_hash.values())[::-1])
    return (notes + _run_labels_note(rows, set(several_configs)) + protocol_notes(rows) + _code_versions_note(rows)
            + shared_trace_note(rows))


def shared_trace_note(rows: list) -> list[str]:
    """`config hash 1a2b3c4d5e6f and code 0123456789 in every row`: what the CSV's `config_hash` and `code` columns
    say, once, where every row (every seed, for the code) shares it; the Markdown and LaTeX tables named neither, so
    a printed table could not be traced to its runs or commit. A hash or code the rows do not share is said by the
    config notes (a model's configs) and `_code_versions_note` (a row's seeds), or by the CSV per row."""
    hashes = {row.config_hash for row in rows}
    codes = {code_version(r) for row in rows for r in row.records}
    parts = ([f"config hash {next(iter(hashes))}"] if len(hashes) == 1 else []) + (
        [f"code {next(iter(codes))}"] if len(codes) == 1 else [])
    return [f"{' and '.join(parts)} in every row"] if parts else []


def protocol_notes(rows: list) -> list[str]:
    """How the rows ran, as every leaderboard and Table 4 group says it: the rows on one seed, how they chose their
    best epoch, and on which seeds."""
    return (single_seed_note([row.label for row in rows if row.few_seeds]) + selection_note(rows) + seeds_note(rows)
            + preset_note(rows) + trainer_overrides_note(rows) + full_config_note(rows) + how_ran_notes(rows))


def curve_notes(rows: list) -> list[str]:
    """How the rows of a `leaderboard --by missing_rate` table ran, as `protocol_notes` says it of a leaderboard's
    (how they chose their best epoch, on which seeds, at which preset, precision and kernels), less the rows on one
    seed: a curve is neither bold nor Welch-tested. Its rows (leaderboard.curves.Curve) have the records of every
    rate."""
    return (selection_note(rows) + seeds_note(rows) + preset_note(rows) + trainer_overrides_note(rows)
            + full_config_note(rows) + how_ran_notes(rows))


def _config_notes(rows: list) -> list[str]:
    """For a model with several configs: the keys whose values differ, per row."""
    configs = [r.records[-1].get("config") or {} for r in rows]
    keys = sorted({k for c in configs for k in c if len({repr(x.get(k)) for x in configs}) > 1})
    notes = []
    for row, config in zip(rows, configs):
        diff = ", ".join(f"{k}={config.get(k)!r}" for k in keys) or "same stored config"
        labels = row_run_labels(row)
        notes.append(f"{row.label}: {diff}" + (f" (runs labelled {labels})" if labels else ""))
    return notes


def row_run_labels(row) -> str:
    """Where a row's config came from, as its runs' labels say (`results.run_label`): a tune study's final runs
    carry its name and the trial whose config they ran, `tune-tfn-mosi trial 7`; "" for unlabelled runs."""
    return ", ".join(sorted({label for label in map(run_label, row.records) if label}))


def _run_labels_note(rows: list, noted: set) -> list[str]:
    """The labels of the rows of models whose config notes (a model with several configs, `noted`) do not name
    them: a tuned model with one config in the table said nothing of the study trial its config came from."""
    return [f"{row.label}: runs labelled {labels}" for row in rows
            if row.model not in noted and (labels := row_run_labels(row))]


def single_seed_note(labels: list[str]) -> list[str]:
    if not labels:
        return []
    return [f"{', '.join(labels)}: one seed (n=1), so never bold and not Welch-tested"]


def _seeds_text(seeds: list[int]) -> str:
    """1111-1115 for a run of consecutive seeds, else the seeds listed."""
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}-{seeds[-1]}"
    return " ".join(map(str, seeds))


def seeds_note(rows: list) -> list[str]:
    """Which seeds the rows ran on: one line when every row ran on the same ones, else, when the rows that are
    compared (not `few_seeds`) ran on different seeds, which ran on which (their means are over different seeds)."""
    seed_sets = {tuple(sorted({r["seed"] for r in row.records})) for row in rows}
    if len(seed_sets) == 1:
        return [f"seeds {_seeds_text(list(seed_sets.pop()))} in every row"]
    by_seeds: dict[tuple, list[str]] = {}
    for row in rows:
        if not row.few_seeds:
            by_seeds.setdefault(tuple(sorted({r["seed"] for r in row.records})), []).append(row.label)
    if len(by_seeds) < 2:
        return []
    return ["rows over different seeds: " + "; ".join(f"{', '.join(labels)} on seeds {_seeds_text(list(seeds))}"
                                                      for seeds, labels in by_seeds.items())]


def preset_note(rows: list) -> list[str]:
    """Which rows trained at a `--preset` (the record's `preset`): a model's `small` block trains a few epochs at
    small widths to check the plumbing, each model its own budget, so such rows say nothing of the models at their
    full configs; the paper's protocol run at `--preset small` printed tables that said so nowhere."""
    by_preset: dict[str, list[str]] = {}
    for row in rows:
        presets = sorted({r.get("preset") or "" for r in row.records})
        text = " and ".join(f"--preset {p}" if p else "the full config" for p in presets)
        by_preset.setdefault(text, []).append(row.label)
    if set(by_preset) <= {"the full config"}:
        return []
    if len(by_preset) == 1:
        (text,) = by_preset
        return [f"trained at {text} in every row (each model's own preset block, not its full config)"]
    return ["trained at " + "; ".join(f"{text}: {', '.join(labels)}" for text, labels in by_preset.items())]


def trainer_overrides_note(rows: list) -> list[str]:
    """The trainer keys (configs/datasets.yaml `defaults`) whose value in the config of a row trained at a `--preset`
    is not the one its preset gave, as `preset_note` names the preset: a sweep file's `max_epochs: 12` over the
    small preset's 15 was said nowhere, and a table read as the preset's budget. Read from the record, which keeps
    them as the run started (`trainer_overrides`), so a preset edited since changes nothing; a record from before that
    field is held against today's YAML, and its text says so (`overrides_text`). `pretrained` is left out
    (`--synthetic` sets it), and so is such an older row whose model's config cannot be loaded here (a model of your
    own without its folder)."""
    loaded: dict[tuple, dict | None] = {}
    return note_by_row_text(rows, "trainer keys set apart from the preset: ",
                            lambda row: overrides_text(row.records[-1], loaded))


def overrides_text(record: dict, loaded: dict | None = None) -> str:
    """`max_epochs=12 (--preset small: 15)`: each trainer key of `record`'s config set apart from its preset's (the
    CSV's `trainer_overrides`), as the run recorded them; for a record from before it recorded them, held against
    the preset as today's YAML gives it, `max_epochs=12 (today's --preset small: 15)`. `loaded`: the configs loaded so
    far, by (model, dataset, preset)."""
    preset = record.get("preset")
    if not preset:                    # the full config's keys set by -c are the config notes' (a row per hash)
        return ""
    recorded = record.get("trainer_overrides")
    if isinstance(recorded, dict):    # the store's reader let only the form ok_record writes through
        return _apart_text(recorded, f"--preset {preset}")
    loaded = {} if loaded is None else loaded
    model, dataset = record.get("model"), record.get("dataset")
    if (model, dataset, preset) not in loaded:
        try:
            loaded[model, dataset, preset] = load_config(str(model), str(dataset), preset=preset)
        except ToolkitError:          # a model or preset not here today: nothing to hold its config against
            loaded[model, dataset, preset] = None
    given, config = loaded[model, dataset, preset], record.get("config") or {}
    if given is None:
        return ""
    return _apart_text(trainer_keys_apart(config, given), f"today's --preset {preset}")


def _apart_text(apart: dict, preset: str) -> str:
    """`config.trainer_keys_apart`'s keys as a note names them: `max_epochs=12 (--preset small: 15)`."""
    return ", ".join(f"{key}={pair['value']!r} ({preset}: {pair['preset']!r})" for key, pair in apart.items())


def kernels_where_they_differ(record: dict) -> str | None:
    """The kernels a run ran with (`results.kernels_of`), or None for a run on the CPU: torch has one CPU kernel for
    nearly every op (its deterministic mode changes only index_put_ and put_ with accumulate=True there, which no
    model of the toolkit calls), so deterministic, warn-only and nondeterministic CPU seeds give the same numbers
    (tfn small: bit-identical), and a row of them mixes nothing."""
    return None if device_of(record) == "cpu" else kernels_of(record)


# What each says of a run (None: nothing to say of it), and the values a table need not name when every seed of every
# row has one of them: the default, and for kernels a store from before they were recorded; for the device, any one.
HOW_RAN = {"precision": (precision_of, {"fp32"}),
           "kernels": (kernels_where_they_differ, {"deterministic", "warn-only"}),
           "device": (device_of, None)}


def how_ran_notes(rows: list) -> list[str]:
    """At which precision, with which kernels and on which device the rows' seeds ran: bf16 and fp32, deterministic
    and nondeterministic kernels on a GPU, or a GPU and the CPU give other numbers for one seed, so a row that mixes
    them has a mean over two protocols, and two rows that differ do not compare models alone. A note per kind where
    a row mixes values, the rows differ, or every row ran at one precision or kernels other than the default;
    nothing where every seed ran at fp32 with deterministic kernels on one kind of device."""
    return [note for kind in HOW_RAN if (note := how_ran_note(rows, kind))]


def how_ran_text(records: list, kind: str) -> tuple[str, bool]:
    """A row's values of `kind` (a key of HOW_RAN) as its note names them, and whether its seeds mix values: `bf16`,
    or with a count each, `3 fp32, 2 bf16`, the most seeds first (on a tie, in name order); "" where nothing is said
    of any of its seeds (kernels on the CPU)."""
    counts = Counter(value for r in records if (value := HOW_RAN[kind][0](r)) is not None)
    if len(counts) < 2:
        return next(iter(counts), ""), False
    return ", ".join(f"{n} {value}" for value, n in sorted(counts.items(), key=lambda item: (-item[1], item[0]))), True


def how_ran_note(rows: list, kind: str) -> str:
    """`how_ran_notes`' note of one kind, or "": `precision: fp32 in lmf, misa; mixed in tfn (3 fp32, 2 bf16: its
    mean mixes them)`, or `precision: bf16 in every row`; the rows of which nothing is said (kernels on the CPU) are
    named last, `kernels: nondeterministic in tfn; any on the CPU in lmf`."""
    by_text: dict[tuple[str, bool], list[str]] = {}
    unsaid = []
    for row in rows:
        text, mixed = how_ran_text(row.records, kind)
        if text:
            by_text.setdefault((text, mixed), []).append(row.label)
        else:
            unsaid.append(row.label)
    if len(by_text) == 1:
        ((text, mixed),) = by_text
        usual = HOW_RAN[kind][1]
        if usual is None and not mixed or usual is not None and text in usual:
            return ""
        if not mixed and not unsaid:
            return f"{kind}: {text} in every row"
    if not by_text:
        return ""
    parts = []
    for (text, mixed), labels in by_text.items():
        if mixed:
            parts += [f"mixed in {label} ({text}: its mean mixes them)" for label in labels]
        else:
            parts.append(f"{text} in {', '.join(labels)}")
    if unsaid:
        parts.append(f"any on the CPU in {', '.join(unsaid)}")
    return f"{kind}: " + "; ".join(parts)


def selection_note(rows: list) -> list[str]:
    """How the rows chose their best epoch (`results.model_selection`): a paper's rows select on MMSA's valid Loss,
    and a row that selected otherwise is not the same protocol, whatever its config hash looks like."""
    by_rule: dict[str, list[str]] = {}
    for row in rows:
        by_rule.setdefault(model_selection(row.records[-1]), []).append(row.label)
    if len(by_rule) == 1:
        return [f"best epoch chosen on {next(iter(by_rule))} in every row"] if by_rule else []
    return ["best epoch chosen on " + "; ".join(f"{rule}: {', '.join(labels)}" for rule, labels in by_rule.items())]


def _code_versions_note(rows: list) -> list[str]:
    """Rows whose seeds ran on several code versions: the mean mixes them, and nothing else in a table says
    which code its numbers came from (a row of seeds run before and after a fix). A seed of no recorded commit
    (git refused the checkout: `code_version.commit_of`) beside seeds of one is of unknown code, not of another
    version: named apart, and not counted as one."""
    mixed, unknown = [], []
    for row in rows:
        known = Counter(code_version(r) for r in row.records if r.get("git_commit"))
        versions = known if known else Counter(code_version(r) for r in row.records)
        untold = len(row.records) - sum(known.values()) if known else 0
        if len(versions) > 1:
            parts = [f"{n} on {v}" for v, n in sorted(versions.items())] + ([f"{untold} of unknown commit"] if untold
                                                                            else [])
            mixed.append(f"{row.label} ({', '.join(parts)})")
        elif untold:
            unknown.append(f"{row.label} ({untold} of {len(row.records)})")
    return ([f"seeds on several code versions: {'; '.join(mixed)}"] if mixed else []) + (
        [f"seeds of unknown commit (none recorded; not counted as another code version): {'; '.join(unknown)}"]
        if unknown else [])
