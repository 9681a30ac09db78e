"""The figures of `explain`: what Atsuko's routers learned in one run (spectral energy and band boundaries, band
components, band weights, modality weights, the MCM target, the weights' distribution)."""
from __future__ import annotations

import numpy as np

from .common import MODALITIES, MODALITY_COLORS, band_name, figure_files, pyplot, short_id, tagged_title


def plot_spectral_energy(table, where: str, data_tag: str):
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
    fig.suptitle(tagged_title(f"Spectral energy per modality, train-set mean, with band boundaries — {where}",
                              data_tag))
    fig.tight_layout()
    return fig


def plot_band_components(table, where: str, data_tag: str):
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
    fig.suptitle(tagged_title(f"Time-domain band components of test sample {short_id(sample)} — {where}", data_tag))
    fig.tight_layout()
    return fig


def plot_band_weights(table, where: str, data_tag: str):
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
    axes[1].set_title("chosen test samples (bars: text, audio, vision)")
    axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle(tagged_title(f"Band-router weights — {where}", data_tag))
    fig.tight_layout()
    return fig


def _stacked_weights(ax, rows, title: str, columns=None):
    """One bar per sample stacked over the modalities; `columns`: modality name -> column (default the weights')."""
    from ..analysis import WEIGHT_COLUMN_OF
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


def plot_modality_weights(table, where: str, data_tag: str):
    plt = pyplot()
    variants = list(dict.fromkeys(table.variant))
    fig, axes = plt.subplots(1, len(variants), figsize=(6.5 * len(variants), 4), squeeze=False)
    for ax, variant in zip(axes[0], variants):
        rows = table[table.variant == variant]
        # The panels may come from two runs (the partner without the MCM): each says which.
        _stacked_weights(ax, rows, f"{variant}\nrun {rows.run_id.iloc[0]}")
    fig.suptitle(tagged_title(f"Per-sample modality weights w — {where}", data_tag))
    fig.tight_layout()
    return fig


def plot_mcm_target(table, where: str, data_tag: str):
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(13, 4))
    from ..analysis import TARGET_COLUMN_OF, WEIGHT_COLUMN_OF
    for ax, (title, columns) in zip(axes, (("MCM target q", TARGET_COLUMN_OF), ("router weight w", WEIGHT_COLUMN_OF))):
        _stacked_weights(ax, table, title, columns)
    fig.suptitle(tagged_title(f"MCM complementarity target q next to the router weights w — {where}", data_tag))
    fig.tight_layout()
    return fig


def plot_weight_distribution(table, where: str, data_tag: str):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    bins = np.linspace(0, 1, 26)
    from ..analysis import WEIGHT_COLUMN_OF
    for modality, column in WEIGHT_COLUMN_OF.items():
        ax.hist(table[column], bins=bins, histtype="step", linewidth=2, color=MODALITY_COLORS[modality],
                label=f"{modality} (mean {table[column].mean():.2f})")
    ax.set_xlabel("modality weight w (fraction of the fused feature)")
    ax.set_ylabel("test samples (count)")
    ax.set_xlim(0, 1)
    ax.legend()
    ax.set_title(tagged_title(f"Distribution of modality weights over {len(table)} test samples\n{where}", data_tag))
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


def explain_files(tables: dict, where: str, data_tag: str) -> dict[str, bytes]:
    files = {}
    for name, table in tables.items():
        files.update(figure_files(EXPLAIN_FIGURES[name](table, where, data_tag), table, name))
    return files
