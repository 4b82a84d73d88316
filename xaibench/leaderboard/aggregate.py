"""Aggregation: means with image-level bootstrap confidence intervals, ranks, flags.

Rows that share an original image are not independent (one image has many grid points and
attack images), so every statistic first averages the rows of each image and then treats the
images as the sample: the estimate is the mean of the per-image means, and its 95 % interval
is the percentile interval of that mean over bootstrap resamples of the images.
"""

from __future__ import annotations

import hashlib
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


def _flag_cells(rows: pd.DataFrame, gaps: dict[tuple[str, str], float]) -> list[Cell]:
    cells = []
    for model, explainer in rows[["model", "explainer"]].itertuples(index=False):
        gap = gaps.get((str(model), str(explainer)))
        flag = completeness_warning(str(explainer), gap) if gap is not None and gap > COMPLETENESS_GAP_LIMIT else ""
        cells.append(Cell(str(explainer), sort=str(explainer), flag=flag))
    return cells


def _ranks_within_models(frame: pd.DataFrame, column: str, higher_is_better: bool) -> list[int | None]:
    result: list[int | None] = [None] * len(frame)
    for _, positions in frame.groupby("model", sort=False).indices.items():
        means = [
            frame[column].iloc[p].mean if isinstance(frame[column].iloc[p], Estimate) else math.nan
            for p in positions
        ]
        for position, value in zip(positions, rank(means, higher_is_better), strict=True):
            result[position] = value
    return result


def _rank_cell(value: int | None) -> Cell:
    return Cell("–" if value is None else str(value), sort=None if value is None else value)


def paper_attack_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of the paper's attack: an attack run from several source classes (the
    running-up-class ablation) contributes only its running-up-class rows (rank 1) to the
    overview tables and figures; the other ranks are compared in the ablation table."""
    if frame.empty or "source_class_rank" not in frame.columns or "attack" not in frame.columns:
        return frame
    rank = frame["source_class_rank"]
    has_rank_one = frame.groupby("attack")["source_class_rank"].transform(lambda r: bool((r == 1).any()))
    return frame[~has_rank_one | rank.isna() | (rank == 1)]


def robustness_tables(suite: Any, *, seed: int, resamples: int) -> list[Table]:
    """Per attack (eXIAA first): explainers × models ranked by explanation change at the
    reference point, with the baseline's change, SSIM and confidence drop beside it."""
    frame = paper_attack_rows(suite.robustness)
    if frame.empty or "attack" not in frame.columns or "explanation_change_pct" not in frame.columns:
        return []
    attacks = list(dict.fromkeys(frame["attack"].dropna().astype(str)))
    main = [a for a in attacks if not suite.is_baseline(a)] or attacks
    baselines = [a for a in attacks if suite.is_baseline(a) and a not in main]
    main.sort(key=lambda a: (a != "exiaa", attacks.index(a)))
    gaps = completeness_gaps(frame)
    tables = []
    for attack in main:
        at_point, point = reference_rows(frame[frame["attack"] == attack], suite.reference)
        keys = ["model", "explainer"]
        summary = summarize(
            at_point, keys, ["explanation_change_pct", "ssim", "confidence_drop_pct"],
            seed=seed, resamples=resamples, tag=f"{suite.name}|{attack}",
        )
        if summary.empty:
            continue
        summary = summary.reset_index(drop=True)
        baseline_estimates: dict[str, list[Estimate]] = {}
        baseline_points = {}
        for baseline in baselines:
            base_rows, base_point = reference_rows(frame[frame["attack"] == baseline], point or suite.reference)
            base = summarize(
                base_rows, keys, ["explanation_change_pct"], seed=seed, resamples=resamples,
                tag=f"{suite.name}|{baseline}",
            )
            lookup = {
                (r.model, r.explainer): r.explanation_change_pct for r in base.itertuples(index=False)
            }
            baseline_estimates[baseline] = [
                lookup.get((m, e), MISSING) for m, e in summary[keys].itertuples(index=False)
            ]
            baseline_points[baseline] = base_point
        title = attack_title(attack)
        columns = [
            Column("rank", "rank", "rank of the explainer within its model: 1 = smallest explanation change (most robust)"),
            Column("model", "model", numeric=False),
            Column("explainer", "explainer", numeric=False),
            Column("change", f"{title}: expl. change %", "mean change of the explanation, % of the original's (lower = more robust)"),
        ]
        for baseline in baselines:
            columns.append(Column(
                f"baseline:{baseline}", f"{attack_title(baseline)}: expl. change %",
                f"the same at {point_text(baseline_points[baseline])} (baseline)",
            ))
        columns += [
            Column("ssim", f"{title}: SSIM", "SSIM between the original and the corrupted image (higher = less visible)"),
            Column("confidence_drop_pct", f"{title}: conf. drop pp", "drop of the predicted class's probability, percentage points"),
            Column("images", "images", "number of original images"),
        ]
        ranks = _ranks_within_models(summary, "explanation_change_pct", higher_is_better=False)
        change = _estimate_cells(list(summary["explanation_change_pct"]), "explanation_change_pct")
        ssim = _estimate_cells(list(summary["ssim"]), "ssim") if "ssim" in summary else None
        drop = _estimate_cells(list(summary["confidence_drop_pct"]), "confidence_drop_pct") if "confidence_drop_pct" in summary else None
        base_cells = {b: _estimate_cells(v, "explanation_change_pct") for b, v in baseline_estimates.items()}
        explainers = _flag_cells(summary, gaps)
        rows = []
        for i, record in summary.iterrows():
            row = {
                "rank": _rank_cell(ranks[i]),
                "model": Cell(str(record["model"]), sort=str(record["model"])),
                "explainer": explainers[i],
                "change": change[i],
            }
            for baseline in baselines:
                row[f"baseline:{baseline}"] = base_cells[baseline][i]
            row["ssim"] = ssim[i] if ssim else Cell("–")
            row["confidence_drop_pct"] = drop[i] if drop else Cell("–")
            row["images"] = Cell(str(int(record["images"])), sort=int(record["images"]))
            rows.append(row)
        rows.sort(key=lambda r: (r["model"].text, r["rank"].sort if r["rank"].sort is not None else math.inf))
        notes = []
        if suite.reference_source != "suite":
            notes.append("the suite names no reference grid point: the largest α and top-k are used")
        elif any(not math.isclose(point.get(k, v), v) for k, v in suite.reference.items()):
            notes.append(f"the suite's reference {point_text(suite.reference)} is not on this attack's grid: the nearest point is used")
        tables.append(Table(
            id=f"robustness-{attack}",
            title=f"Robustness to {title}",
            caption=(
                f"{title} at {point_text(point)}; ranked within each model by explanation change "
                "(lower = more robust). Means over images with 95 % bootstrap intervals."
            ),
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
    tables = []
    for ident, title, rows, what in groups:
        wide = rows.pivot_table(
            index=["model", "explainer", "image_id"], columns="metric", values="score", aggfunc="mean"
        )
        metrics = _metric_order([str(m) for m in wide.columns])
        wide = wide.reset_index()
        summary = summarize(
            wide, ["model", "explainer"], metrics, seed=seed, resamples=resamples,
            tag=f"{suite.name}|faithfulness|{ident}",
        ).reset_index(drop=True)
        if summary.empty:
            continue
        metric_ranks = {
            m: _ranks_within_models(summary, m, directions.get(m, True)) for m in metrics
        }
        mean_rank = [
            float(np.mean(r)) if (r := [metric_ranks[m][i] for m in metrics if metric_ranks[m][i] is not None]) else math.nan
            for i in range(len(summary))
        ]
        summary["_mean_rank"] = [Estimate(v, v, v, 1) if math.isfinite(v) else MISSING for v in mean_rank]
        overall = _ranks_within_models(summary, "_mean_rank", higher_is_better=False)
        columns = [
            Column("rank", "rank", "rank within the model by the mean of the per-metric ranks"),
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
        explainers = _flag_cells(summary, gaps)
        table_rows = []
        for i, record in summary.iterrows():
            row = {
                "rank": _rank_cell(overall[i]),
                "model": Cell(str(record["model"]), sort=str(record["model"])),
                "explainer": explainers[i],
            }
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
