"""Built-in explainers (Captum-backed, batched). Importing this module registers them."""

from __future__ import annotations

from .deeplift_rules import register_elementwise_rules
from .deeplift_shap import DeepLiftShapExplainer
from .integrated_gradients import IntegratedGradientsExplainer
from .saliency import SaliencyExplainer
from .smoothgrad import SmoothGradExplainer

__all__ = [
    "DeepLiftShapExplainer",
    "IntegratedGradientsExplainer",
    "SaliencyExplainer",
    "SmoothGradExplainer",
    "register_elementwise_rules",
]
