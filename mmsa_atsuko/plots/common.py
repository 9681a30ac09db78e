"""What every figure shares: matplotlib imported on first use (Agg), the files a figure is written as, the
modalities' colours, and the labels of samples, bands and titles."""
from __future__ import annotations

import io

import pandas as pd

from ..data.stamp import data_kind_text, is_synthetic
from ..errors import UsageError

MODALITY_COLORS = {"text": "#1f77b4", "vision": "#2ca02c", "audio": "#d62728"}
MODALITIES = ("text", "audio", "vision")      # MMSA's order, as its feature files hold them
BAND_NAMES = ("low", "mid", "high")


def pyplot():
    try:
        import matplotlib
    except ImportError:
        raise UsageError("figures need matplotlib: pip install 'mmsa-atsuko[plots]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def short_id(sample_id) -> str:
    """A sample id for a tick label: MMSA's 'video$_$clip' without a synthetic recipe prefix."""
    text = str(sample_id)
    if is_synthetic(text):            # a synthetic sample's id starts with its data id
        text = text.split("$_$", 1)[-1]
    return text.replace("$", r"\$")            # '$' would start mathtext


def band_name(k: int, num_bands: int) -> str:
    return BAND_NAMES[k] if num_bands == 3 else f"band {k}"


def data_tag_of(kind_texts) -> str:
    """What a figure's title says of the data it shows, from what its tables' titles say (`data.stamp.data_kind_text`,
    or a table's `kind_text`): each text but 'real data' once, 'synthetic data', 'not the published mosi data', 'not
    the real simsv2 data', 'your data', or "" for real data only. A figure on another file than MMSA's was tagged as
    real data's, while its table said otherwise."""
    return " and ".join(text for text in dict.fromkeys(kind_texts) if text != "real data")


def runs_data_tag(records) -> str:
    """`data_tag_of` of the runs a figure shows (their records), as their tables' titles say their data."""
    return data_tag_of(data_kind_text(r.get("data"), r["dataset"], bool(r["aligned"]), r.get("split_sizes"))
                       for r in records)


def tagged_title(text: str, data_tag: str) -> str:
    """A figure's title with `data_tag` after it: what it says of its data (`data_tag_of`, `runs_data_tag`; "" for
    real data)."""
    return text + (f" [{data_tag}]" if data_tag else "")


def figure_names(name: str) -> list[str]:
    """The files of one figure: `figure_files` writes them, and the commands check them before any work."""
    return [f"{name}.png", f"{name}.pdf", f"{name}.csv"]


def figure_files(fig, table: pd.DataFrame, name: str) -> dict[str, bytes]:
    """`<name>.png`, `<name>.pdf` and `<name>.csv` (the numbers it draws, at full precision) in memory,
    the figure closed: the caller writes every file of a command at once (`atomic.write_files`), so a
    full disk leaves none of them half written."""
    plt = pyplot()
    png, pdf, csv = figure_names(name)
    files = {}
    for path, options in ((png, {"dpi": 150}), (pdf, {})):
        buffer = io.BytesIO()
        fig.savefig(buffer, format=path.rsplit(".", 1)[1], bbox_inches="tight", **options)
        files[path] = buffer.getvalue()
    plt.close(fig)
    files[csv] = table.to_csv(index=False)
    return files
