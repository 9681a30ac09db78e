"""The names whose runs are Atsuko's: Atsuko and its Table 4 ablations (§14). No torch, so the leaderboard's
ablation table and the commands that check a run's model name read them without importing the model."""
from ...errors import UsageError

# Table 4 ablations under readable names: name -> (use_sbn, use_mcm). model.py registers each as a variant of
# Atsuko; the config loader applies the switches after atsuko.yaml's dataset block; they share atsuko.yaml.
ABLATIONS = {"atsuko_base": (False, False), "atsuko_sbn": (True, False), "atsuko_mcm": (False, True)}

# Every name whose runs are Atsuko's (explain, ablation tables).
ATSUKO_FAMILY = ("atsuko", *ABLATIONS)


def require_atsuko_record(record: dict, what: str = "explain") -> None:
    """A run record of another model is one line: `what` reads Atsuko's routers. From the record alone, so explain
    refuses before it imports torch, loads the run or reads its data."""
    if record["model"] not in ATSUKO_FAMILY:
        raise UsageError(f"{what} reads Atsuko's routers; run {record['run_id']} is model {record['model']!r}, "
                         f"not atsuko")
