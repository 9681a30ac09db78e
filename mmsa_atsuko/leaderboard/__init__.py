"""Tables from the results store: leaderboards, the Table 4 ablation, comparisons.

published.py: the seed paper's tables as printed; stats.py: cells over seeds and Welch tests;
tables.py: the leaderboards and comparisons built of them from run records; notes.py: what each table says
under its rows; ablation.py: Table 4, built from those tables; cells.py: what one printed cell reads (units,
numbers, pairs); render.py: Markdown, LaTeX and the terminal comparison; csv_table.py: the CSV, in stored units;
end_table.py: the table `run.py` prints at its end;
commands.py: `leaderboard` and `compare`, which read the store and put these together.
"""
from .commands import compare, leaderboard
from .published import PAPER_COLUMNS, PAPER_NAMES, PUBLISHED, PUBLISHED_ABLATION, Published, published_blocks
from .cells import RAW_METRICS, to_display
from .csv_table import csv_frame
from .render import render_comparison, render_latex, render_markdown
from .ablation import Ablation, build_ablations
from .stats import CI_NAME, MIN_SEEDS, SIGNIFICANCE, Cell, Welch, welch
from .tables import Row, Table, build_tables, comparison_rows, latest_configs
from ..results import headline_metric

__all__ = [
    "compare", "leaderboard",
    "PAPER_COLUMNS", "PAPER_NAMES", "PUBLISHED", "PUBLISHED_ABLATION", "Published", "published_blocks",
    "RAW_METRICS", "csv_frame", "render_comparison", "render_latex", "render_markdown", "to_display",
    "Ablation", "build_ablations",
    "CI_NAME", "MIN_SEEDS", "SIGNIFICANCE", "Cell", "Row", "Table", "Welch",
    "build_tables", "comparison_rows", "headline_metric", "latest_configs", "welch",
]
