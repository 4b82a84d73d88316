"""DeepLIFT against one constant baseline image (black by default)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..errors import ConfigError
from ..registry import explainers
from ..types import Classifier, Explainer
from ._common import check_choice
from .deeplift_engines import RULES_KINDS, RulesKind
from .deeplift_shap import DeepLiftShapExplainer


@explainers.register("deeplift")
class DeepLiftExplainer(DeepLiftShapExplainer):
    """DeepLIFT (Shrikumar et al. 2017) on the target logit against one baseline image whose
    every pixel is ``baseline`` (in [0, 1]; 0 = black).

    The same implementations as ``deeplift_shap`` (``rules``: "auto", "exact", "captum"; see
    there): on timm ViTs the exact rules make Σ attribution = ``f(x) − f(baseline)`` to
    rounding. One forward and one backward over ``2·N`` rows.
    """

    title = "DeepLIFT"
    summary = "DeepLIFT (rescale rule; exact rules on ViTs) against one constant baseline image"

    @classmethod
    def passes_per_image(cls, params: dict[str, Any]) -> tuple[int, int]:
        """The input and its baseline run together: 2 rows per image."""
        return 2, 2

    def __init__(
        self,
        classifier: Classifier,
        baseline: float = 0.0,
        rules: RulesKind = "auto",
        internal_batch_size: int | None = None,
    ):
        check_choice("deeplift", "rules", rules, RULES_KINDS)
        if not 0.0 <= float(baseline) <= 1.0:
            raise ConfigError(f"deeplift: baseline is a pixel value in [0, 1], got {baseline!r}")
        if internal_batch_size is not None and int(internal_batch_size) < 2:
            raise ConfigError("deeplift: internal_batch_size must be ≥ 2 (an image and its baseline) or None")
        self._init_engine(classifier, rules, internal_batch_size)
        Explainer.__init__(
            self, classifier, baseline=float(baseline), rules=rules, internal_batch_size=internal_batch_size
        )
        self.baseline = float(baseline)
        self.n_baselines = 1

    def baseline_images(self, image_shape: tuple[int, ...]) -> Tensor:
        """One ``1 × C × H × W`` image of value ``baseline``."""
        return torch.full((1, *(int(s) for s in image_shape)), self.baseline)
