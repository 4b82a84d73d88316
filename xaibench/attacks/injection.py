"""The α × top-k injection grid shared by eXIAA and its Gaussian-noise baseline.

For a batch of originals ``x`` (``B×C×H×W``), ``A`` sources per original (``B×A×C×H×W``)
and a ranking of the entries of each source's attribution (``B×A×D``, ``D = C·H·W``), every
corrupted image of the grid is

    x̂ = x, except on I_k (the first k entries of the ranking), where
    x̂ = clip((1 − α)·x + α·source, 0, 1)

with ``k = ceil(t · P)`` for top-k fraction ``t`` and ``P`` positive attribution entries.
Because the entries are ranked once, the mask for every top-k is a prefix of the same order
(``rank < k``), and all (B, A, α, top-k) images come out of one broadcast ``torch.where``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Real

import torch
from torch import Tensor

from ..errors import ConfigError

#: The paper's grid (eXIAA, section 4).
PAPER_ALPHAS: tuple[float, ...] = (0.03, 0.06, 0.09, 0.12, 0.15)
PAPER_TOPKS: tuple[float, ...] = (0.01, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8)
PAPER_N_ATTACK_IMAGES = 3


# --------------------------------------------------------------------------------------
# Parameter validation (at construction, before any compute)
# --------------------------------------------------------------------------------------


def validate_fractions(
    values: Sequence[float], *, name: str, owner: str, include_one: bool
) -> tuple[float, ...]:
    """A non-empty list of distinct numbers in ``(0, 1)`` (or ``(0, 1]``) → a tuple of floats."""
    interval = "(0, 1]" if include_one else "(0, 1) (exclusive)"
    if isinstance(values, str | bytes) or not isinstance(values, Sequence):
        raise ConfigError(
            f"{owner}: {name} must be a non-empty list of numbers in {interval}, got {values!r}"
        )
    if len(values) == 0:
        raise ConfigError(f"{owner}: {name} must be a non-empty list of numbers in {interval}, got []")
    checked = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
            raise ConfigError(f"{owner}: every value of {name} must be a number in {interval}, got {value!r}")
        upper_ok = value <= 1.0 if include_one else value < 1.0
        if not (value > 0.0 and upper_ok):
            raise ConfigError(f"{owner}: every value of {name} must be in {interval}, got {value!r}")
        checked.append(float(value))
    if len(set(checked)) != len(checked):
        # Duplicates would write identical rows twice and skew every mean.
        raise ConfigError(f"{owner}: {name} has repeated values: {list(values)!r}")
    return tuple(checked)


def validate_count(value: int, *, name: str, owner: str) -> int:
    """An integer ≥ 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{owner}: {name} must be an integer ≥ 1, got {value!r}")
    return int(value)


# --------------------------------------------------------------------------------------
# Tensor machinery
# --------------------------------------------------------------------------------------


def descending_ranks(attributions: Tensor) -> Tensor:
    """Rank of each entry in its image's descending order (0 = largest), ``…×C×H×W → …×D``.

    Stable sort, so equal values are ranked by lower flat index first. NaN attributions
    rank last (they are not positive, so they are never injected). int32 ranks: the output
    is kept per (original, attack image) and compared against every k.
    """
    flat = attributions.flatten(start_dim=-3)
    flat = torch.where(torch.isnan(flat), -math.inf, flat)
    order = torch.sort(flat, dim=-1, descending=True, stable=True).indices
    entries = flat.shape[-1]
    rank_dtype = torch.int32 if entries < 2**31 else torch.int64
    positions = torch.arange(entries, dtype=rank_dtype, device=flat.device).expand_as(order)
    return torch.empty(order.shape, dtype=rank_dtype, device=flat.device).scatter_(-1, order, positions)


def positive_counts(attributions: Tensor) -> Tensor:
    """``P``: the number of entries > 0 of each ``…×C×H×W`` attribution (int64, shape ``…``)."""
    return (attributions > 0).flatten(start_dim=-3).sum(dim=-1)


def topk_entry_counts(n_positive: Tensor, topks: Sequence[float]) -> Tensor:
    """``k = ceil(t · P)`` for every top-k fraction ``t``: shape ``n_positive.shape + (T,)``.

    The product is rounded to 9 decimals before the ceiling so that float noise does not
    add an entry (``0.1 × 30`` is 3.0000000000000004 in binary floating point).
    """
    fractions = torch.tensor(topks, dtype=torch.float64, device=n_positive.device)
    product = n_positive.to(torch.float64).unsqueeze(-1) * fractions
    k = torch.ceil(torch.round(product, decimals=9)).to(torch.long)
    return torch.minimum(k, n_positive.unsqueeze(-1))


def inject_grid(
    x: Tensor, sources: Tensor, ranks: Tensor, k: Tensor, alphas: Sequence[float]
) -> Tensor:
    """All corrupted images of the grid at once.

    ``x``: ``B×C×H×W`` originals; ``sources``: ``B×A×C×H×W``; ``ranks``: ``B×A×D`` entry
    ranks (``descending_ranks``); ``k``: ``B×A×T`` entry counts; ``alphas``: the ``N``
    blending weights. Returns ``B×A×N×T×C×H×W`` in ``x``'s dtype. Memory: the output, plus
    ``B×A×N×D`` blended values and ``B×A×T×D`` boolean masks.
    """
    batch, channels, height, width = x.shape
    if sources.shape[0] != batch or sources.shape[2:] != x.shape[1:]:
        raise ValueError(f"inject_grid: sources {tuple(sources.shape)} do not match x {tuple(x.shape)}")
    n_sources = sources.shape[1]
    entries = channels * height * width
    if ranks.shape != (batch, n_sources, entries):
        raise ValueError(f"inject_grid: ranks must be {(batch, n_sources, entries)}, got {tuple(ranks.shape)}")
    if k.shape[:2] != (batch, n_sources):
        raise ValueError(f"inject_grid: k must be B×A×T, got {tuple(k.shape)}")
    alpha = torch.tensor(alphas, dtype=x.dtype, device=x.device).view(1, 1, -1, 1)
    clean = x.reshape(batch, 1, 1, entries)
    blended = ((1 - alpha) * clean + alpha * sources.reshape(batch, n_sources, 1, entries)).clamp_(0, 1)
    masks = ranks.unsqueeze(2) < k.unsqueeze(-1)  # B×A×T×D; every top-k is a prefix
    images = torch.where(
        masks.unsqueeze(2),  # B×A×1×T×D
        blended.unsqueeze(3),  # B×A×N×1×D
        clean.unsqueeze(1),  # B×1×1×1×D
    )
    return images.view(batch, n_sources, len(alphas), k.shape[2], channels, height, width)
