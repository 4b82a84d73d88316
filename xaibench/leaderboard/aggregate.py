"""Aggregation: the public names of the leaderboard's statistics and overview tables.

Rows that share an original image are not independent (one image has many grid points and
attack images), so every statistic first averages the rows of each image and then treats the
images as the sample: the estimate is the mean of the per-image means, and its 95 % interval
is the percentile interval of that mean over bootstrap resamples of the images (``stats``).
The tables are built in ``robustness`` and ``faithfulness`` from the rows and the plugin
metadata the runs recorded (``meta``); ``flags`` reads what the rows declare about themselves.
"""

from __future__ import annotations

from .faithfulness import faithfulness_tables, metric_directions
from .flags import (
    COMPLETENESS_GAP_LIMIT,
    NOISE_FLOOR_FLAG,
    NOISE_FLOOR_NOTE,
    completeness_gaps,
    completeness_gates,
    completeness_warning,
    mask_nonfinite,
    noise_floor_flag,
    nonfinite_counts,
    nonfinite_notes,
    pool_fallback_note,
    undefined_notes,
    under_converged,
)
from .grid import point_text, primary_source_rows, reference_rows
from .robustness import robustness_tables
from .stats import (
    CONFIDENCE,
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    MISSING,
    Estimate,
    bootstrap_columns,
    bootstrap_mean,
    per_image,
    rank,
    summarize,
)
from .tables import UNRANKED, Cell, Column, Row, Table, estimate_cells, format_estimate

__all__ = [
    "COMPLETENESS_GAP_LIMIT",
    "CONFIDENCE",
    "DEFAULT_RESAMPLES",
    "DEFAULT_SEED",
    "MISSING",
    "NOISE_FLOOR_FLAG",
    "NOISE_FLOOR_NOTE",
    "UNRANKED",
    "Cell",
    "Column",
    "Estimate",
    "Row",
    "Table",
    "bootstrap_columns",
    "bootstrap_mean",
    "completeness_gaps",
    "completeness_gates",
    "completeness_warning",
    "estimate_cells",
    "faithfulness_tables",
    "format_estimate",
    "mask_nonfinite",
    "metric_directions",
    "noise_floor_flag",
    "nonfinite_counts",
    "nonfinite_notes",
    "per_image",
    "point_text",
    "pool_fallback_note",
    "primary_source_rows",
    "rank",
    "reference_rows",
    "robustness_tables",
    "summarize",
    "under_converged",
    "undefined_notes",
]
