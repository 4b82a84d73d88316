"""Tables for the studies of issue 7: models side by side (``comparison``), hyperparameter
sensitivity (``sensitivity``) and the attack ablations (``ablations``). Same statistics as the
overview tables: images are the sample, 95 % percentile bootstrap intervals over images,
paired (per image) where two settings are compared."""

from __future__ import annotations

from .ablations import ablation_tables
from .comparison import model_accuracies, model_comparison_tables
from .sensitivity import relative_spread, sensitivity_tables

__all__ = [
    "ablation_tables",
    "model_accuracies",
    "model_comparison_tables",
    "relative_spread",
    "sensitivity_tables",
]
