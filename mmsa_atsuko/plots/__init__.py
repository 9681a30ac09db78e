"""Figures of the analyses (issue 7). Each figure is saved as PNG and PDF next to the CSV of the
numbers it draws: `<name>.png`, `<name>.pdf`, `<name>.csv`.

matplotlib is the optional `[plots]` extra; it is imported on first use, with the Agg backend,
so the rest of the toolkit (and a headless machine) never needs it.

The modules: `common` (matplotlib, the files of a figure, the colours and labels every figure shares),
`explain` (what Atsuko's routers learned: `explain`'s six figures) and `analyses` (robustness, t-SNE,
sensitivity, and the leaderboard's missing-rate curves). Each caller imports from the module that holds the name.
"""
