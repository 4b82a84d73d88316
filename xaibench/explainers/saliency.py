"""Saliency: the gradient of the target logit with respect to the input pixels."""

from __future__ import annotations

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

    needs_gradients = True

    def __init__(self, classifier: Classifier, abs: bool = True):  # Captum's name for the flag
        super().__init__(classifier, abs=bool(abs))
        self.abs = bool(abs)
        self._saliency = Saliency(classifier)

    def explain(self, x01: Tensor, target: Tensor) -> Tensor:
        x, t = prepare(self.classifier, x01, target)
        with quiet_captum():
            attributions = self._saliency.attribute(x, target=t, abs=self.abs)
        return finish(attributions, x01)
