"""mmsa-atsuko: benchmark toolkit for multimodal sentiment and intent recognition."""
from .training.hardware import default_cublas_workspace
from .version import __version__

# Deterministic cuBLAS needs its workspace fixed before the process's first CUDA matmul, which
# in a notebook may come before any run: so here, at import, not in `set_seed`. Only a default.
default_cublas_workspace()


def run(*args, **kwargs):
    """Train and test models over datasets and seeds; see `mmsa_atsuko.api.run`."""
    from .api import run as _run   # lazy: importing the package stays cheap

    return _run(*args, **kwargs)


__all__ = ["__version__", "run"]
