"""Shared plumbing for the Captum-backed explainers: input preparation, output hygiene, gaps."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

#: Denominator floor of the relative completeness gap (logit units).
GAP_EPS = 1e-6


def model_device_dtype(classifier: nn.Module) -> tuple[torch.device, torch.dtype]:
    """Where the classifier's weights live, so inputs can follow them."""
    for tensor in (*classifier.parameters(), *classifier.buffers()):
        if tensor.is_floating_point():
            return tensor.device, tensor.dtype
    return torch.device("cpu"), torch.float32


def prepare(classifier: nn.Module, x01: Tensor, target: Tensor | int) -> tuple[Tensor, Tensor]:
    """Detached inputs on the model's device and one ``long`` target per image.

    Attribution needs ``eval()``: DeepLIFT runs inputs and baselines through one forward, so
    train-mode BatchNorm would mix them, and dropout would make every method random.
    """
    if x01.ndim != 4:
        raise ValueError(f"explainers take N×C×H×W images, got shape {tuple(x01.shape)}")
    if classifier.training:
        classifier.eval()
    device, dtype = model_device_dtype(classifier)
    # detach(): Captum flips requires_grad on the tensor it is given; never on the caller's.
    x = x01.detach().to(device=device, dtype=dtype)
    return x, as_targets(target, x.shape[0], device)


def as_targets(target: Tensor | int, n: int, device: torch.device) -> Tensor:
    """``target`` as a length-``n`` ``long`` tensor (a scalar is broadcast)."""
    t = torch.as_tensor(target, dtype=torch.long, device=device).reshape(-1)
    if t.numel() == 1 and n != 1:
        t = t.expand(n)
    if t.numel() != n:
        raise ValueError(f"expected one target per image ({n}), got {t.numel()}")
    return t.contiguous()


def finish(attributions: Tensor, like: Tensor) -> Tensor:
    """Detached float32 attributions on the caller's device, with the caller's shape."""
    return attributions.detach().to(device=like.device, dtype=torch.float32).reshape(like.shape)


@contextmanager
def quiet_captum() -> Iterator[None]:
    """Silence Captum's per-call notices, which say nothing about our (controlled) usage."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Input Tensor .* did not already require")
        warnings.filterwarnings("ignore", message="Setting forward, backward hooks")
        yield


def target_logits(classifier: nn.Module, x: Tensor, target: Tensor) -> Tensor:
    """``f(x)[i, target_i]`` under ``no_grad``."""
    with torch.no_grad():
        logits = classifier(x)
    return logits.gather(1, target.view(-1, 1)).squeeze(1)


def relative_gap(attributions: Tensor, delta: Tensor) -> Tensor:
    """``|Σa − Δ| / max(|Δ|, eps)`` per image, as float32 on ``attributions``' device."""
    total = attributions.detach().double().flatten(1).sum(1)
    delta = delta.detach().double().to(total.device)
    gap = (total - delta).abs() / delta.abs().clamp_min(GAP_EPS)
    return gap.float()
