"""Tiny models, inputs and oracle adapters shared by the faithfulness-metric tests."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor, nn


class TinyNet(nn.Module):
    """A small random CNN (fixed seed): strided conv, ReLU, pooled linear head; 5 logits."""

    def __init__(self, channels: int = 3, classes: int = 5, seed: int = 0):
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.conv1 = nn.Conv2d(channels, 8, 3, stride=2, padding=1)
            self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
            self.fc = nn.Linear(8 * 4 * 4, classes)
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.eval()

    def forward(self, x: Tensor) -> Tensor:
        x = torch.relu(self.conv1(x - 0.5))
        x = torch.relu(self.conv2(x))
        # × 3: a softmax far from uniform; + 5: positive logits, so MIF/LIF normalisation by
        # the clean logit is meaningful (a shift does not change the softmax).
        return self.fc(self.pool(x).flatten(1)) * 3.0 + 5.0


class CountingForward:
    """``forward(x01) -> logits`` that records each call's batch size."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.batches: list[int] = []

    def __call__(self, x: Tensor) -> Tensor:
        self.batches.append(int(x.shape[0]))
        with torch.no_grad():
            return self.model(x)

    @property
    def images(self) -> int:
        return sum(self.batches)


class ForwardModule(nn.Module):
    """An ``nn.Module`` around a plain forward function, in eval mode (Quantus insists)."""

    def __init__(self, forward: Callable[[Tensor], Tensor]):
        super().__init__()
        self.fn = forward
        self.eval()

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(x)


def inputs(n: int = 3, channels: int = 3, size: int = 16, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Images in [0, 1] and tie-free random attributions of the same shape."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(n, channels, size, size, generator=generator)
    a = torch.randn(n, channels, size, size, generator=generator)
    return x, a


def gradients(model: nn.Module, x: Tensor, target: Tensor) -> Tensor:
    """Plain input gradient of the target logit (a real, model-dependent attribution)."""
    x = x.clone().requires_grad_(True)
    logits = model(x)
    (grad,) = torch.autograd.grad(logits.gather(1, target.view(-1, 1)).sum(), x)
    return grad.detach()


def reduce_np(a: np.ndarray, x: np.ndarray, reduction: str, multiplies_by_inputs: bool = False) -> np.ndarray:
    """The spec's channel reductions in numpy, float64: ``(N, H·W)``."""
    a = a.astype(np.float64)
    if reduction == "abs":
        reduced = np.abs(a).sum(axis=1)
    elif reduction == "sum" or multiplies_by_inputs:
        reduced = a.sum(axis=1)
    else:
        reduced = (a * x.astype(np.float64)).sum(axis=1)
    return reduced.reshape(a.shape[0], -1)


def rank_transform(scores: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Unique float64 per-pixel values ``H·W − rank`` (stable descending, ties to the lower index).

    Quantus sorts with an unstable ``argsort``; giving it these values makes its order the
    canonical one, and keeps the channel copies of a pixel adjacent (oracles.md §2.2).
    """
    n, pixels = scores.shape
    order = np.argsort(-scores, axis=1, kind="stable")
    ranks = np.empty_like(order)
    ranks[np.arange(n)[:, None], order] = np.arange(pixels)
    return (pixels - ranks).astype(np.float64).reshape(n, 1, *shape)


def rise_auc(curves: np.ndarray) -> np.ndarray:
    """RISE's ``auc``: ``(Σ − first/2 − last/2) / (n − 1)`` per row."""
    return (curves.sum(axis=1) - curves[:, 0] / 2 - curves[:, -1] / 2) / (curves.shape[1] - 1)


def patch_quantus(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Quantus 0.6 on numpy 2.4: skip the whole-pixel step assert, restore ``np.trapz``."""
    import quantus.helpers.asserts as asserts

    monkeypatch.setattr(asserts, "assert_features_in_step", lambda **_: None)
    if not hasattr(np, "trapz"):
        monkeypatch.setattr(np, "trapz", np.trapezoid, raising=False)


# -- rounding across kernels (docs/testing.md) ---------------------------------------------

#: Unit roundoffs (half an ulp of 1).
U32, U64 = 2.0**-24, 2.0**-53
#: Another kernel (batch composition, SIMD width, BLAS path) rounds differently: its error is
#: another draw of the measured scale, not the same draw. Allowed: this many times it.
PATTERN = 4.0


def float32_spread(pairs: list[tuple[Tensor, Tensor]]) -> float:
    """Largest difference two float32 evaluations of one quantity may show (any kernels).

    Precision switching: each pair is one evaluation in float32 (model and images) and the
    *same* evaluation (same chunking, same batch) in float64, the weights and images cast up.
    Their difference is the float32 rounding error of that evaluation (float64's own is ~1e-9
    of it; where the code keeps a step in float32, e.g. the softmax of deletion/insertion,
    that step rounds alike in both). Pairs share the code path, so a chunk- or batch-dependent
    bug does not enter this scale; it shows between the float32 evaluations. One scale per
    quantity, ``err = max |float32 − float64|`` over every pair and entry (an entry whose
    rounding happened to cancel does not set it), at least the rounding of the result,
    ``u32·max|value|``; another kernel stays within ``PATTERN·err``; two evaluations: twice that.
    """
    err = max(float((low.double() - high.double()).abs().max()) for low, high in pairs)
    scale = max(float(high.double().abs().max()) for _, high in pairs)
    return 2 * PATTERN * max(err, U32 * scale)
