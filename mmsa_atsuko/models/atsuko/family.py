"""The names whose runs are Atsuko's: Atsuko and its Table 4 ablations (§14). No torch, so the leaderboard's
ablation table and the commands that check a run's model name read them without importing the model."""
from ...errors import UsageError

# Table 4's rows in the table's order (§14), each by its switches (use_sbn, use_mcm) -> the row's name: the one
# mapping the leaderboard's ablation table (rows in this order) and the analysis' panels (named so) read.
TABLE4_ROWS = {(False, False): "base (no SBN, no MCM)", (True, False): "+SBN", (False, True): "+MCM",
               (True, True): "full Atsuko (SBN + MCM)"}

# Table 4 ablations under readable names: name -> (use_sbn, use_mcm). model.py registers each as a variant of
# Atsuko, writing the switches out as literals for model_names' scan of its source (tests/test_registry.py holds
# them equal to these); the config loader applies the switches after atsuko.yaml's dataset block; they share
# atsuko.yaml.
ABLATIONS = {"atsuko_base": (False, False), "atsuko_sbn": (True, False), "atsuko_mcm": (False, True)}

# Every name whose runs are Atsuko's (explain, ablation tables).
ATSUKO_FAMILY = ("atsuko", *ABLATIONS)


def switches_of(config) -> tuple[bool, bool]:
    """A stored Atsuko-family config's Table 4 row, (use_sbn, use_mcm); a switch the config lacks reads as off."""
    config = config or {}
    return bool(config.get("use_sbn")), bool(config.get("use_mcm"))


def require_atsuko_record(record: dict, what: str = "explain") -> None:
    """A run record of another model is one line: `what` reads Atsuko's routers. From the record alone, so explain
    refuses before it imports torch, loads the run or reads its data."""
    if record["model"] not in ATSUKO_FAMILY:
        raise UsageError(f"{what} reads Atsuko's routers; run {record['run_id']} is model {record['model']!r}, "
                         f"not atsuko")
