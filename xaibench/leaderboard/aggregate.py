"""Aggregation: means with image-level bootstrap confidence intervals, ranks, flags.

Rows that share an original image are not independent (one image has many grid points and
attack images), so every statistic first averages the rows of each image and then treats the
images as the sample: the estimate is the mean of the per-image means, and its 95 % interval
is the percentile interval of that mean over bootstrap resamples of the images.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

DEFAULT_RESAMPLES = 2000
DEFAULT_SEED = 0
CONFIDENCE = 0.95
COMPLETENESS_GAP_LIMIT = 0.1
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
    them: the groups of one model × explainer are the same images), so a whole α × top-k grid
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
        n = data.shape[0]
        rng = np.random.default_rng(_stream_seed(seed, key))
        sums = filled[:, pending]
        complete = bool(present[:, pending].all())
        weights = present[:, pending].astype(np.float64)
        means = np.empty((resamples, len(pending)), dtype=np.float64)
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
    grid of attacks × α × top-k; a block's intervals never depend on the other blocks.
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


def completeness_gaps(robustness: pd.DataFrame) -> dict[tuple[str, str], float]:
    """Median over images of the clean explanation's relative completeness gap, per
    (model, explainer), for methods that have completeness (others are NaN and left out)."""
    if robustness.empty or "completeness_gap" not in robustness.columns:
        return {}
    images = per_image(robustness, ["model", "explainer"], "completeness_gap")
    medians = images.groupby(["model", "explainer"])["completeness_gap"].median()
    return {(str(m), str(e)): float(v) for (m, e), v in medians.items() if math.isfinite(v)}


# --------------------------------------------------------------------------------------
# What the rows declare about themselves: the convergence gate, non-finite explanations,
# attack-image fallbacks and the explainer's noise floor (docs/leaderboard.md)
# --------------------------------------------------------------------------------------

NONFINITE = "nonfinite_fraction"
GATE = "max_completeness_gap"
NOISE_FLOOR = "noise_floor_"
IMAGE_SOURCE = "attack_image_source"
POOL = "pool"  # attack_image_source of a row whose attack image came from the whole pool
UNRANKED = "⊘"  # the rank cell of a row that is shown but not ranked
NOISE_FLOOR_FLAG = "within the explainer's noise floor"
NOISE_FLOOR_NOTE = (
    "noise floor: the same metric between two clean explanations of each image drawn with "
    "independent random seeds, i.e. the explainer's own randomness (– for deterministic "
    "explainers); an attack effect within the noise floor is not distinguishable from the "
    "explainer's own randomness (⚠ on the cell)"
)
NONFINITE_REASON = "the explainer returned non-finite attributions (NaN/inf)"
POOL_REASON = (
    "took their attack image from the whole pool: the pool held no (labelled) image of the "
    "running-up class, which the paper's rule takes its attack images from"
)


class Row(dict):  # type: ignore[type-arg]
    """One table row: its cells by column key, and ``unranked``, the reason it has no rank
    (shown greyed on the site, ⊘ in markdown); empty for a row ranked as usual."""

    unranked: str = ""

    def __init__(self, cells: Any = (), unranked: str = "") -> None:
        super().__init__(cells)
        self.unranked = unranked or getattr(cells, "unranked", "")


def _pair(model: Any, explainer: Any) -> tuple[str, str]:
    return str(model), str(explainer)


def _short(value: float) -> str:
    """A gap or gate for a sentence: two decimals, more significant digits when tiny."""
    return f"{value:.2f}" if value == 0 or abs(value) >= 0.01 else f"{value:.2g}"


def completeness_gates(frame: pd.DataFrame) -> dict[tuple[str, str], float]:
    """The convergence gate of each (model, explainer) as its rows declare it
    (``max_completeness_gap``; the strictest when rows disagree). Pairs whose rows declare
    none are absent: :data:`COMPLETENESS_GAP_LIMIT` applies to them."""
    if frame.empty or GATE not in frame.columns:
        return {}
    gates = pd.to_numeric(frame[GATE], errors="coerce")
    rows = frame.assign(_gate=gates)[np.isfinite(gates.to_numpy(dtype=np.float64))]
    if rows.empty:
        return {}
    found = rows.groupby([rows["model"].astype(str), rows["explainer"].astype(str)])["_gate"].min()
    return {_pair(m, e): float(v) for (m, e), v in found.items()}


def under_converged(frame: pd.DataFrame) -> dict[tuple[str, str], str]:
    """Per (model, explainer) whose median completeness gap exceeds its gate: why it is not
    ranked. Such pairs are shown (greyed) but left out of every ranking."""
    gaps = completeness_gaps(frame)
    gates = completeness_gates(frame)
    out = {}
    for pair, gap in gaps.items():
        gate = gates.get(pair, COMPLETENESS_GAP_LIMIT)
        if gap > gate:
            source = "its max_completeness_gap" if pair in gates else "the leaderboard's default limit"
            out[pair] = (
                f"not ranked: median completeness gap {_short(gap)} > {_short(gate)} ({source}) — "
                "under-converged; raise n_steps or set max_completeness_gap"
            )
    return out


def nonfinite_counts(frame: pd.DataFrame) -> dict[tuple[str, str], tuple[int, int]]:
    """``(rows with non-finite attributions, rows)`` per (model, explainer) that has any;
    rows without a ``nonfinite_fraction`` (older results) count as finite."""
    if frame.empty or NONFINITE not in frame.columns:
        return {}
    bad = pd.to_numeric(frame[NONFINITE], errors="coerce").fillna(0.0) > 0
    counts = bad.groupby([frame["model"].astype(str), frame["explainer"].astype(str)]).agg(["sum", "size"])
    return {_pair(m, e): (int(r["sum"]), int(r["size"])) for (m, e), r in counts.iterrows() if r["sum"] > 0}


def mask_nonfinite(frame: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """``frame`` with ``metrics`` NaN on the rows with non-finite attributions (the runner
    writes them so already; this keeps the notes true for rows that were not)."""
    if frame.empty or NONFINITE not in frame.columns:
        return frame
    bad = (pd.to_numeric(frame[NONFINITE], errors="coerce").fillna(0.0) > 0).to_numpy()
    present = [m for m in metrics if m in frame.columns]
    if not bad.any() or not present:
        return frame
    frame = frame.copy()
    frame.loc[bad, present] = np.nan
    return frame


def _rows(n: int) -> str:
    return f"{n} row{'s' if n != 1 else ''}"


def nonfinite_notes(frame: pd.DataFrame) -> list[str]:
    """A table note per (model, explainer) with rows left out for non-finite attributions."""
    return [
        f"{bad} of {_rows(total)} of {explainer} × {model} excluded: {NONFINITE_REASON}"
        for (model, explainer), (bad, total) in sorted(nonfinite_counts(frame).items())
    ]


def undefined_notes(frame: pd.DataFrame, metric: str, title: str) -> list[str]:
    """A table note per (model, explainer) with rows whose ``metric`` is missing for another
    reason than non-finite attributions (e.g. explanation change of an all-zero explanation)."""
    if frame.empty or metric not in frame.columns:
        return []
    missing = pd.to_numeric(frame[metric], errors="coerce").isna()
    if NONFINITE in frame.columns:
        missing &= ~(pd.to_numeric(frame[NONFINITE], errors="coerce").fillna(0.0) > 0)
    counts = missing.groupby([frame["model"].astype(str), frame["explainer"].astype(str)]).agg(["sum", "size"])
    return [
        f"{int(r['sum'])} of {_rows(int(r['size']))} of {e} × {m} have no {title} value "
        "(the metric is undefined for them, e.g. an all-zero explanation) and are left out"
        for (m, e), r in counts.iterrows() if r["sum"] > 0
    ]


def _declared_source(params: Any) -> str | None:
    try:
        decoded = json.loads(params) if isinstance(params, str) else None
    except ValueError:
        return None
    value = decoded.get(IMAGE_SOURCE) if isinstance(decoded, dict) else None
    return str(value) if value is not None else None


def pool_fallback_note(frame: pd.DataFrame, what: str = "") -> str | None:
    """``"n of m rows took their attack image from the whole pool: …"`` when rows of an
    attack that asked for its source class's images (the default rule) fell back to the
    pool; an attack configured with ``attack_image_source = "pool"`` is not counted."""
    if frame.empty or IMAGE_SOURCE not in frame.columns:
        return None
    rows = frame[frame[IMAGE_SOURCE].notna()]
    if "attack_params" in rows.columns:
        asked = rows["attack_params"].map(_declared_source)
        rows = rows[asked.astype(object).ne(POOL).to_numpy()]
    fallback = int((rows[IMAGE_SOURCE].astype(str) == POOL).sum())
    if not fallback:
        return None
    return f"{fallback} of {_rows(len(rows))}{what} {POOL_REASON}"


def metric_higher_is_better(metric: str) -> bool:
    """A robustness metric's declared direction (its plugin's ``higher_is_better``); an
    unknown metric counts as an effect size (higher = more change)."""
    from .. import registry

    try:
        return bool(registry.metrics.get(metric).higher_is_better)
    except Exception:  # noqa: BLE001 - a label that is not a registered plugin
        return False


def noise_floor_flag(effect: Estimate, floor: Estimate, higher_is_better: bool, digits: int) -> str:
    """The ⚠ of an attack's cell whose mean is not beyond its noise floor's interval (above
    the upper end for a change, below the lower end for a similarity); empty otherwise."""
    if effect.missing or floor.missing:
        return ""
    if higher_is_better:  # a similarity: the attack must push it below the floor
        bound = floor.low if math.isfinite(floor.low) else floor.mean
        if effect.mean < bound:
            return ""
        relation, end = "is not below", "lower"
    else:
        bound = floor.high if math.isfinite(floor.high) else floor.mean
        if effect.mean > bound:
            return ""
        relation, end = "is not above", "upper"
    return (
        f"{NOISE_FLOOR_FLAG}: the mean {effect.mean:.{digits}f} {relation} {bound:.{digits}f}, the "
        f"{end} end of the noise floor's 95 % interval"
    )


def completeness_warning(explainer: str, gap: float) -> str:
    """The tooltip of a flagged pair."""
    if "deeplift" in explainer.lower():
        return f"DeepLIFT rules not exact for this model (median completeness gap {gap:.2f})"
    return (
        f"attributions do not add up to the output difference on this model "
        f"(median completeness gap {gap:.2f}); e.g. too few integration steps"
    )


# --------------------------------------------------------------------------------------
# Overview tables
# --------------------------------------------------------------------------------------

ATTACK_TITLES = {"exiaa": "eXIAA", "gaussian_noise": "Gaussian noise"}
METRIC_TITLES = {
    "explanation_change_pct": "expl. change %",
    "ssim": "SSIM",
    "confidence_drop_pct": "conf. drop pp",
    "prediction_flipped": "flipped",
    "insertion": "insertion",
    "deletion": "deletion",
    "infidelity": "INFD",
    "mif_lif_area": "MIF−LIF area",
}
FAITHFULNESS_ORDER = ("insertion", "deletion", "infidelity", "mif_lif_area")


def attack_title(label: str) -> str:
    return ATTACK_TITLES.get(label, label)


@dataclass
class Cell:
    """One table cell: its text, its sort key and an optional tooltip / flag."""

    text: str
    sort: float | str | None = None
    estimate: Estimate | None = None
    tooltip: str = ""
    flag: str = ""  # a warning shown as ⚠ with this tooltip
    detail: str = ""  # shown after the text, smaller: the interval, a per-metric rank

    @property
    def full(self) -> str:
        return f"{self.text} {self.detail}" if self.detail else self.text


@dataclass
class Column:
    key: str
    title: str
    tooltip: str = ""
    numeric: bool = True


@dataclass
class Table:
    """A rendered-agnostic table: the HTML site and the markdown output both draw it."""

    id: str
    title: str
    caption: str
    columns: list[Column]
    rows: list[dict[str, Cell]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _digits(estimates: Sequence[Estimate]) -> int:
    values = [abs(e.mean) for e in estimates if not e.missing]
    largest = max(values, default=0.0)
    if largest >= 100:
        return 1
    if largest >= 10:
        return 2
    return 3


def format_estimate(estimate: Estimate, digits: int) -> tuple[str, str]:
    """``("12.3", "[10.1, 14.5]")``: the mean and its interval."""
    if estimate.missing:
        return "–", ""
    if not math.isfinite(estimate.low):
        return f"{estimate.mean:.{digits}f}", ""
    return f"{estimate.mean:.{digits}f}", f"[{estimate.low:.{digits}f}, {estimate.high:.{digits}f}]"


METRIC_DIGITS = {"explanation_change_pct": 1, "ssim": 3, "confidence_drop_pct": 2}


def _estimate_cells(estimates: list[Estimate], metric: str = "") -> list[Cell]:
    digits = METRIC_DIGITS.get(metric) or _digits(estimates)
    cells = []
    for estimate in estimates:
        text, interval = format_estimate(estimate, digits)
        cells.append(Cell(
            text,
            detail=interval,
            sort=None if estimate.missing else estimate.mean,
            estimate=estimate,
            tooltip="" if estimate.missing else f"mean over {estimate.n} images; 95 % bootstrap interval",
        ))
    return cells


def _nearest(values: np.ndarray, target: float) -> float:
    return float(values[np.argmin(np.abs(values - target))])


def reference_rows(frame: pd.DataFrame, reference: dict[str, float]) -> tuple[pd.DataFrame, dict[str, float]]:
    """Rows at the reference grid point (the nearest grid value per axis when it is absent)."""
    point: dict[str, float] = {}
    rows = frame
    for axis in ("alpha", "topk"):
        if axis not in rows.columns or rows[axis].isna().all():
            continue
        available = np.unique(rows[axis].dropna().to_numpy(dtype=np.float64))
        wanted = reference.get(axis, float(available.max()))
        value = _nearest(available, float(wanted))
        point[axis] = value
        rows = rows[np.isclose(rows[axis].to_numpy(dtype=np.float64), value)]
    return rows, point


def point_text(point: dict[str, float]) -> str:
    names = {"alpha": "α", "topk": "top-k"}
    return ", ".join(f"{names.get(k, k)} = {v:g}" for k, v in point.items())


def _flag_cells(
    rows: pd.DataFrame,
    gaps: dict[tuple[str, str], float],
    gates: dict[tuple[str, str], float] | None = None,
    nonfinite: dict[tuple[str, str], tuple[int, int]] | None = None,
) -> list[Cell]:
    """The explainer cells, flagged for a completeness gap above the pair's gate and for
    rows left out because of non-finite attributions."""
    gates = gates or {}
    nonfinite = nonfinite or {}
    cells = []
    for model, explainer in rows[["model", "explainer"]].itertuples(index=False):
        pair = _pair(model, explainer)
        flags = []
        gap = gaps.get(pair)
        if gap is not None and gap > gates.get(pair, COMPLETENESS_GAP_LIMIT):
            flags.append(completeness_warning(str(explainer), gap))
        if pair in nonfinite:
            bad, total = nonfinite[pair]
            flags.append(
                f"{bad} of {_rows(total)} excluded: {NONFINITE_REASON}; the means are over the remaining rows"
            )
        cells.append(Cell(str(explainer), sort=str(explainer), flag="; ".join(flags)))
    return cells


def _ranks_within_models(
    frame: pd.DataFrame, column: str, higher_is_better: bool, excluded: Sequence[bool] | None = None
) -> list[int | None]:
    """Ranks within each model; ``excluded`` rows get none and do not take a place."""
    result: list[int | None] = [None] * len(frame)
    for _, positions in frame.groupby("model", sort=False).indices.items():
        means = [
            frame[column].iloc[p].mean
            if isinstance(frame[column].iloc[p], Estimate) and not (excluded is not None and excluded[p])
            else math.nan
            for p in positions
        ]
        for position, value in zip(positions, rank(means, higher_is_better), strict=True):
            result[position] = value
    return result


def _rank_cell(value: int | None, unranked: str = "") -> Cell:
    if unranked:
        return Cell(UNRANKED, sort=None, tooltip=unranked)
    return Cell("–" if value is None else str(value), sort=None if value is None else value)


def _unranked_reasons(
    summary: pd.DataFrame,
    ranks: Sequence[int | None],
    converged: dict[tuple[str, str], str],
    nonfinite: dict[tuple[str, str], tuple[int, int]],
) -> list[str]:
    """Why each row has no rank: under-converged, or no value at all (every row non-finite,
    or the metric undefined); empty for ranked rows."""
    reasons = []
    for i, (model, explainer) in enumerate(summary[["model", "explainer"]].itertuples(index=False)):
        pair = _pair(model, explainer)
        if pair in converged:
            reasons.append(converged[pair])
        elif ranks[i] is not None:
            reasons.append("")
        elif pair in nonfinite:
            bad, total = nonfinite[pair]
            reasons.append(f"not ranked: no value left ({bad} of {_rows(total)} excluded: {NONFINITE_REASON})")
        else:
            reasons.append("not ranked: no value (the metric is undefined for every row)")
    return reasons


def _unranked_notes(rows: Sequence[Row]) -> list[str]:
    return [f"{row['explainer'].text} × {row['model'].text} {row.unranked}" for row in rows if row.unranked]


def paper_attack_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of the paper's attack: an attack run from several source classes (the
    running-up-class ablation) contributes only its running-up-class rows (rank 1) to the
    overview tables and figures; the other ranks are compared in the ablation table."""
    if frame.empty or "source_class_rank" not in frame.columns or "attack" not in frame.columns:
        return frame
    rank = frame["source_class_rank"]
    has_rank_one = frame.groupby("attack")["source_class_rank"].transform(lambda r: bool((r == 1).any()))
    return frame[~has_rank_one | rank.isna() | (rank == 1)]


ROBUSTNESS_COLUMNS = (  # metric, column key, title, tooltip (the attack's cells)
    ("explanation_change_pct", "change", "expl. change %",
     "mean change of the explanation, % of the original's (lower = more robust)"),
    ("ssim", "ssim", "SSIM", "SSIM between the original and the corrupted image (higher = less visible)"),
    ("confidence_drop_pct", "confidence_drop_pct", "conf. drop pp",
     "drop of the predicted class's probability, percentage points"),
)
RANKED_METRIC = "explanation_change_pct"


def _floor_columns(rows: pd.DataFrame, metrics: Sequence[str]) -> dict[str, str]:
    """``metric -> noise_floor_<metric>`` for the shown metrics whose noise floor the rows
    record (with at least one finite value: all-deterministic explainers show no column)."""
    found = {}
    for metric in metrics:
        column = f"{NOISE_FLOOR}{metric}"
        if column in rows.columns and np.isfinite(pd.to_numeric(rows[column], errors="coerce")).any():
            found[metric] = column
    return found


def _floor_cells(estimates: list[Estimate], metric: str) -> list[Cell]:
    cells = _estimate_cells(estimates, metric)
    for cell in cells:
        if cell.estimate is None or cell.estimate.missing:
            cell.tooltip = "no noise floor: the explainer is deterministic (or its rows record none)"
        else:
            cell.tooltip = (
                f"the metric between two clean explanations with independent random seeds; mean over "
                f"{cell.estimate.n} images, 95 % bootstrap interval"
            )
    return cells


def _flag_against_floor(cells: list[Cell], floors: Sequence[Estimate], metric: str) -> None:
    higher = metric_higher_is_better(metric)
    digits = METRIC_DIGITS.get(metric) or _digits([c.estimate for c in cells if c.estimate is not None])
    for cell, floor in zip(cells, floors, strict=True):
        if cell.estimate is not None:
            cell.flag = noise_floor_flag(cell.estimate, floor, higher, digits)


def robustness_tables(suite: Any, *, seed: int, resamples: int) -> list[Table]:
    """Per attack (eXIAA first): explainers × models ranked by explanation change at the
    reference point, with the explainer's noise floor, the baseline's change, SSIM and
    confidence drop beside it. Under-converged pairs are shown but not ranked."""
    frame = paper_attack_rows(suite.robustness)
    if frame.empty or "attack" not in frame.columns or RANKED_METRIC not in frame.columns:
        return []
    frame = mask_nonfinite(frame, [m for m, *_ in ROBUSTNESS_COLUMNS])
    attacks = list(dict.fromkeys(frame["attack"].dropna().astype(str)))
    main = [a for a in attacks if not suite.is_baseline(a)] or attacks
    baselines = [a for a in attacks if suite.is_baseline(a) and a not in main]
    main.sort(key=lambda a: (a != "exiaa", attacks.index(a)))
    gaps = completeness_gaps(frame)
    gates = completeness_gates(frame)
    converged = under_converged(frame)
    tables = []
    keys = ["model", "explainer"]
    for attack in main:
        at_point, point = reference_rows(frame[frame["attack"] == attack], suite.reference)
        shown = [m for m, *_ in ROBUSTNESS_COLUMNS]
        floors = _floor_columns(at_point, shown)
        summary = summarize(
            at_point, keys, [*shown, *floors.values()],
            seed=seed, resamples=resamples, tag=f"{suite.name}|{attack}",
        )
        if summary.empty:
            continue
        summary = summary.reset_index(drop=True)
        pairs = list(summary[keys].itertuples(index=False, name=None))
        used = [at_point]
        baseline_estimates: dict[str, list[Estimate]] = {}
        baseline_floors: dict[str, list[Estimate]] = {}
        baseline_points = {}
        for baseline in baselines:
            base_rows, base_point = reference_rows(frame[frame["attack"] == baseline], point or suite.reference)
            used.append(base_rows)
            base_floor = _floor_columns(base_rows, [RANKED_METRIC]).get(RANKED_METRIC)
            base = summarize(
                base_rows, keys, [RANKED_METRIC, *([base_floor] if base_floor else [])],
                seed=seed, resamples=resamples, tag=f"{suite.name}|{baseline}",
            )
            lookup = {(r["model"], r["explainer"]): r for _, r in base.iterrows()}
            baseline_estimates[baseline] = [
                lookup[p][RANKED_METRIC] if p in lookup else MISSING for p in pairs
            ]
            baseline_floors[baseline] = [
                lookup[p][base_floor] if p in lookup and base_floor else MISSING for p in pairs
            ]
            baseline_points[baseline] = base_point
        title = attack_title(attack)
        several = len(floors) > 1
        columns = [
            Column("rank", "rank", "rank of the explainer within its model: 1 = smallest explanation change "
                   f"(most robust); {UNRANKED} = not ranked (greyed, see the notes)"),
            Column("model", "model", numeric=False),
            Column("explainer", "explainer", numeric=False),
        ]
        cells: dict[str, list[Cell]] = {}
        for metric, key, label, tooltip in ROBUSTNESS_COLUMNS:
            if metric == "ssim":  # the baselines' change goes right after the attack's change
                for baseline in baselines:
                    columns.append(Column(
                        f"baseline:{baseline}", f"{attack_title(baseline)}: expl. change %",
                        f"the same at {point_text(baseline_points[baseline])} (baseline)",
                    ))
                    cells[f"baseline:{baseline}"] = _estimate_cells(baseline_estimates[baseline], RANKED_METRIC)
                    if RANKED_METRIC in floors:
                        _flag_against_floor(cells[f"baseline:{baseline}"], baseline_floors[baseline], RANKED_METRIC)
            columns.append(Column(key, f"{title}: {label}", tooltip))
            cells[key] = (
                _estimate_cells(list(summary[metric]), metric) if metric in summary
                else [Cell("–") for _ in pairs]
            )
            if metric in floors:
                floor_key = f"noise_floor:{metric}"
                columns.append(Column(
                    floor_key, f"noise floor: {label}" if several else "noise floor",
                    f"{METRIC_TITLES.get(metric, metric)} between two clean explanations of the same "
                    "image with independent random seeds: the explainer's own randomness "
                    "(– = deterministic explainer); ⚠ on the attack's cell = within this floor",
                ))
                cells[floor_key] = _floor_cells(list(summary[floors[metric]]), metric)
                _flag_against_floor(cells[key], list(summary[floors[metric]]), metric)
        columns.append(Column("images", "images", "number of original images"))
        excluded = [p in converged for p in pairs]
        ranks = _ranks_within_models(summary, RANKED_METRIC, higher_is_better=False, excluded=excluded)
        scope = pd.concat(used, ignore_index=True) if len(used) > 1 else at_point
        nonfinite = nonfinite_counts(scope)
        reasons = _unranked_reasons(summary, ranks, converged, nonfinite)
        explainers = _flag_cells(summary, gaps, gates, nonfinite)
        rows = []
        for i, record in summary.iterrows():
            row = Row({
                "rank": _rank_cell(ranks[i], reasons[i]),
                "model": Cell(str(record["model"]), sort=str(record["model"])),
                "explainer": explainers[i],
            }, unranked=reasons[i])
            for column in columns[3:-1]:
                row[column.key] = cells[column.key][i]
            row["images"] = Cell(str(int(record["images"])), sort=int(record["images"]))
            rows.append(row)
        rows.sort(key=lambda r: (r["model"].text, r["rank"].sort if r["rank"].sort is not None else math.inf))
        notes = []
        if suite.reference_source != "suite":
            notes.append("the suite names no reference grid point: the largest α and top-k are used")
        elif any(not math.isclose(point.get(k, v), v) for k, v in suite.reference.items()):
            notes.append(f"the suite's reference {point_text(suite.reference)} is not on this attack's grid: the nearest point is used")
        notes += _unranked_notes(rows)
        notes += nonfinite_notes(scope)
        notes += undefined_notes(scope, RANKED_METRIC, METRIC_TITLES[RANKED_METRIC])
        for name, rows_of in [(attack, at_point), *zip(baselines, used[1:], strict=True)]:
            note = pool_fallback_note(rows_of, f" of {attack_title(name)}")
            if note:
                notes.append(note)
        caption = (
            f"{title} at {point_text(point)}; ranked within each model by explanation change "
            "(lower = more robust). Means over images with 95 % bootstrap intervals."
        )
        if floors:
            caption += " " + NOISE_FLOOR_NOTE[0].upper() + NOISE_FLOOR_NOTE[1:] + "."
        tables.append(Table(
            id=f"robustness-{attack}",
            title=f"Robustness to {title}",
            caption=caption,
            columns=columns,
            rows=rows,
            notes=notes,
        ))
    return tables


def _metric_order(metrics: Sequence[str]) -> list[str]:
    known = [m for m in FAITHFULNESS_ORDER if m in metrics]
    return known + sorted(m for m in metrics if m not in known)


def metric_directions(faithfulness: pd.DataFrame) -> dict[str, bool]:
    """``higher_is_better`` per metric, from the rows (the metric's own declaration)."""
    out = {}
    if faithfulness.empty or "higher_is_better" not in faithfulness.columns:
        return out
    for metric, values in faithfulness.groupby("metric")["higher_is_better"]:
        values = values.dropna()
        if len(values):
            out[str(metric)] = bool(values.astype(bool).mode().iloc[0])
    return out


def faithfulness_tables(suite: Any, *, seed: int, resamples: int) -> list[Table]:
    """Explainers × models per faithfulness metric (clean explanations, and attacked ones
    per attack at the reference point), each metric ranked in its own direction."""
    frame = suite.faithfulness
    if frame.empty or not {"metric", "score"} <= set(frame.columns):
        return []
    frame = mask_nonfinite(frame, ["score"])
    directions = metric_directions(frame)
    on = frame["on"].astype(str) if "on" in frame.columns else pd.Series("clean", index=frame.index)
    groups: list[tuple[str, str, pd.DataFrame, str]] = []
    clean = frame[on == "clean"]
    if not clean.empty:
        groups.append(("clean", "Faithfulness", clean, "explanations of the original images"))
    attacked = frame[on == "attacked"]
    if not attacked.empty and "attack" in attacked.columns:
        for attack in dict.fromkeys(attacked["attack"].dropna().astype(str)):
            rows, point = reference_rows(attacked[attacked["attack"] == attack], suite.reference)
            groups.append((
                f"attacked-{attack}", f"Faithfulness under {attack_title(attack)}", rows,
                f"explanations of the corrupted images ({attack_title(attack)} at {point_text(point)})",
            ))
    gaps = completeness_gaps(suite.robustness)
    gates = completeness_gates(suite.robustness)
    converged = under_converged(suite.robustness)
    tables = []
    for ident, title, rows, what in groups:
        # groupby, not pivot_table: a pair whose scores are all NaN keeps its row (shown, not dropped).
        wide = rows.groupby(["model", "explainer", "image_id", "metric"])["score"].mean().unstack("metric")
        wide.columns.name = None
        metrics = _metric_order([str(m) for m in wide.columns])
        wide = wide.reset_index()
        summary = summarize(
            wide, ["model", "explainer"], metrics, seed=seed, resamples=resamples,
            tag=f"{suite.name}|faithfulness|{ident}",
        ).reset_index(drop=True)
        if summary.empty:
            continue
        pairs = [_pair(m, e) for m, e in summary[["model", "explainer"]].itertuples(index=False)]
        excluded = [p in converged for p in pairs]
        metric_ranks = {
            m: _ranks_within_models(summary, m, directions.get(m, True), excluded) for m in metrics
        }
        mean_rank = [
            float(np.mean(r)) if (r := [metric_ranks[m][i] for m in metrics if metric_ranks[m][i] is not None]) else math.nan
            for i in range(len(summary))
        ]
        summary["_mean_rank"] = [Estimate(v, v, v, 1) if math.isfinite(v) else MISSING for v in mean_rank]
        overall = _ranks_within_models(summary, "_mean_rank", higher_is_better=False, excluded=excluded)
        nonfinite = nonfinite_counts(rows)
        reasons = _unranked_reasons(summary, overall, converged, nonfinite)
        columns = [
            Column("rank", "rank", "rank within the model by the mean of the per-metric ranks; "
                   f"{UNRANKED} = not ranked (greyed, see the notes)"),
            Column("model", "model", numeric=False),
            Column("explainer", "explainer", numeric=False),
        ]
        for metric in metrics:
            better = directions.get(metric, True)
            columns.append(Column(
                metric, f"{METRIC_TITLES.get(metric, metric)} {'↑' if better else '↓'}",
                f"{metric}: {'higher' if better else 'lower'} is better; (#n) = rank within the model",
            ))
        columns += [
            Column("mean_rank", "mean rank", "mean of the per-metric ranks"),
            Column("images", "images", "number of images"),
        ]
        cells = {m: _estimate_cells(list(summary[m]), m) for m in metrics}
        explainers = _flag_cells(summary, gaps, gates, nonfinite)
        table_rows = []
        for i, record in summary.iterrows():
            row = Row({
                "rank": _rank_cell(overall[i], reasons[i]),
                "model": Cell(str(record["model"]), sort=str(record["model"])),
                "explainer": explainers[i],
            }, unranked=reasons[i])
            for metric in metrics:
                cell = cells[metric][i]
                if metric_ranks[metric][i] is not None:
                    cell.detail = f"{cell.detail} (#{metric_ranks[metric][i]})".strip()
                row[metric] = cell
            row["mean_rank"] = Cell(
                "–" if not math.isfinite(mean_rank[i]) else f"{mean_rank[i]:.2f}",
                sort=mean_rank[i] if math.isfinite(mean_rank[i]) else None,
            )
            row["images"] = Cell(str(int(record["images"])), sort=int(record["images"]))
            table_rows.append(row)
        table_rows.sort(key=lambda r: (r["model"].text, r["rank"].sort if r["rank"].sort is not None else math.inf))
        notes = _unranked_notes(table_rows) + nonfinite_notes(rows)
        notes += undefined_notes(rows, "score", "score")
        note = pool_fallback_note(rows)
        if note:
            notes.append(note)
        tables.append(Table(
            id=f"faithfulness-{ident}",
            title=title,
            caption=(
                f"Faithfulness of the {what}; each metric ranked within the model in its own "
                "direction (↑ higher is better, ↓ lower is better). Means over images with 95 % "
                "bootstrap intervals."
            ),
            columns=columns,
            rows=table_rows,
            notes=notes,
        ))
    return tables


def grid_summary(suite: Any, metrics: Sequence[str], *, seed: int, resamples: int) -> pd.DataFrame:
    """Mean and interval per model × explainer × attack × α × top-k (for the figures)."""
    frame = paper_attack_rows(suite.robustness)
    keys = [k for k in ("model", "explainer", "attack", "alpha", "topk") if k in frame.columns]
    if frame.empty or len(keys) < 5:
        return pd.DataFrame()
    return summarize(
        frame, keys, metrics, seed=seed, resamples=resamples, tag=f"{suite.name}|grid",
        blocks=("model", "explainer"),
    )
