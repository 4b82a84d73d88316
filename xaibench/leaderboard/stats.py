"""Statistics: means with image-level bootstrap confidence intervals, and ranks.

Rows that share an original image are not independent (one image has many grid points and
attack images), so every statistic first averages the rows of each image and then treats the
images as the sample: the estimate is the mean of the per-image means, and its 95 % interval
is the percentile interval of that mean over bootstrap resamples of the images.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

DEFAULT_RESAMPLES = 2000
DEFAULT_SEED = 0
CONFIDENCE = 0.95
# Bound the memory of one bootstrap chunk (resamples × images indices).
_CHUNK_ELEMENTS = 4_000_000


@dataclass(frozen=True)
class Estimate:
    """A mean over images with its bootstrap interval and the number of images."""

    mean: float
    low: float
    high: float
    n: int

    @property
    def missing(self) -> bool:
        return self.n == 0 or not math.isfinite(self.mean)


MISSING = Estimate(math.nan, math.nan, math.nan, 0)


def _stream_seed(seed: int, key: str) -> list[int]:
    """A seed per group: adding or removing a group leaves the others' intervals unchanged."""
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return [int(seed), int.from_bytes(digest[:8], "little")]


def _percentile_interval(
    sums: np.ndarray, present: np.ndarray, rng: np.random.Generator, resamples: int, confidence: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per column of ``sums`` (images × columns, 0 where ``present`` is False): the percentile
    interval of the mean over ``resamples`` resamples of the images, shared by the columns."""
    n = sums.shape[0]
    complete = bool(present.all())
    weights = present.astype(np.float64)
    means = np.empty((resamples, sums.shape[1]), dtype=np.float64)
    step = max(1, _CHUNK_ELEMENTS // n)
    for start in range(0, resamples, step):
        size = min(resamples, start + step) - start
        # How often each image is drawn in each resample of n images with replacement.
        picks = rng.integers(0, n, size=(size, n)) + (np.arange(size) * n)[:, None]
        draws = np.bincount(picks.ravel(), minlength=size * n).reshape(size, n).astype(np.float64)
        if complete:
            means[start:start + size] = (draws @ sums) / n
        else:
            with np.errstate(invalid="ignore", divide="ignore"):
                means[start:start + size] = (draws @ sums) / (draws @ weights)
    tail = (1.0 - confidence) / 2.0
    quantile = np.quantile if complete else np.nanquantile
    low, high = quantile(means, [tail, 1.0 - tail], axis=0)
    return low, high


def bootstrap_columns(
    matrix: np.ndarray,
    *,
    seed: int = DEFAULT_SEED,
    key: str = "",
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = CONFIDENCE,
) -> list[Estimate]:
    """Per column of ``matrix`` (images × groups, NaN where an image has no value): the mean
    over images and its percentile bootstrap interval.

    The columns share the resamples of the images (one draw of bootstrap counts for all of
    them: the groups of one model × explainer are the same images), so a whole attack grid
    costs one matrix product per chunk of resamples instead of a loop over grid points.
    """
    data = np.asarray(matrix, dtype=np.float64)
    if data.ndim == 1:
        data = data[:, None]
    present = np.isfinite(data)
    filled = np.where(present, data, 0.0)
    estimates: list[Estimate | None] = [None] * data.shape[1]
    pending = []
    for column in range(data.shape[1]):
        values = data[present[:, column], column]
        if values.size == 0:
            estimates[column] = MISSING
            continue
        mean = float(values.mean())
        if np.all(values == values[0]):  # one image, or all alike: every resample has this mean
            estimates[column] = Estimate(mean, mean, mean, int(values.size))
        elif resamples <= 0:
            estimates[column] = Estimate(mean, math.nan, math.nan, int(values.size))
        else:
            estimates[column] = Estimate(mean, math.nan, math.nan, int(values.size))
            pending.append(column)
    if pending:
        present_pending = present[:, pending]
        low, high = _percentile_interval(
            filled[:, pending], present_pending, np.random.default_rng(_stream_seed(seed, key)),
            resamples, confidence,
        )
        for position, column in enumerate(pending):
            estimate = estimates[column]
            assert estimate is not None
            estimates[column] = Estimate(estimate.mean, float(low[position]), float(high[position]), estimate.n)
    return [e if e is not None else MISSING for e in estimates]


def bootstrap_mean(
    values: Sequence[float] | np.ndarray,
    *,
    seed: int = DEFAULT_SEED,
    key: str = "",
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = CONFIDENCE,
) -> Estimate:
    """Mean of ``values`` (one per image; NaN ignored) and the percentile bootstrap interval."""
    data = np.asarray(values, dtype=np.float64).ravel()
    data = data[np.isfinite(data)]
    return bootstrap_columns(
        data[:, None], seed=seed, key=key, resamples=resamples, confidence=confidence
    )[0]


def per_image(frame: pd.DataFrame, keys: Sequence[str], metric: str) -> pd.DataFrame:
    """The mean of ``metric`` over the rows of each image, per group of ``keys``."""
    keys = list(keys)
    columns = [*keys, "image_id", metric]
    data = frame[columns].dropna(subset=[metric])
    return data.groupby([*keys, "image_id"], dropna=False, sort=True)[metric].mean().reset_index()


def summarize(
    frame: pd.DataFrame,
    keys: Sequence[str],
    metrics: Sequence[str],
    *,
    seed: int = DEFAULT_SEED,
    resamples: int = DEFAULT_RESAMPLES,
    tag: str = "",
    blocks: Sequence[str] | None = None,
) -> pd.DataFrame:
    """One row per group of ``keys``: ``<metric>`` holds an :class:`Estimate` per metric,
    ``images`` the number of distinct images in the group.

    ``blocks`` (a prefix-free subset of ``keys``, default all of them) are the groups that
    share bootstrap resamples and a random stream, e.g. ``("model", "explainer")`` for a
    grid of attacks × grid points; a block's intervals never depend on the other blocks.
    """
    keys = list(keys)
    block_keys = list(blocks) if blocks is not None else keys
    rest = [k for k in keys if k not in block_keys]
    metrics = [m for m in metrics if m in frame.columns]
    if frame.empty or not metrics:
        return pd.DataFrame(columns=[*keys, *metrics, "images"])
    groups = frame.groupby(keys, dropna=False, sort=True)
    out = groups["image_id"].nunique().rename("images").reset_index()
    for metric in metrics:
        images = per_image(frame, keys, metric)
        estimates: dict[tuple[Any, ...], Estimate] = {}
        for block, rows in images.groupby(block_keys, dropna=False, sort=True):
            block = block if isinstance(block, tuple) else (block,)
            image_codes, _ = pd.factorize(rows["image_id"])
            if rest:
                column_codes = rows.groupby(rest, dropna=False, sort=True).ngroup().to_numpy()
                labels = (
                    rows.assign(_column=column_codes).drop_duplicates("_column")
                    .sort_values("_column")[rest].itertuples(index=False, name=None)
                )
            else:
                column_codes = np.zeros(len(rows), dtype=np.int64)
                labels = iter([()])
            matrix = np.full((image_codes.max() + 1, column_codes.max() + 1), np.nan)
            matrix[image_codes, column_codes] = rows[metric].to_numpy(dtype=np.float64)
            key = "|".join([tag, metric, *map(str, block)])
            found = bootstrap_columns(matrix, seed=seed, key=key, resamples=resamples)
            for label, estimate in zip(labels, found, strict=True):
                named = dict(zip(block_keys, block, strict=True)) | dict(zip(rest, label, strict=True))
                estimates[tuple(named[k] for k in keys)] = estimate
        out[metric] = [
            estimates.get(tuple(row), MISSING) for row in out[keys].itertuples(index=False)
        ]
    return out


def rank(values: Sequence[float], higher_is_better: bool) -> list[int | None]:
    """Competition ranks (1 = best; ties share the better rank); missing values get none."""
    series = pd.Series(np.asarray(values, dtype=np.float64))
    ranks = series.rank(method="min", ascending=not higher_is_better)
    return [None if math.isnan(r) else int(r) for r in ranks]

