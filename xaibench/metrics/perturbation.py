"""Shared machinery of the pixel-perturbation faithfulness metrics (specs/metrics.md).

* ``pixel_scores`` reduces attributions to one score per pixel (``abs`` or ``signed``);
* ``rank_pixels`` turns scores into ranks with a deterministic tie rule;
* ``masked_outputs`` builds the perturbed images lazily from rank masks and pushes them
  through the model in chunks, so no metric ever holds more than ``chunk_size`` perturbed
  images at once and no metric makes one forward call per step per image;
* ``blur`` is the RISE insertion canvas (Petsiuk et al. 2018).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache
from typing import Literal, get_args

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import ConfigError

Reduction = Literal["abs", "signed", "sum"]
REDUCTIONS: tuple[str, ...] = get_args(Reduction)

Forward = Callable[[Tensor], Tensor]


def check_reduction(metric: str, reduction: str) -> str:
    if reduction not in REDUCTIONS:
        raise ConfigError(
            f"{metric}: reduction must be one of {', '.join(map(repr, REDUCTIONS))}, got {reduction!r}"
        )
    return reduction


def check_positive_int(metric: str, name: str, value: object) -> int:
    # bool is an int subclass; ``steps = true`` in a suite file is a mistake, not 1.
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{metric}: {name} must be a positive integer, got {value!r}")
    return int(value)


def check_inputs(
    metric: str, x01: Tensor, attributions: Tensor, target: Tensor, chunk_size: int
) -> None:
    if x01.ndim != 4:
        raise ValueError(f"{metric}: images must be N×C×H×W, got shape {tuple(x01.shape)}")
    if attributions.shape != x01.shape:
        raise ValueError(
            f"{metric}: attributions {tuple(attributions.shape)} must have the images' shape "
            f"{tuple(x01.shape)}"
        )
    if target.ndim != 1 or target.shape[0] != x01.shape[0]:
        raise ValueError(f"{metric}: target must hold one class per image, got shape {tuple(target.shape)}")
    if isinstance(chunk_size, bool) or int(chunk_size) < 1:
        raise ValueError(f"{metric}: chunk_size must be a positive integer, got {chunk_size!r}")


def finite_rows(attributions: Tensor) -> Tensor:
    """Boolean per image: all attributions finite. Other rows are scored NaN (shown, not hidden)."""
    return torch.isfinite(attributions.flatten(1)).all(dim=1)


def pixel_scores(
    attributions: Tensor, x01: Tensor, reduction: str, multiplies_by_inputs: bool
) -> Tensor:
    """One float64 score per pixel, ``N×(H·W)``.

    ``abs``: ``Σ_c |a_c|``. ``signed``: ``Σ_c a_c·x_c`` for raw gradient maps, ``Σ_c a_c``
    when the explainer already multiplied by the input (IG, DeepLIFT) — FPA paper, sec. 3.
    ``sum``: ``Σ_c a_c`` always — the FPA paper's "_sum" subscript taken literally, for maps
    that are meant to be ranked as they are (SQ-SG_sum; VG′_sum and SG′_sum, whose explainers
    already multiply by the input, where it equals ``signed``).
    Float64 so that summing channels cannot create ties the float32 map did not have.
    Non-finite attributions become 0 here; ``finite_rows`` marks those images.
    """
    a = torch.nan_to_num(attributions.detach().to(torch.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if reduction == "abs":
        reduced = a.abs().sum(dim=1)
    elif reduction == "signed":
        reduced = a.sum(dim=1) if multiplies_by_inputs else (a * x01.detach().to(torch.float64)).sum(dim=1)
    elif reduction == "sum":
        reduced = a.sum(dim=1)
    else:  # validated in the metrics' __init__; kept for direct callers
        raise ValueError(f"unknown reduction {reduction!r}; expected one of {REDUCTIONS}")
    return reduced.flatten(1)


def rank_pixels(scores: Tensor) -> Tensor:
    """``rank[i, p]``: position of pixel ``p`` in image ``i``'s most-important-first order.

    Stable descending sort, so ties go to the lower flat pixel index — deterministic, and the
    order ``rank_transform`` gives Quantus in the oracle tests.
    """
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices
    positions = torch.arange(scores.shape[1], device=scores.device).expand_as(order)
    return torch.empty_like(order).scatter_(1, order, positions)


def masked_outputs(
    forward: Forward,
    start: Tensor,
    finish: Tensor,
    ranks: Tensor,
    image: Tensor,
    rank_row: Tensor,
    count: Tensor,
    target: Tensor,
    *,
    chunk_size: int,
    softmax: bool,
) -> Tensor:
    """Target-class output for every job, as float64.

    Job ``j`` is image ``image[j]`` with the pixels whose rank (row ``rank_row[j]`` of
    ``ranks``) is below ``count[j]`` taken from ``finish`` and the others from ``start``,
    all channels alike. ``start``/``finish`` are ``N×C×H×W`` (expanded views are fine). The
    images are built per chunk with ``torch.where``; ``softmax`` selects probabilities over
    logits.
    """
    n, c, h, w = start.shape
    device = start.device
    jobs = image.shape[0]
    out = torch.empty(jobs, dtype=torch.float64)
    with torch.no_grad():
        for begin in range(0, jobs, chunk_size):
            rows = slice(begin, min(jobs, begin + chunk_size))
            img = image[rows].to(device)
            mask = ranks[rank_row[rows].to(ranks.device)] < count[rows].to(ranks.device).unsqueeze(1)
            mask = mask.to(device).view(-1, 1, h, w)
            batch = torch.where(mask, finish[img], start[img])
            logits = forward(batch)
            if softmax:
                logits = torch.softmax(logits.float(), dim=1)
            picked = logits.gather(1, target[image[rows]].to(logits.device).view(-1, 1).long())
            out[rows] = picked.squeeze(1).detach().to("cpu", torch.float64)
    return out


@lru_cache(maxsize=4)
def rise_kernel(size: int = 11, sigma: float = 5.0) -> np.ndarray:
    """RISE's ``gkern``: ``scipy.ndimage.gaussian_filter`` of a centred impulse.

    Not a truncated normalised Gaussian: the filter's reflect boundary folds the tails back
    into the window, so the kernel sums to 1. Reproduced exactly so the blurred insertion
    canvas is the one the RISE and AttEXplore evaluation code use.
    """
    from scipy.ndimage import gaussian_filter

    impulse = np.zeros((size, size))
    impulse[size // 2, size // 2] = 1.0
    kernel = gaussian_filter(impulse, sigma)
    kernel.setflags(write=False)
    return kernel


def blur(x01: Tensor, size: int = 11, sigma: float = 5.0) -> Tensor:
    """Per-channel RISE blur (kernel ``size``, σ ``sigma``), zero padding as RISE's conv2d."""
    channels = x01.shape[1]
    kernel = torch.tensor(rise_kernel(size, sigma), dtype=x01.dtype, device=x01.device)
    weight = kernel.expand(channels, 1, size, size).contiguous()
    with torch.no_grad():
        return F.conv2d(x01, weight, padding=size // 2, groups=channels)


def trapezoid_auc(curves: Tensor, curve_x: Tensor) -> Tensor:
    """Per-row trapezoid area of ``curves`` (N×S) over ``curve_x`` (S, from 0 to 1)."""
    if curves.shape[1] < 2:
        return torch.full((curves.shape[0],), math.nan, dtype=torch.float64)
    return torch.trapezoid(curves, curve_x.to(curves.dtype), dim=1)
