"""The FPA paper's estimator variants (Brocki & Chung 2023) that the base explainers lack.

* ``sq_smoothgrad``: SQ-SG, the mean of squared gradients over noisy copies (SmoothGrad with
  ``nt_type="smoothgrad_sq"`` fixed; same noise as ``smoothgrad`` for the same seed).
* ``input_x_gradient``: VG′, the gradient times the input (Captum ``InputXGradient``).
* ``input_x_smoothgrad``: SG′, signed SmoothGrad times the input.

The signed/unsigned pixel reductions (``Σ_c a_c`` / ``Σ_c |a_c|``) belong to the metrics layer;
``docs/attexplore.md`` maps every FPA estimator name to an explainer plus a reduction.

``input_space``: the FPA paper multiplies by the input *the network sees* (normalised, e.g.
``[−1, 1]``). With ``x̃ = (x − mean)/std`` and the chain rule ``∂f/∂x̃ = std·∂f/∂x``,
``∂f/∂x̃ ⊙ x̃ = ∂f/∂x ⊙ (x − mean)``; ``"normalized"`` returns that, ``"pixel"`` (Captum's
convention, the default) returns ``∂f/∂x ⊙ x`` with ``x`` in ``[0, 1]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, get_args

from torch import Tensor

from ..registry import explainers
from ..types import Classifier
from ._common import check_choice
from .saliency import SaliencyExplainer
from .smoothgrad import SmoothGradExplainer

InputSpace = Literal["pixel", "normalized"]
INPUT_SPACES: tuple[str, ...] = get_args(InputSpace)


def _check_input_space(name: str, input_space: str) -> None:
    check_choice(name, "input_space", input_space, INPUT_SPACES)


def input_factor(classifier: Classifier, x01: Tensor, input_space: str) -> Tensor:
    """What the gradient is multiplied by: ``x`` or ``x − mean`` (see the module docstring)."""
    if input_space == "pixel":
        return x01
    mean = classifier.mean.to(device=x01.device, dtype=x01.dtype)
    return x01 - mean


@explainers.register("sq_smoothgrad")
class SquaredSmoothGradExplainer(SmoothGradExplainer):
    """SQ-SG: ``(1/n)·Σ_i (∂f_y/∂x (x + ξ_i))²`` (non-negative, not multiplied by the input)."""

    # Set explicitly: the registry names a class only when it has no inherited ``name``.
    name = "sq_smoothgrad"
    title = "SmoothGrad²"
    summary = "SQ-SG: the mean of squared gradients over noisy copies of the image"

    def __init__(
        self,
        classifier: Classifier,
        nt_samples: int = 16,
        stdevs: float = 0.15,
        seed: int = 0,
        nt_samples_batch_size: int | None = None,
    ):
        super().__init__(
            classifier,
            nt_samples=nt_samples,
            stdevs=stdevs,
            abs=False,  # irrelevant once squared
            seed=seed,
            nt_type="smoothgrad_sq",
            nt_samples_batch_size=nt_samples_batch_size,
        )
        self.params = {
            "nt_samples": self.nt_samples,
            "stdevs": self.stdevs,
            "seed": self.seed,
            "nt_samples_batch_size": nt_samples_batch_size,
        }


@explainers.register("input_x_gradient")
class InputXGradientExplainer(SaliencyExplainer):
    """VG′: the signed gradient of the target logit times the input (Captum ``InputXGradient``)."""

    name = "input_x_gradient"
    title = "Input × Gradient"
    summary = "VG′: the signed gradient of the target logit times the input"
    multiplies_by_inputs = True
    fuses_prediction = True  # explain_predicted: one forward + backward

    def __init__(self, classifier: Classifier, input_space: InputSpace = "pixel"):
        _check_input_space("input_x_gradient", input_space)
        super().__init__(classifier, abs=False)
        self.input_space = input_space
        self.params = {"input_space": input_space}

    def explain(self, x01: Tensor, target: Tensor) -> Tensor:
        gradients = super().explain(x01, target)
        return gradients * input_factor(self.classifier, x01.to(gradients), self.input_space)

    def explain_predicted(self, x01: Tensor) -> tuple[Tensor, Tensor]:
        """One forward + backward for the predicted class, as ``explain`` computes it."""
        gradients, logits = super().explain_predicted(x01)  # signed: abs=False
        return gradients * input_factor(self.classifier, x01.to(gradients), self.input_space), logits


@explainers.register("input_x_smoothgrad")
class InputXSmoothGradExplainer(SmoothGradExplainer):
    """SG′: signed SmoothGrad (mean gradient over noisy copies) times the clean input."""

    name = "input_x_smoothgrad"
    title = "Input × SmoothGrad"
    summary = "SG′: signed SmoothGrad times the clean input"
    multiplies_by_inputs = True

    def __init__(
        self,
        classifier: Classifier,
        nt_samples: int = 16,
        stdevs: float = 0.15,
        seed: int = 0,
        nt_samples_batch_size: int | None = None,
        input_space: InputSpace = "pixel",
    ):
        _check_input_space("input_x_smoothgrad", input_space)
        super().__init__(
            classifier,
            nt_samples=nt_samples,
            stdevs=stdevs,
            abs=False,
            seed=seed,
            nt_type="smoothgrad",
            nt_samples_batch_size=nt_samples_batch_size,
        )
        self.input_space = input_space
        self.params = {
            "nt_samples": self.nt_samples,
            "stdevs": self.stdevs,
            "seed": self.seed,
            "nt_samples_batch_size": nt_samples_batch_size,
            "input_space": input_space,
        }

    def explain(self, x01: Tensor, target: Tensor, noise_ids: Sequence[str] | None = None) -> Tensor:
        gradients = super().explain(x01, target, noise_ids)
        return gradients * input_factor(self.classifier, x01.to(gradients), self.input_space)


__all__ = [
    "InputXGradientExplainer",
    "InputXSmoothGradExplainer",
    "SquaredSmoothGradExplainer",
    "input_factor",
]
