"""The aggregated leaderboard: every suite's overview tables, before any rendering."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .ablations import ablation_tables
from .comparison import model_comparison_tables
from .faithfulness import faithfulness_tables
from .load import SuiteResults, load_results
from .robustness import robustness_tables
from .sensitivity import sensitivity_tables
from .source_split import source_split_tables
from .stats import DEFAULT_RESAMPLES, DEFAULT_SEED
from .tables import Table


@dataclass
class Leaderboard:
    """The aggregated leaderboard: per suite, its overview tables (before any rendering)."""

    suites: list[SuiteResults]
    tables: dict[str, list[Table]]
    seed: int
    resamples: int


def build_leaderboard(
    dirs: list[str | Path], *, seed: int = DEFAULT_SEED, resamples: int = DEFAULT_RESAMPLES
) -> Leaderboard:
    """Read the results folders and compute every overview table."""
    suites = load_results(dirs)
    # A study's own table comes before the long per-explainer tables it summarises.
    tables = {
        suite.name: robustness_tables(suite, seed=seed, resamples=resamples)
        + sensitivity_tables(suite, seed=seed, resamples=resamples)
        + model_comparison_tables(suite, seed=seed, resamples=resamples)
        + faithfulness_tables(suite, seed=seed, resamples=resamples)
        + ablation_tables(suite, seed=seed, resamples=resamples)
        + source_split_tables(suite, seed=seed, resamples=resamples)
        for suite in suites
    }
    return Leaderboard(suites=suites, tables=tables, seed=seed, resamples=resamples)
