"""How many runs a sweep's plan will have to do, guessed before the plan is made (`likely_todo`): the workers that
start while it is made (`LocalBackend.start`) are that many at most."""
from __future__ import annotations

from pathlib import Path

from ..config import config_hash
from ..data.stamp import is_synthetic
from ..data.synthetic_stress import recipe_kind_of
from ..errors import ToolkitError
from ..model_names import canonical_model_name
from ..results import latest_by_identity, read_records
from .sweep_file import Setting


def likely_todo(expanded, out, retry_failed: bool) -> int:
    """How many runs the plan will have to do, guessed before it is made, so that the workers that start while it is
    made (`LocalBackend.start`) are no more than the runs. Guessed high: a worker too many is stopped once the plan is
    known, a worker too few starts only then, its start-up (imports) no longer beside the planning. So a run counts
    as recorded only where the store has a record (ok, or failed and not retried) of the same model, data, layout,
    condition and seed, whose data is of the same kind (real, or the same synthetic recipe) and whose config is the
    one the setting resolves to without its data (`_config_guess`). Matching on model, data and seed alone guessed 0
    for a rerun with -c, or for real data after a --synthetic smoke test."""
    held = {_loose(key, record) for key, record in latest_by_identity(read_records(Path(out))).items()
            if record.get("status") == "ok" or not retry_failed}
    guesses, wanted, todo = {}, set(), 0
    for _, s, seeds in expanded:
        if s.cache_key() not in guesses:
            guesses[s.cache_key()] = _config_guess(s)
        guess = guesses[s.cache_key()]
        for seed in seeds:
            if (s.cache_key(), seed) in wanted:          # a setting in two experiments is one run
                continue
            wanted.add((s.cache_key(), seed))
            todo += guess is None or (*guess[:1], s.dataset, bool(s.aligned), int(seed), s.condition.key(),
                                      _kind(s.synthetic, s.synthetic_recipe), guess[1]) not in held
    return todo


def _loose(key: tuple, record: dict) -> tuple:
    """A record as `likely_todo` compares it: its identity with its data's kind for its data id, and its config but
    `pretrained` (a synthetic run's tiny BERT, named by the cache folder) for its config hash."""
    config, data = record.get("config"), key[5]
    return (*key[:4], key[6] if len(key) > 6 else "", _kind(is_synthetic(data), recipe_kind_of(data)),
            _without_bert(config) if isinstance(config, dict) else None)


def _kind(synthetic: bool, recipe: str) -> tuple:
    return ("synthetic", recipe) if synthetic else ("real",)


def _without_bert(config) -> str:
    return config_hash({key: value for key, value in dict(config).items() if key != "pretrained"})


def _config_guess(s: Setting) -> tuple[str, str] | None:
    """(the model's name as records hold it, its config as `_loose` compares it), resolved as `prepare_job` resolves
    it but without the data (which names a synthetic run's tiny BERT, the key left out); None where it does not
    resolve (planning says why): such a run is guessed to do."""
    from ..training.trainer_config import resolve_config
    try:
        model = canonical_model_name(s.model)
        config = resolve_config(model, s.dataset, preset=s.preset, overrides=list(s.overrides), max_epochs=s.max_epochs)
    except ToolkitError:
        return None
    return model, _without_bert(config)
