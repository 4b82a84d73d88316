"""A random attribution: the chance level every faithfulness ranking should beat."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ..registry import explainers
from ..types import Classifier, Explainer, explanation_seeds


@explainers.register("random")
class RandomAttribution(Explainer):
    """Uniform noise in [0, 1) with the image's shape, seeded per image (FPA paper's "random").

    It ignores the model; faithfulness metrics should score it at chance (MIF/LIF area ≈ 0).
    """

    title = "Random"
    summary = "uniform noise, seeded per image: the chance level of every faithfulness metric"
    needs_gradients = False
    is_random = True

    def __init__(self, classifier: Classifier, seed: int = 0):
        super().__init__(classifier, seed=seed)
        self.seed = int(seed)

    def explain(self, x01: Tensor, target: Tensor, noise_ids: Sequence[str] | None = None) -> Tensor:
        noise = [
            torch.rand(x01.shape[1:], generator=torch.Generator().manual_seed(seed))
            for seed in explanation_seeds(x01, target, self.seed, noise_ids)
        ]
        return torch.stack(noise).to(x01.device) if noise else torch.empty_like(x01)
