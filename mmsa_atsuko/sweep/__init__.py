"""Sweeps: models x datasets x aligned flags x seeds, resumable, run locally or on Ray.

    python run.py sweep configs/sweeps/paper.yaml
    python run.py sweep -m tfn lmf -d mosi sims -s 1111 1112 --synthetic --preset small --jobs 2

A run is identified by (model, dataset, aligned, seed, config hash, data id), as everywhere
(`results.identity`). `plan` expands a sweep file or -m/-d/-s lists and drops what is
recorded; `driver` holds the folder's lock and runs the rest on a backend (`local`: in
process or worker processes; `ray_backend`: one Ray task per run); `execute` runs one run.

Importing the package imports no torch (tests/test_lazy_imports.py): a sweep's planning line comes before it.
Torch comes with what trains (`execute`, imported by a backend when it runs a run), with the plan's data and with
the choice of devices; `RayBackend`'s module imports them where a run trains, and is imported when it is first
asked for.
"""
from .driver import Summary, SweepLock, SweepProgress, run_plan, sweep
from .local import LocalBackend, default_jobs, parse_devices
from .packed import run_packed
from .plan import Plan, PlannedRun, plan
from .sweep_file import Setting, expand

__all__ = ["sweep", "run_plan", "Summary", "SweepProgress", "SweepLock", "expand", "plan", "Plan", "PlannedRun",
           "Setting", "LocalBackend", "default_jobs", "parse_devices", "RayBackend", "run_packed"]


def __getattr__(name: str):
    if name == "RayBackend":
        from .ray_backend import RayBackend
        return RayBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
