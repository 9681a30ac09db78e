"""mmsa-atsuko: benchmark toolkit for multimodal sentiment and intent recognition."""
from .version import __version__


def run(*args, **kwargs):
    """Train and test models over datasets and seeds; see `mmsa_atsuko.api.run`."""
    from .api import run as _run   # lazy: importing the package stays cheap

    return _run(*args, **kwargs)


__all__ = ["__version__", "run"]
