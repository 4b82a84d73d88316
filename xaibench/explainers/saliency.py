"""Saliency: the gradient of the target logit with respect to the input pixels."""

from __future__ import annotations

from typing import Any

import torch
from captum.attr import Saliency
from torch import Tensor

from ..registry import explainers
from ..types import Classifier, Explainer
from ._common import finish, prepare, quiet_captum


@explainers.register("saliency")
class SaliencyExplainer(Explainer):
    """Captum ``Saliency`` on the logits, one call per batch.

    ``abs=True`` (the default, as in Captum and the eXIAA paper) returns ``|∂f_y/∂x|``; pass
    ``abs=False`` for signed gradients (the AttEXplore code base's ``sm`` wrapper).
    """

    title = "Saliency"
    summary = "gradient of the target logit with respect to the pixels (|∂f/∂x| by default)"
    needs_gradients = True
    fuses_prediction = True  # explain_predicted: one forward + backward

    @classmethod
    def passes_per_image(cls, params: dict[str, Any]) -> tuple[int, int]:
        return 1, 1

    def __init__(self, classifier: Classifier, abs: bool = True):  # Captum's name for the flag
        super().__init__(classifier, abs=bool(abs))
        self.abs = bool(abs)
        self._saliency = Saliency(classifier)

    def explain(self, x01: Tensor, target: Tensor) -> Tensor:
        x, t = prepare(self.classifier, x01, target)
        with quiet_captum():
            attributions = self._saliency.attribute(x, target=t, abs=self.abs)
        return finish(attributions, x01)

    def explain_predicted(self, x01: Tensor) -> tuple[Tensor, Tensor]:
        """Saliency of the predicted class and the logits, from one forward + backward.

        The target is ``logits.argmax(dim=1)`` of this very forward pass. The operations are
        Captum's (``compute_gradients``: gather the target logit, ``autograd.grad`` of its
        unbound rows), so the attributions equal ``explain(x01, logits.argmax(dim=1))``
        exactly; the runner then needs no separate prediction pass (``types.Explainer``).
        """
        x, _ = prepare(self.classifier, x01, 0)
        x.requires_grad_(True)
        with torch.enable_grad():
            logits = self.classifier(x)
            target = logits.detach().argmax(dim=1)
            selected = torch.gather(logits, 1, target.view(-1, 1)).squeeze(-1)
            (gradients,) = torch.autograd.grad(torch.unbind(selected), x)
        attributions = finish(gradients.abs() if self.abs else gradients, x01)
        return attributions, logits.detach().float().to(x01.device)
