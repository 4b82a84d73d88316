"""Built-in explainers (Captum-backed, batched). Importing this module registers them."""

from __future__ import annotations

from ..function_explainer import function_explainer
from . import cam  # noqa: F401  (registers grad_cam, grad_cam_plus_plus, score_cam)
from .agi import AGIExplainer
from .attention_maps import AttentionRolloutExplainer, CheferAttentionExplainer
from .attexplore import AttExploreExplainer
from .captum_methods import CaptumExplainer  # registers the captum.<Name> provider
from .deeplift import DeepLiftExplainer
from .deeplift_rules import register_elementwise_rules
from .deeplift_shap import DeepLiftShapExplainer
from .gradient_variants import (
    InputXGradientExplainer,
    InputXSmoothGradExplainer,
    SquaredSmoothGradExplainer,
)
from .integrated_gradients import IntegratedGradientsExplainer
from .random_attribution import RandomAttribution
from .saliency import SaliencyExplainer
from .smoothgrad import SmoothGradExplainer

__all__ = [
    "AGIExplainer",
    "AttExploreExplainer",
    "AttentionRolloutExplainer",
    "CaptumExplainer",
    "CheferAttentionExplainer",
    "DeepLiftExplainer",
    "DeepLiftShapExplainer",
    "InputXGradientExplainer",
    "InputXSmoothGradExplainer",
    "IntegratedGradientsExplainer",
    "RandomAttribution",
    "SaliencyExplainer",
    "SmoothGradExplainer",
    "SquaredSmoothGradExplainer",
    "function_explainer",
    "register_elementwise_rules",
]
