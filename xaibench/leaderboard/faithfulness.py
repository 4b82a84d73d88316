"""Faithfulness overview tables: explainers × models per group of explanations (the clean
images; each attack's corrupted images at its reference point), one column per metric in
suite order, each ranked in its own recorded direction."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from .flags import (
    completeness_gaps,
    completeness_gates,
    explainer_warning,
    mask_nonfinite,
    nonfinite_counts,
    nonfinite_notes,
    pool_fallback_note,
    undefined_notes,
    under_converged,
)
from .grid import point_text, reference_rows
from .meta import RERUN, MetricInfo
from .stats import MISSING, Estimate, summarize
from .tables import (
    UNRANKED,
    Cell,
    Column,
    Row,
    Table,
    count_cell,
    estimate_cells,
    flag_cells,
    pair_columns,
    pair_row,
    rank_cell,
    ranks_within_models,
    sort_rows,
    unranked_notes,
    unranked_reasons,
)


@dataclass
class Group:
    ident: str
    title: str
    rows: pd.DataFrame
    what: str


def metric_directions(faithfulness: pd.DataFrame) -> dict[str, bool]:
    """``higher_is_better`` per metric, from the rows (the metric's own declaration)."""
    out: dict[str, bool] = {}
    if faithfulness.empty or "higher_is_better" not in faithfulness.columns:
        return out
    for metric, values in faithfulness.groupby("metric")["higher_is_better"]:
        values = values.dropna()
        if len(values):
            out[str(metric)] = bool(values.astype(bool).mode().iloc[0])
    return out


def faithfulness_metrics(suite: Any, frame: pd.DataFrame, labels: list[str]) -> list[MetricInfo]:
    """The metrics of ``labels`` in suite order, with titles and directions as recorded (the
    rows' ``higher_is_better`` where the manifests record none)."""
    rows_direction = metric_directions(frame)
    out = []
    for label in suite.plugins.faithfulness_order(labels):
        info = suite.metric(label)
        if not info.has_direction and label in rows_direction:
            info = replace(info, higher_is_better=rows_direction[label])
        out.append(info)
    return out


def groups_of(suite: Any, frame: pd.DataFrame) -> list[Group]:
    on = frame["on"].astype(str) if "on" in frame.columns else pd.Series("clean", index=frame.index)
    groups = []
    clean = frame[on == "clean"]
    if not clean.empty:
        groups.append(Group("clean", "Faithfulness", clean, "explanations of the original images"))
    attacked = frame[on == "attacked"]
    if attacked.empty or "attack" not in attacked.columns:
        return groups
    for attack in suite.attack_order(attacked["attack"].dropna()):
        info = suite.attack(attack)
        rows, point = reference_rows(attacked[attacked["attack"].astype(str) == attack], info.point_axes, info.reference)
        where = f" at {point_text(point, info.axis_titles)}" if point else ""
        groups.append(Group(
            f"attacked-{attack}", f"Faithfulness under {info.title}", rows,
            f"explanations of the corrupted images ({info.title}{where})",
        ))
    return groups


def _mean_ranks(metric_ranks: dict[str, list[int | None]], n: int) -> list[float]:
    out = []
    for i in range(n):
        ranks = [r[i] for r in metric_ranks.values() if r[i] is not None]
        out.append(float(np.mean(ranks)) if ranks else math.nan)
    return out


def _columns(metrics: list[MetricInfo]) -> list[Column]:
    columns = pair_columns(
        f"rank within the model by the mean of the per-metric ranks; {UNRANKED} = not ranked (greyed, see the notes)"
    )
    for metric in metrics:
        columns.append(Column(
            metric.label, f"{metric.title} {metric.arrow}".strip(),
            f"{metric.label}: {metric.direction_text()}; (#n) = rank within the model",
        ))
    return columns + [
        Column("mean_rank", "mean rank", "mean of the per-metric ranks"),
        Column("images", "images", "number of images"),
    ]


def _mean_rank_cell(value: float) -> Cell:
    finite = math.isfinite(value)
    return Cell(f"{value:.2f}" if finite else "–", sort=value if finite else None)


def _summary(suite: Any, group: Group, seed: int, resamples: int) -> tuple[pd.DataFrame, list[MetricInfo]]:
    # groupby, not pivot_table: a pair whose scores are all NaN keeps its row (shown, not dropped).
    wide = group.rows.groupby(["model", "explainer", "image_id", "metric"])["score"].mean().unstack("metric")
    wide.columns.name = None
    metrics = faithfulness_metrics(suite, group.rows, [str(m) for m in wide.columns])
    summary = summarize(
        wide.reset_index(), ["model", "explainer"], [m.label for m in metrics], seed=seed,
        resamples=resamples, tag=f"{suite.name}|faithfulness|{group.ident}",
    ).reset_index(drop=True)
    return summary, metrics


def _group_notes(group: Group, rows: list[Row], metrics: list[MetricInfo]) -> list[str]:
    notes = unranked_notes(rows) + nonfinite_notes(group.rows)
    notes += undefined_notes(group.rows, "score", "score")
    note = pool_fallback_note(group.rows)
    if note:
        notes.append(note)
    unknown = [m.title for m in metrics if not m.has_direction]
    if unknown:
        notes.append(f"the direction of {', '.join(unknown)} is not recorded: shown, not ranked; {RERUN}")
    return notes


def group_table(suite: Any, group: Group, context: dict[str, Any], seed: int, resamples: int) -> Table | None:
    summary, metrics = _summary(suite, group, seed, resamples)
    if summary.empty:
        return None
    pairs = [(str(m), str(e)) for m, e in summary[["model", "explainer"]].itertuples(index=False)]
    excluded = [p in context["converged"] for p in pairs]
    metric_ranks = {
        m.label: ranks_within_models(summary, m.label, bool(m.higher_is_better), excluded)
        if m.has_direction else [None] * len(pairs)
        for m in metrics
    }
    mean_rank = _mean_ranks(metric_ranks, len(summary))
    summary["_mean_rank"] = [Estimate(v, v, v, 1) if math.isfinite(v) else MISSING for v in mean_rank]
    overall = ranks_within_models(summary, "_mean_rank", higher_is_better=False, excluded=excluded)
    nonfinite = nonfinite_counts(group.rows)
    reasons = unranked_reasons(summary, overall, context["converged"], nonfinite)
    explainers = flag_cells(summary, context["gaps"], context["gates"], nonfinite, context["warning"])
    cells = {m.label: estimate_cells(list(summary[m.label]), m.digits) for m in metrics}
    rows = []
    for i, record in summary.iterrows():
        row = pair_row(record, rank_cell(overall[i], reasons[i]), explainers[i], reasons[i])
        for metric in metrics:
            cell = cells[metric.label][i]
            if metric_ranks[metric.label][i] is not None:
                cell.detail = f"{cell.detail} (#{metric_ranks[metric.label][i]})".strip()
            row[metric.label] = cell
        row["mean_rank"] = _mean_rank_cell(mean_rank[i])
        row["images"] = count_cell(record["images"])
        rows.append(row)
    rows = sort_rows(rows)
    return Table(
        id=f"faithfulness-{group.ident}",
        title=group.title,
        caption=(
            f"Faithfulness of the {group.what}; each metric ranked within the model in its own "
            "direction (↑ higher is better, ↓ lower is better). Means over images with 95 % "
            "bootstrap intervals."
        ),
        columns=_columns(metrics),
        rows=rows,
        notes=_group_notes(group, rows, metrics),
    )


def faithfulness_tables(suite: Any, *, seed: int, resamples: int) -> list[Table]:
    """Explainers × models per faithfulness metric (clean explanations, and attacked ones
    per attack at its reference point), each metric ranked in its own direction."""
    frame = suite.faithfulness
    if frame.empty or not {"metric", "score"} <= set(frame.columns):
        return []
    frame = mask_nonfinite(frame, ["score"])
    context = {
        "gaps": completeness_gaps(suite.robustness),
        "gates": completeness_gates(suite.robustness),
        "converged": under_converged(suite.robustness),
        "warning": explainer_warning(suite),
    }
    tables = []
    for group in groups_of(suite, frame):
        table = group_table(suite, group, context, seed, resamples)
        if table is not None:
            tables.append(table)
    return tables
