"""Integrated Gradients from a constant baseline image, on the logits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
from captum.attr import IntegratedGradients
from captum.attr._utils.approximation_methods import SUPPORTED_METHODS
from torch import Tensor

from ..errors import ConfigError
from ..registry import explainers
from ..types import Classifier, Explainer
from ._common import check_choice, finish, prepare, quiet_captum, relative_gap, target_logits

#: Baseline name → constant pixel value (pixel space is [0, 1]).
BASELINES: dict[str, float] = {"zeros": 0.0, "uniform_gray": 0.5}
Baseline = Literal["zeros", "uniform_gray"]
#: Captum's integration rules (``riemann_left`` … ``gausslegendre``).
Method = Literal[tuple(SUPPORTED_METHODS)]  # type: ignore[valid-type]

#: Integration steps per Captum chunk when ``internal_batch_size`` is not given. Fixing the
#: steps per chunk (not the rows) keeps the summation order independent of the batch size.
DEFAULT_STEPS_PER_CHUNK = 8


@explainers.register("integrated_gradients")
class IntegratedGradientsExplainer(Explainer):
    """Captum ``IntegratedGradients`` (``multiply_by_inputs=True``) on the target logit.

    ``baseline`` is ``"zeros"`` (a black image, Captum's default) or ``"uniform_gray"`` (0.5).
    ``internal_batch_size`` bounds the rows per forward/backward (``n_steps × N`` rows in all);
    Captum requires it to be at least the batch size, so ``max(N, given)`` is used, and by
    default ``N × min(n_steps, 8)``.
    """

    title = "Integrated Gradients"
    summary = "gradients integrated along the straight path from a constant baseline (Sundararajan et al. 2017)"
    uses_baseline = True
    multiplies_by_inputs = True
    has_completeness = True
    convergence_param = "n_steps"  # the runner doubles it to meet max_completeness_gap
    reuses_logits = True  # completeness_gap reads f(x) from the logits it is given

    def __init__(
        self,
        classifier: Classifier,
        n_steps: int = 32,
        method: Method = "gausslegendre",
        baseline: Baseline = "zeros",
        internal_batch_size: int | None = None,
    ):
        check_choice("integrated_gradients", "method", method, SUPPORTED_METHODS)
        check_choice("integrated_gradients", "baseline", baseline, tuple(BASELINES))
        # Captum's Riemann rules assert n_steps > 1; say so before any compute.
        min_steps = 1 if method == "gausslegendre" else 2
        if int(n_steps) < min_steps:
            raise ConfigError(f"integrated_gradients: n_steps must be ≥ {min_steps} for {method!r}")
        if internal_batch_size is not None and int(internal_batch_size) < 1:
            raise ConfigError("integrated_gradients: internal_batch_size must be ≥ 1 or None")
        super().__init__(
            classifier,
            n_steps=int(n_steps),
            method=method,
            baseline=baseline,
            internal_batch_size=internal_batch_size,
        )
        self.n_steps = int(n_steps)
        self.method = method
        self.baseline = baseline
        self.baseline_value = BASELINES[baseline]
        self.internal_batch_size = None if internal_batch_size is None else int(internal_batch_size)
        self._ig = IntegratedGradients(classifier, multiply_by_inputs=True)
        self._baseline_logits: dict[tuple, Tensor] = {}

    @classmethod
    def memory_per_image(cls, params: dict[str, Any], image_shape: Sequence[int]) -> tuple[int, str]:
        """Captum lists all ``n_steps`` step sizes and α as Python floats (~64 bytes per step);
        Gauss–Legendre finds its nodes as the eigenvalues of an ``n_steps × n_steps`` matrix."""
        steps, method = int(params["n_steps"]), params.get("method", "gausslegendre")
        need = 64 * steps + (16 * steps * steps if method == "gausslegendre" else 0)
        return need, f"n_steps = {steps} with method {method!r}"

    @classmethod
    def passes_per_image(cls, params: dict[str, Any]) -> tuple[int, int]:
        """One forward and one backward per step (the completeness gap adds two forwards)."""
        return int(params["n_steps"]), int(params["n_steps"])

    def rows_per_call(self, batch: int) -> int:
        """The ``internal_batch_size`` handed to Captum for a batch of ``batch`` images."""
        if self.internal_batch_size is None:
            return batch * min(self.n_steps, DEFAULT_STEPS_PER_CHUNK)
        return max(batch, self.internal_batch_size)

    def explain(self, x01: Tensor, target: Tensor) -> Tensor:
        x, t = prepare(self.classifier, x01, target)
        with quiet_captum():
            attributions = self._ig.attribute(
                x,
                baselines=self.baseline_value,
                target=t,
                n_steps=self.n_steps,
                method=self.method,
                internal_batch_size=self.rows_per_call(x.shape[0]),
            )
        return finish(attributions, x01)

    def baseline_image(self, like: Tensor) -> Tensor:
        """The baseline as one image shaped like ``like[0]``."""
        return torch.full_like(like[:1], self.baseline_value)

    def _baseline_target_logits(self, x: Tensor, t: Tensor) -> Tensor:
        # The baseline is the same for every image: one forward per image shape (and
        # autocast setting, for the runner's bf16 precision), cached.
        device_type = x.device.type
        autocast = torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else None
        key = (tuple(x.shape[1:]), x.device, x.dtype, autocast)
        if key not in self._baseline_logits:
            with torch.no_grad():
                self._baseline_logits[key] = self.classifier(self.baseline_image(x))[0]
        return self._baseline_logits[key][t]

    def completeness_gap(
        self, x01: Tensor, target: Tensor, attributions: Tensor, logits: Tensor | None = None
    ) -> Tensor:
        """``|Σa − (f(x)_y − f(b)_y)| / max(|f(x)_y − f(b)_y|, eps)`` per image.

        ``logits``: the classifier's logits of ``x01`` when the caller already has them (the
        runner predicts every image it explains); ``f(x)`` is then read from them instead of
        forwarding ``x01`` again.
        """
        x, t = prepare(self.classifier, x01, target)
        if logits is None:
            fx = target_logits(self.classifier, x, t)
        else:
            fx = logits.detach().to(x.device).gather(1, t.view(-1, 1)).squeeze(1)
        delta = fx - self._baseline_target_logits(x, t)
        return relative_gap(attributions, delta).to(x01.device)
