"""Built-in metrics. Importing this package registers them in ``xaibench.registry.metrics``."""

from __future__ import annotations

from . import faithfulness, quantus_metrics, robustness  # noqa: F401  (registration; quantus.* provider)
from .faithfulness import (
    INFD_PERTURBATIONS,
    YEH_SQUARE_SIZES,
    Deletion,
    Infidelity,
    Insertion,
    MifLifArea,
    infidelity_perturbations,
    square_placements,
)
from .perturbation import blur, pixel_scores, rank_pixels, rise_kernel
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
    "INFD_PERTURBATIONS",
    "YEH_SQUARE_SIZES",
    "ConfidenceDropPct",
    "Deletion",
    "ExplanationChangePct",
    "Infidelity",
    "Insertion",
    "MifLifArea",
    "PredictionFlipped",
    "RankCorrelation",
    "SSIMMetric",
    "TopKIntersection",
    "average_ranks",
    "blur",
    "infidelity_perturbations",
    "pixel_scores",
    "rank_pixels",
    "rise_kernel",
    "square_placements",
    "ssim",
]
