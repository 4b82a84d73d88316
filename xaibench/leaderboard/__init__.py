"""The leaderboard: Parquet results → overview tables, figures, examples, provenance.

``build_site(dirs, out)`` writes a self-contained static site (``index.html`` + ``assets/``);
``render_markdown(build_leaderboard(dirs))`` gives the overview tables as markdown.
"""

from __future__ import annotations

from .board import Leaderboard, build_leaderboard
from .load import SuiteResults, load_results
from .markdown import render_markdown
from .site import build_site, site_size
from .slugs import slugify
from .stats import Estimate, bootstrap_mean, rank, summarize

__all__ = [
    "Estimate",
    "Leaderboard",
    "SuiteResults",
    "bootstrap_mean",
    "build_leaderboard",
    "build_site",
    "load_results",
    "rank",
    "render_markdown",
    "site_size",
    "slugify",
    "summarize",
]
