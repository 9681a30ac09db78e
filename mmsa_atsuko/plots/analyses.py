"""The figures of the analyses over runs: robustness under corruption, t-SNE per ablation variant, hyperparameter
sensitivity, and the leaderboard's score against the missing rate."""
from __future__ import annotations

import numpy as np

from ..data.conditions import label_suffix
from .common import MODALITIES, MODALITY_COLORS, pyplot, tagged_title

CLEAN_SNR_POSITION = 30.0        # where the clean point sits on the SNR axis (labelled "clean")
LEGEND_HANDLE_LENGTH = 6.0       # in font sizes: a whole "-." cycle each side of the marker (fontsize 7, linewidth 1.5)
RUN_MARKERS = ("o", "s", "^", "D")   # one per run of a robustness figure, as its line style is
RUN_SHIFT_POINTS = 4.0           # how far apart, sideways, two runs' lines are drawn (the values are not moved)


def _condition_suffix(rows) -> str:
    """` [missing_rate=0.6]` for rows of a run under a protocol condition (the table's `condition` column), as the
    leaderboard labels such a row; "" for the plain one (read back from a CSV, an empty cell is NaN)."""
    if "condition" not in rows:
        return ""
    key = rows.condition.iloc[0]
    return label_suffix(key if isinstance(key, str) else "")


def plot_robustness(table, metric: str, data_tag: str, lower_is_better: bool):
    plt = pyplot()
    from matplotlib.transforms import offset_copy
    runs = list(dict.fromkeys(table.run_id))
    styles = ("-", "--", ":", "-.")
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), gridspec_kw={"width_ratios": [1.4, 1.4, 1]})
    for r, run_id in enumerate(runs):
        rows = table[table.run_id == run_id]
        clean = float(rows[rows.corruption == "clean"][metric].iloc[0])
        model = rows.model.iloc[0] + _condition_suffix(rows)
        name = f"{model} ({run_id[-6:]})" if len(runs) > 1 else model
        # Two runs whose lines are equal (a model robust to a modality) drew the second exactly over the first, which
        # it hid: each run has its own marker, hollow after the first's, and its lines are drawn a few points aside
        # (on screen, not in value).
        marker, shift = RUN_MARKERS[r % len(RUN_MARKERS)], (r - (len(runs) - 1) / 2) * RUN_SHIFT_POINTS
        face = {"markerfacecolor": "none"} if r else {}
        for modality in MODALITIES:
            color, style = MODALITY_COLORS[modality], styles[r % len(styles)]
            noise = rows[(rows.corruption == "noise")
                         & (rows.modality == modality)].sort_values("level", ascending=False)
            lines = []
            if len(noise):
                lines += axes[0].plot([CLEAN_SNR_POSITION] + list(noise.level), [clean] + list(noise[metric]), style,
                                      marker=marker, color=color, label=f"{name}: noise on {modality}", **face)
            drop = rows[(rows.corruption == "frame_drop") & (rows.modality == modality)].sort_values("level")
            if len(drop):
                lines += axes[1].plot([0] + list(100 * drop.level), [clean] + list(drop[metric]), style,
                                      marker=marker, color=color, label=f"{name}: frames dropped in {modality}",
                                      **face)
            for line in lines if shift else ():
                # Moved once drawn: the axes' limits were set from its values (a line added with a shifted transform
                # is left out of them, and the panel zoomed to nothing).
                line.set_transform(offset_copy(line.axes.transData, fig=fig, x=shift, y=0, units="points"))
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
    # A modality no run saw has no rows (`modalities_present`): its empty slot says why instead of "zeroed".
    zeroed = set(table[table.corruption == "zero"].modality)
    axes[2].set_xticks(np.arange(len(MODALITIES) + 1),
                       ["clean"] + [f"{m}\n{'zeroed' if m in zeroed else 'never seen'}" for m in MODALITIES])
    # No set_ylim: bars start at 0 (matplotlib's autoscale keeps a bar's base); a bottom at 90% of the lowest
    # score made a 0.80 vs 0.75 bar look three times as tall. The top margin leaves the legend room above the bars.
    axes[2].margins(y=0.25)
    axes[2].set_xlabel("modality removed (features set to 0)")
    axes[2].set_title("one modality zeroed out")
    for ax in axes:
        ax.set_ylabel(f"test {metric} ({better})")
    # Long enough handles that a second run's dashes show on each side of the marker (at the default 2 font sizes
    # its "--" and "-." legend entries drew as solid lines); one run draws only solid lines.
    for ax in axes[:2]:
        ax.legend(fontsize=7, handlelength=LEGEND_HANDLE_LENGTH if len(runs) > 1 else None)
    if len(runs) > 1:
        axes[2].legend(fontsize=7)
    models = dict.fromkeys(rows.model.iloc[0] + _condition_suffix(rows)
                           for rows in (table[table.run_id == run_id] for run_id in runs))
    fig.suptitle(tagged_title(f"Robustness of {', '.join(models)}: test {metric} under corruption", data_tag))
    fig.tight_layout()
    return fig


def plot_tsne(table, where: str, data_tag: str):
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
    fig.suptitle(tagged_title(f"t-SNE of the fused test features c_proj per ablation variant — {where}", data_tag))
    fig.tight_layout()
    return fig


def _seed_count(counts) -> str:
    """'1 seed', '3 seeds', '2–3 seeds': how many seeds the points of a line are over."""
    low, high = int(counts.min()), int(counts.max())
    return ("1 seed" if high == 1 else f"{low} seeds") if low == high else f"{low}–{high} seeds"


def plot_sensitivity(table, where: str, data_tag: str, lower_is_better: bool):
    from ..analysis import PARAM_LABELS
    plt = pyplot()
    params = list(dict.fromkeys(table.param))
    fig, axes = plt.subplots(1, len(params), figsize=(4.5 * len(params), 3.8), squeeze=False)
    for ax, param in zip(axes[0], params):
        rows = table[table.param == param].sort_values("value")
        metric = rows.metric.iloc[0]
        ax.errorbar(rows.value, rows["mean"], yerr=rows["std"], marker="o", capsize=4,
                    label=f"mean ± std over {_seed_count(rows.seeds)}")
        ax.set_xlabel(PARAM_LABELS.get(param, param))
        ax.set_ylabel(f"test {metric} ({'lower' if lower_is_better else 'higher'} is better)")
        ax.set_title(PARAM_LABELS.get(param, param))
        ax.legend(fontsize=8)
    fig.suptitle(tagged_title(f"Hyperparameter sensitivity — {where}", data_tag))
    fig.tight_layout()
    return fig


def plot_missing_rate(table, title: str, data_tag: str, lower_is_better: bool):
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
    fig.suptitle(tagged_title(title, data_tag))
    fig.tight_layout()
    return fig
