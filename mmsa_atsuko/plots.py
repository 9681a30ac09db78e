"""Figures of the analyses (issue 7). Each figure is saved as PNG and PDF next to the CSV of the
numbers it draws: `<name>.png`, `<name>.pdf`, `<name>.csv`.

matplotlib is the optional `[plots]` extra; it is imported on first use, with the Agg backend,
so the rest of the toolkit (and a headless machine) never needs it.
"""
from __future__ import annotations

import io

import numpy as np
import pandas as pd

from .data.stamp import is_synthetic
from .errors import UsageError

MODALITY_COLORS = {"text": "#1f77b4", "vision": "#2ca02c", "audio": "#d62728"}
MODALITIES = ("text", "vision", "audio")
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


def _title(text: str, synthetic: bool) -> str:
    return text + (" [synthetic data]" if synthetic else "")


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


# ------------------------------------------------------------------------------------------
# explain
# ------------------------------------------------------------------------------------------
def plot_spectral_energy(table, where: str, synthetic: bool):
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, modality in zip(axes, MODALITIES):
        rows = table[table.modality == modality]
        ax.semilogy(rows.frequency_index, rows.mean_energy, marker="o", ms=3, color=MODALITY_COLORS[modality],
                    label=f"{modality}: mean energy")
        starts = rows.groupby("band").frequency_index.min().tolist()[1:]
        for i, start in enumerate(starts):
            ax.axvline(start - 0.5, color="black", ls="--", lw=1,
                       label="equal-energy band boundary" if i == 0 else None)
        ax.set_title(modality)
        ax.set_xlabel("graph frequency index j (low → high)")
        ax.set_ylabel("train-set mean energy Σ_c X̂[j,c]² (log)")
        ax.legend(fontsize=8)
    fig.suptitle(_title(f"Spectral energy per modality, train-set mean, with band boundaries — {where}", synthetic))
    fig.tight_layout()
    return fig


def plot_band_components(table, where: str, synthetic: bool):
    plt = pyplot()
    bands = [c for c in table.columns if c.startswith("band_")]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, modality in zip(axes, MODALITIES):
        rows = table[table.modality == modality]
        ax.plot(rows.time_step, rows.signal, color="black", lw=2, label="signal X (sum of bands)")
        for k, column in enumerate(bands):
            ax.plot(rows.time_step, rows[column], lw=1.2, label=f"{band_name(k, len(bands))}-frequency band X_{k}")
        ax.set_title(f"{modality} (feature channel {int(rows.channel.iloc[0])})")
        ax.set_xlabel("time step t (after projection)")
        ax.set_ylabel("feature value (projected units)")
        ax.legend(fontsize=7)
    sample = table.id.iloc[0]
    fig.suptitle(_title(f"Time-domain band components of test sample {short_id(sample)} — {where}", synthetic))
    fig.tight_layout()
    return fig


def plot_band_weights(table, where: str, synthetic: bool):
    plt = pyplot()
    bands = [c for c in table.columns if c.startswith("band_")]
    fig, axes = plt.subplots(1, 2, figsize=(15, 4.6), gridspec_kw={"width_ratios": [1, 2.2]})
    means = table[table.id == "test mean"].set_index("modality").loc[list(MODALITIES)]
    x = np.arange(len(bands))
    width = 0.8 / len(MODALITIES)
    for i, modality in enumerate(MODALITIES):
        axes[0].bar(x + (i - 1) * width, means.loc[modality, bands], width, color=MODALITY_COLORS[modality],
                    label=modality)
    axes[0].set_xticks(x, [f"{band_name(k, len(bands))}" for k in range(len(bands))])
    axes[0].set_xlabel("frequency band")
    axes[0].set_ylabel("band weight w^b (fraction, sums to 1)")
    axes[0].set_title("mean over the test set")
    axes[0].axhline(1 / len(bands), color="gray", ls=":", lw=1, label="uniform")
    axes[0].legend(fontsize=8)

    chosen = table[table.id != "test mean"]
    samples = list(dict.fromkeys(chosen.id))
    hatches = ("", "//", "..", "xx", "\\\\", "++", "--", "oo")     # one per band (num_bands is a config key)
    for i, modality in enumerate(MODALITIES):
        rows = chosen[chosen.modality == modality].set_index("id").loc[samples]
        bottom = np.zeros(len(samples))
        positions = np.arange(len(samples)) + (i - 1) * width
        for k, column in enumerate(bands):
            axes[1].bar(positions, rows[column], width, bottom=bottom, color=MODALITY_COLORS[modality],
                        alpha=1 - 0.6 * k / max(1, len(bands) - 1), hatch=hatches[k % len(hatches)],
                        edgecolor="white",
                        label=f"{modality}, {band_name(k, len(bands))} band")
            bottom += rows[column].to_numpy()
    axes[1].set_xticks(np.arange(len(samples)), [short_id(s) for s in samples], rotation=45, ha="right", fontsize=7)
    axes[1].set_xlabel("test sample id")
    axes[1].set_ylabel("band weight w^b (stacked, sums to 1)")
    axes[1].set_title("chosen test samples (bars: text, vision, audio)")
    axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle(_title(f"Band-router weights — {where}", synthetic))
    fig.tight_layout()
    return fig


def _stacked_weights(ax, rows, title: str, columns=None):
    """One bar per sample stacked over the modalities; `columns`: modality name -> column (default the weights')."""
    from .analysis import WEIGHT_COLUMN_OF
    columns = columns or WEIGHT_COLUMN_OF
    samples = list(rows.id)
    bottom = np.zeros(len(samples))
    for modality in MODALITIES:
        values = rows[columns[modality]].to_numpy()
        ax.bar(np.arange(len(samples)), values, bottom=bottom, color=MODALITY_COLORS[modality], label=modality)
        bottom += values
    ax.set_xticks(np.arange(len(samples)), [short_id(s) for s in samples], rotation=45, ha="right", fontsize=7)
    ax.set_xlabel("test sample id")
    ax.set_ylabel("modality weight (fraction, sums to 1)")
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))


def plot_modality_weights(table, where: str, synthetic: bool):
    plt = pyplot()
    variants = list(dict.fromkeys(table.variant))
    fig, axes = plt.subplots(1, len(variants), figsize=(6.5 * len(variants), 4), squeeze=False)
    for ax, variant in zip(axes[0], variants):
        rows = table[table.variant == variant]
        # The panels may come from two runs (the partner without the MCM): each says which.
        _stacked_weights(ax, rows, f"{variant}\nrun {rows.run_id.iloc[0]}")
    fig.suptitle(_title(f"Per-sample modality weights w — {where}", synthetic))
    fig.tight_layout()
    return fig


def plot_mcm_target(table, where: str, synthetic: bool):
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(13, 4))
    from .analysis import TARGET_COLUMN_OF, WEIGHT_COLUMN_OF
    for ax, (title, columns) in zip(axes, (("MCM target q", TARGET_COLUMN_OF), ("router weight w", WEIGHT_COLUMN_OF))):
        _stacked_weights(ax, table, title, columns)
    fig.suptitle(_title(f"MCM complementarity target q next to the router weights w — {where}", synthetic))
    fig.tight_layout()
    return fig


def plot_weight_distribution(table, where: str, synthetic: bool):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    bins = np.linspace(0, 1, 26)
    from .analysis import WEIGHT_COLUMN_OF
    for modality, column in WEIGHT_COLUMN_OF.items():
        ax.hist(table[column], bins=bins, histtype="step", linewidth=2, color=MODALITY_COLORS[modality],
                label=f"{modality} (mean {table[column].mean():.2f})")
    ax.set_xlabel("modality weight w (fraction of the fused feature)")
    ax.set_ylabel("test samples (count)")
    ax.set_xlim(0, 1)
    ax.legend()
    ax.set_title(_title(f"Distribution of modality weights over {len(table)} test samples\n{where}", synthetic))
    fig.tight_layout()
    return fig


EXPLAIN_FIGURES = {
    "spectral_energy": plot_spectral_energy,
    "band_components": plot_band_components,
    "band_weights": plot_band_weights,
    "modality_weights_mcm": plot_modality_weights,
    "mcm_target": plot_mcm_target,
    "modality_weight_distribution": plot_weight_distribution,
}


def explain_files(tables: dict, where: str, synthetic: bool) -> dict[str, bytes]:
    files = {}
    for name, table in tables.items():
        files.update(figure_files(EXPLAIN_FIGURES[name](table, where, synthetic), table, name))
    return files


# ------------------------------------------------------------------------------------------
# robustness, t-SNE, sensitivity
# ------------------------------------------------------------------------------------------
CLEAN_SNR_POSITION = 30.0        # where the clean point sits on the SNR axis (labelled "clean")


def plot_robustness(table, metric: str, synthetic: bool, lower_is_better: bool):
    plt = pyplot()
    runs = list(dict.fromkeys(table.run_id))
    styles = ("-", "--", ":", "-.")
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), gridspec_kw={"width_ratios": [1.4, 1.4, 1]})
    for r, run_id in enumerate(runs):
        rows = table[table.run_id == run_id]
        clean = float(rows[rows.corruption == "clean"][metric].iloc[0])
        name = f"{rows.model.iloc[0]} ({run_id[-6:]})" if len(runs) > 1 else rows.model.iloc[0]
        for modality in MODALITIES:
            color, style = MODALITY_COLORS[modality], styles[r % len(styles)]
            noise = rows[(rows.corruption == "noise")
                         & (rows.modality == modality)].sort_values("level", ascending=False)
            if len(noise):
                axes[0].plot([CLEAN_SNR_POSITION] + list(noise.level), [clean] + list(noise[metric]), style,
                             marker="o", color=color, label=f"{name}: noise on {modality}")
            drop = rows[(rows.corruption == "frame_drop") & (rows.modality == modality)].sort_values("level")
            if len(drop):
                axes[1].plot([0] + list(100 * drop.level), [clean] + list(drop[metric]), style, marker="o",
                             color=color, label=f"{name}: frames dropped in {modality}")
        zero = rows[rows.corruption == "zero"].set_index("modality")
        width = 0.8 / len(runs)
        positions = np.arange(len(MODALITIES) + 1) + (r - (len(runs) - 1) / 2) * width
        values = [clean] + [float(zero.loc[m, metric]) if m in zero.index else np.nan for m in MODALITIES]
        axes[2].bar(positions, values, width, color=["gray"] + [MODALITY_COLORS[m] for m in MODALITIES],
                    hatch=("", "//", "..", "xx")[r % 4], edgecolor="white", label=name if len(runs) > 1 else None)
    better = "lower is better" if lower_is_better else "higher is better"
    snr_ticks = sorted(set(table[table.corruption == "noise"].level), reverse=True)
    axes[0].set_xticks([CLEAN_SNR_POSITION] + snr_ticks, ["clean"] + [f"{v:g}" for v in snr_ticks])
    axes[0].set_xlabel("signal-to-noise ratio (dB; more noise to the right)")
    axes[0].invert_xaxis()
    axes[0].set_title("Gaussian noise on one modality")
    axes[1].set_xlabel("frames dropped (% of time steps, zeroed)")
    axes[1].set_title("random frame drops in one modality")
    axes[2].set_xticks(np.arange(len(MODALITIES) + 1), ["clean"] + [f"{m}\nzeroed" for m in MODALITIES])
    scores = table[table.corruption.isin(["clean", "zero"])][metric]
    axes[2].set_ylim(0.9 * scores.min(), 1.05 * scores.max())
    axes[2].set_xlabel("modality removed (features set to 0)")
    axes[2].set_title("one modality zeroed out")
    for ax in axes:
        ax.set_ylabel(f"test {metric} ({better})")
    axes[0].legend(fontsize=7)
    axes[1].legend(fontsize=7)
    if len(runs) > 1:
        axes[2].legend(fontsize=7)
    fig.suptitle(_title(f"Robustness of {', '.join(dict.fromkeys(table.model))}: test {metric} under corruption",
                        synthetic))
    fig.tight_layout()
    return fig


def plot_tsne(table, where: str, synthetic: bool):
    plt = pyplot()
    variants = list(dict.fromkeys(table.variant))
    fig, axes = plt.subplots(1, len(variants), figsize=(4.2 * len(variants), 4.2), squeeze=False)
    class_colors = {"negative": "#d62728", "neutral": "#7f7f7f", "positive": "#2ca02c"}
    classes = list(dict.fromkeys(table.label_class))
    if not set(classes) <= set(class_colors):
        palette = plt.get_cmap("tab20")
        class_colors = {c: palette(i % 20) for i, c in enumerate(sorted(classes))}
    for ax, variant in zip(axes[0], variants):
        rows = table[table.variant == variant]
        for cls in [c for c in class_colors if c in classes]:
            points = rows[rows.label_class == cls]
            ax.scatter(points.tsne_1, points.tsne_2, s=14, color=class_colors[cls], label=cls, alpha=0.8)
        ax.set_title(variant, fontsize=10)
        ax.set_xlabel("t-SNE dimension 1 (arbitrary units)")
        ax.set_ylabel("t-SNE dimension 2 (arbitrary units)")
    # Outside the last panel: with 20 intent classes an inside legend hides the points.
    axes[0][-1].legend(title="test label", fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0),
                       ncol=1 if len(classes) <= 10 else 2)
    fig.suptitle(_title(f"t-SNE of the fused test features c_proj per ablation variant — {where}", synthetic))
    fig.tight_layout()
    return fig


def _seed_count(counts) -> str:
    low, high = int(counts.min()), int(counts.max())
    return str(low) if low == high else f"{low}–{high}"


def plot_sensitivity(table, where: str, synthetic: bool, lower_is_better: bool):
    from .analysis import PARAM_LABELS
    plt = pyplot()
    params = list(dict.fromkeys(table.param))
    fig, axes = plt.subplots(1, len(params), figsize=(4.5 * len(params), 3.8), squeeze=False)
    for ax, param in zip(axes[0], params):
        rows = table[table.param == param].sort_values("value")
        metric = rows.metric.iloc[0]
        ax.errorbar(rows.value, rows["mean"], yerr=rows["std"], marker="o", capsize=4,
                    label=f"mean ± std over {_seed_count(rows.seeds)} seeds")
        ax.set_xlabel(PARAM_LABELS.get(param, param))
        ax.set_ylabel(f"test {metric} ({'lower' if lower_is_better else 'higher'} is better)")
        ax.set_title(PARAM_LABELS.get(param, param))
        ax.legend(fontsize=8)
    fig.suptitle(_title(f"Hyperparameter sensitivity — {where}", synthetic))
    fig.tight_layout()
    return fig


def plot_missing_rate(table, title: str, synthetic: bool, lower_is_better: bool):
    """`leaderboard --by missing_rate`: one line per row of `table` (curves_frame of one table),
    mean ± std over seeds against the missing rate, AUC in the legend."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    for label, rows in table.groupby("model", sort=False):
        rows = rows.sort_values("missing_rate")
        auc = rows.auc.iloc[0]
        ax.errorbar(rows.missing_rate, rows["mean"], yerr=rows["std"].fillna(0), marker="o", capsize=3,
                    label=label if auc != auc else f"{label} (AUC {auc:.4f})")
    metric = table.metric.iloc[0]
    ax.set_xlabel("missing rate (train, valid and test)")
    ax.set_ylabel(f"test {metric} ({'lower' if lower_is_better else 'higher'} is better)")
    ax.legend(fontsize=8)
    fig.suptitle(_title(title, synthetic))
    fig.tight_layout()
    return fig
