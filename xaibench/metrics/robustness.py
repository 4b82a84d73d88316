"""Per-row robustness metrics of the eXIAA fragility protocol (specs/exiaa.md).

Every metric takes row-aligned tensors (names from ``xaibench.types.ROW_TENSORS``) and
returns one float64 value per row, computed for all rows at once (in chunks of rows only to
bound memory; never a Python loop over rows). Extra keyword tensors are ignored, so the
runner may pass every row tensor it has.

Direction: ``higher_is_better`` is from the *explainer's* (defender's) point of view — a
more robust explainer scores better. So attack-effect metrics such as
``explanation_change_pct`` have ``higher_is_better = False``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import Tensor

from ..errors import ConfigError
from ..registry import metrics
from ..types import Metric
from .ssim import ssim

# Elements of a float64 working tensor per chunk of rows (~32 MB).
_CHUNK_ELEMENTS = 4_000_000


def _row_chunks(rows: int, per_row: int) -> Iterator[slice]:
    """Row slices whose float64 working tensors stay near ``_CHUNK_ELEMENTS`` elements."""
    step = max(1, _CHUNK_ELEMENTS // max(1, per_row))
    for start in range(0, rows, step):
        yield slice(start, min(rows, start + step))


def _check_pair(name: str, a: Tensor, b: Tensor) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{name}: row tensors differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
    if a.ndim < 2:
        raise ValueError(f"{name}: expected one row per first dimension, got shape {tuple(a.shape)}")


def _ceil_fraction(fraction: float, count: Tensor | int) -> Tensor:
    """``ceil(fraction · count)`` without float noise turning 0.1 × 30 into 4."""
    product = torch.as_tensor(count, dtype=torch.float64) * fraction
    return torch.ceil(torch.round(product, decimals=9)).to(torch.long)


class _RowMetric(Metric):
    """Base for the built-in row metrics; an explicit ``__init__`` so unknown params fail."""

    category = "robustness"

    def __init__(self) -> None:
        pass


@metrics.register("explanation_change_pct")
class ExplanationChangePct(_RowMetric):
    """``100 · Σ|E(x, y*) − E(x̂, ŷ)| / Σ|E(x, y*)|`` over all C×H×W entries (paper eq. 2).

    The attack's effect on the explanation, in percent of the clean explanation's L1 mass;
    0 means identical explanations. ``higher_is_better = False``: a more robust explainer
    has a lower value. An all-zero clean explanation gives NaN (the ratio is undefined; it
    is reported, not hidden).
    """

    name = "explanation_change_pct"
    default_position = 0  # in the metrics of a suite that names none
    title = "expl. change %"
    summary = "L1 change of the explanation, in percent of the clean explanation's L1 mass"
    higher_is_better = False
    unit = "%"
    value_range = (0.0, None)
    digits = 1
    needs = ("expl_original", "expl_corrupted")

    def __call__(self, *, expl_original: Tensor, expl_corrupted: Tensor, **_: Tensor) -> Tensor:
        _check_pair(self.name, expl_original, expl_corrupted)
        a = expl_original.flatten(1)
        b = expl_corrupted.flatten(1)
        out = torch.empty(a.shape[0], dtype=torch.float64, device=a.device)
        for rows in _row_chunks(a.shape[0], a.shape[1]):
            clean = a[rows].to(torch.float64)
            change = (clean - b[rows].to(torch.float64)).abs().sum(dim=1)
            mass = clean.abs().sum(dim=1)
            out[rows] = torch.where(mass > 0, 100.0 * change / mass, math.nan)
        return out


@metrics.register("ssim")
class SSIMMetric(_RowMetric):
    """SSIM(x, x̂) (Wang et al. 2004; Gaussian window 11, σ 1.5, data range 1), see ``ssim``.

    1 for identical images; ``higher_is_better = True`` (the corruption is less visible).
    """

    name = "ssim"
    default_position = 1  # in the metrics of a suite that names none
    title = "SSIM"
    summary = "structural similarity of the corrupted image to the original (1 = identical)"
    higher_is_better = True
    value_range = (-1.0, 1.0)
    digits = 3
    needs = ("original", "corrupted")

    def __call__(self, *, original: Tensor, corrupted: Tensor, **_: Tensor) -> Tensor:
        return ssim(original, corrupted)


def _clean_class(probs_original: Tensor) -> Tensor:
    """``y* = argmax f(x)`` (first index on ties, as ``torch.argmax``)."""
    return probs_original.argmax(dim=1)


@metrics.register("confidence_drop_pct")
class ConfidenceDropPct(_RowMetric):
    """``100 · |f_{y*}(x) − f_{y*}(x̂)|``, ``y* = argmax f(x)``: percentage points (paper eq. 3).

    An absolute change (a rise counts too). ``higher_is_better = False``: the attack moved
    the prediction less.
    """

    name = "confidence_drop_pct"
    default_position = 2  # in the metrics of a suite that names none
    title = "conf. drop pp"
    summary = "change of the predicted class's probability, in percentage points"
    higher_is_better = False
    unit = "pp"
    value_range = (0.0, 100.0)
    digits = 2
    needs = ("probs_original", "probs_corrupted")

    def __call__(self, *, probs_original: Tensor, probs_corrupted: Tensor, **_: Tensor) -> Tensor:
        _check_pair(self.name, probs_original, probs_corrupted)
        target = _clean_class(probs_original).unsqueeze(1)
        before = probs_original.gather(1, target).squeeze(1).to(torch.float64)
        after = probs_corrupted.gather(1, target).squeeze(1).to(torch.float64)
        return 100.0 * (before - after).abs()


@metrics.register("prediction_flipped")
class PredictionFlipped(_RowMetric):
    """1.0 where ``argmax f(x̂) ≠ y*``, else 0.0 (so its mean is the flip rate).

    ``higher_is_better = False``: an explanation attack is meant to keep the prediction.
    """

    name = "prediction_flipped"
    default_position = 3  # in the metrics of a suite that names none
    title = "flipped"
    summary = "1 where the attack changed the predicted class (its mean is the flip rate)"
    higher_is_better = False
    value_range = (0.0, 1.0)
    needs = ("probs_original", "probs_corrupted")

    def __call__(self, *, probs_original: Tensor, probs_corrupted: Tensor, **_: Tensor) -> Tensor:
        _check_pair(self.name, probs_original, probs_corrupted)
        flipped = probs_corrupted.argmax(dim=1) != _clean_class(probs_original)
        return flipped.to(torch.float64)


def _consecutive_unique(rows: Tensor) -> tuple[Tensor, Tensor]:
    """``(distinct, index)`` with ``distinct[index] == rows``, merging rows equal to the row
    before them. The runner passes the clean explanation once per attacked copy, in runs of
    the same original, so its ranks are computed once per run instead of once per row."""
    if rows.shape[0] < 2:
        return rows, torch.arange(rows.shape[0], device=rows.device)
    new = torch.ones(rows.shape[0], dtype=torch.bool, device=rows.device)
    new[1:] = (rows[1:] != rows[:-1]).any(dim=1)
    return rows[new], torch.cumsum(new, dim=0) - 1


def _topk_mask(values: Tensor, k: int) -> Tensor:
    """Boolean ``rows×D`` mask of the ``k`` largest ``|values|`` per row, ties at the k-th
    value taken in flat-index order (what a stable descending sort would keep), without a
    full sort: ``torch.topk`` finds the k-th value, a cumulative sum picks among its ties."""
    magnitude = values.abs()
    kth = torch.topk(magnitude, k, dim=1, sorted=False).values.min(dim=1, keepdim=True).values
    above = magnitude > kth
    tied = magnitude == kth
    room = k - above.sum(dim=1, keepdim=True)
    return above | (tied & (torch.cumsum(tied, dim=1) <= room))


@metrics.register("topk_intersection")
class TopKIntersection(_RowMetric):
    """Fraction of the top-k entries of ``E(x)`` that are also top-k in ``E(x̂)``.

    Ghorbani et al. 2019. ``k = ceil(fraction · C·H·W)`` entries, ranked by absolute
    attribution; ties are broken by the lower flat index (stable sort). 1 = the same most
    important features; ``higher_is_better = True``.
    """

    name = "topk_intersection"
    default_position = 4  # in the metrics of a suite that names none
    title = "top-k intersection"
    summary = "fraction of the clean explanation's top-k entries still in the top k after the attack"
    higher_is_better = True
    value_range = (0.0, 1.0)
    needs = ("expl_original", "expl_corrupted")

    def __init__(self, fraction: float = 0.01) -> None:
        if isinstance(fraction, bool) or not isinstance(fraction, int | float):
            raise ConfigError(f"topk_intersection: fraction must be a number in (0, 1], got {fraction!r}")
        if not (0.0 < float(fraction) <= 1.0):
            raise ConfigError(f"topk_intersection: fraction must be in (0, 1], got {fraction!r}")
        self.fraction = float(fraction)

    def __call__(self, *, expl_original: Tensor, expl_corrupted: Tensor, **_: Tensor) -> Tensor:
        _check_pair(self.name, expl_original, expl_corrupted)
        a = expl_original.flatten(1)
        b = expl_corrupted.flatten(1)
        entries = a.shape[1]
        k = max(1, int(_ceil_fraction(self.fraction, entries)))
        out = torch.empty(a.shape[0], dtype=torch.float64, device=a.device)
        for rows in _row_chunks(a.shape[0], entries):
            distinct, index = _consecutive_unique(a[rows])
            shared = (_topk_mask(distinct, k)[index] & _topk_mask(b[rows], k)).sum(dim=1)
            out[rows] = shared.to(torch.float64) / k
        return out


def average_ranks(values: Tensor) -> Tensor:
    """1-based ranks along the last dimension with ties given their average rank.

    Same as ``scipy.stats.rankdata(method="average")`` row by row, but vectorised: one
    sort, tie groups from neighbour comparisons and a cumulative sum, and a scatter mean of
    positions per group. Returns float64.
    """
    flat = values.reshape(-1, values.shape[-1]).to(torch.float64)
    rows, width = flat.shape
    sorted_values, order = torch.sort(flat, dim=1, stable=True)
    starts = torch.ones_like(sorted_values, dtype=torch.bool)
    starts[:, 1:] = sorted_values[:, 1:] != sorted_values[:, :-1]
    group = torch.cumsum(starts, dim=1) - 1
    positions = torch.arange(1, width + 1, dtype=torch.float64, device=flat.device).expand(rows, -1)
    group_sum = torch.zeros_like(sorted_values).scatter_add_(1, group, positions)
    group_size = torch.zeros_like(sorted_values).scatter_add_(1, group, torch.ones_like(positions))
    ranks_sorted = (group_sum / group_size.clamp(min=1)).gather(1, group)
    ranks = torch.empty_like(ranks_sorted).scatter_(1, order, ranks_sorted)
    return ranks.view(values.shape)


@metrics.register("rank_correlation")
class RankCorrelation(_RowMetric):
    """Spearman correlation between the flattened ``E(x)`` and ``E(x̂)``.

    Pearson correlation of average ranks (ties share their mean rank), equal to
    ``scipy.stats.spearmanr``. A constant explanation has no ranking: NaN.
    ``higher_is_better = True``.
    """

    name = "rank_correlation"
    default_position = 5  # in the metrics of a suite that names none
    title = "rank correlation"
    summary = "Spearman correlation between the clean and the attacked explanation"
    higher_is_better = True
    value_range = (-1.0, 1.0)
    needs = ("expl_original", "expl_corrupted")

    def __call__(self, *, expl_original: Tensor, expl_corrupted: Tensor, **_: Tensor) -> Tensor:
        _check_pair(self.name, expl_original, expl_corrupted)
        a = expl_original.flatten(1)
        b = expl_corrupted.flatten(1)
        out = torch.empty(a.shape[0], dtype=torch.float64, device=a.device)
        for rows in _row_chunks(a.shape[0], 4 * a.shape[1]):
            distinct, index = _consecutive_unique(a[rows])
            ra = average_ranks(distinct)[index]
            rb = average_ranks(b[rows])
            ra = ra - ra.mean(dim=1, keepdim=True)
            rb = rb - rb.mean(dim=1, keepdim=True)
            denominator = torch.sqrt((ra * ra).sum(dim=1) * (rb * rb).sum(dim=1))
            correlation = (ra * rb).sum(dim=1) / denominator
            out[rows] = torch.where(denominator > 0, correlation.clamp(-1.0, 1.0), math.nan)
        return out
