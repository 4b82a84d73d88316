"""Built-in metrics. Importing this package registers them in ``xaibench.registry.metrics``."""

from __future__ import annotations

from . import robustness  # noqa: F401  (registration side effects)
from .robustness import (
    ConfidenceDropPct,
    ExplanationChangePct,
    PredictionFlipped,
    RankCorrelation,
    SSIMMetric,
    TopKIntersection,
    average_ranks,
)
from .ssim import ssim

__all__ = [
    "ConfidenceDropPct",
    "ExplanationChangePct",
    "PredictionFlipped",
    "RankCorrelation",
    "SSIMMetric",
    "TopKIntersection",
    "average_ranks",
    "ssim",
]
