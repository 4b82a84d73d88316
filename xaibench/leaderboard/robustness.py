"""Robustness overview tables: per attack (suite order), explainers × models at the attack's
reference grid point, every robustness metric of the suite with its noise floor, and the
attack's baselines beside the ranked metric.

The ranked metric is the first robustness metric (suite order) with a recorded direction
that reads the explanations; without one, the first with a recorded direction; a metric
without a recorded direction is shown but never ranked (meta.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .flags import (
    NOISE_FLOOR,
    NOISE_FLOOR_NOTE,
    completeness_gaps,
    completeness_gates,
    explainer_warning,
    mask_nonfinite,
    noise_floor_flag,
    nonfinite_counts,
    nonfinite_notes,
    pool_fallback_note,
    undefined_notes,
    under_converged,
)
from .grid import off_grid, point_text, primary_source_rows, reference_rows
from .meta import RERUN, AttackInfo, MetricInfo
from .stats import MISSING, Estimate, summarize
from .tables import (
    UNRANKED,
    Cell,
    Column,
    Row,
    Table,
    auto_digits,
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

KEYS = ["model", "explainer"]


@dataclass
class Scope:
    """What the tables of one suite share."""

    suite: Any
    frame: pd.DataFrame
    metrics: list[MetricInfo]
    lead: MetricInfo  # ranked when it has a direction; the baselines show it
    gaps: dict[tuple[str, str], float]
    gates: dict[tuple[str, str], float]
    converged: dict[tuple[str, str], str]
    warning: Callable[[str, float], str]
    seed: int
    resamples: int

    @property
    def ranked(self) -> bool:
        return self.lead.has_direction


@dataclass
class BaselinePart:
    """A baseline attack's rows at the attack's point, summarised per pair of the table."""

    info: AttackInfo
    rows: pd.DataFrame
    point: dict[str, Any]
    estimates: list[Estimate] = field(default_factory=list)
    floors: list[Estimate] = field(default_factory=list)


def lead_metric(metrics: Sequence[MetricInfo]) -> MetricInfo:
    directed = [m for m in metrics if m.has_direction]
    return next((m for m in directed if m.compares_explanations), directed[0] if directed else metrics[0])


def scope_of(suite: Any, *, seed: int, resamples: int) -> Scope | None:
    frame = primary_source_rows(suite.robustness)
    if frame.empty or "attack" not in frame.columns:
        return None
    metrics = suite.plugins.robustness_metrics(frame.columns)
    if not metrics:
        return None
    return Scope(
        suite=suite, frame=mask_nonfinite(frame, [m.label for m in metrics]), metrics=metrics,
        lead=lead_metric(metrics), gaps=completeness_gaps(frame), gates=completeness_gates(frame),
        converged=under_converged(frame), warning=explainer_warning(suite), seed=seed, resamples=resamples,
    )


def robustness_tables(suite: Any, *, seed: int, resamples: int) -> list[Table]:
    """Per attack (suite order, each baseline beside the attack it is a baseline of):
    explainers × models at the reference point. Under-converged pairs are shown, not ranked."""
    scope = scope_of(suite, seed=seed, resamples=resamples)
    if scope is None:
        return []
    present = suite.attack_order(scope.frame["attack"].dropna())
    tables = []
    for attack in suite.main_attacks(present):
        table = attack_table(scope, attack, suite.baselines_of(attack, present))
        if table is not None:
            tables.append(table)
    return tables


def floor_columns(rows: pd.DataFrame, metrics: Sequence[str]) -> dict[str, str]:
    """``metric -> noise_floor_<metric>`` for the shown metrics whose noise floor the rows
    record (with at least one finite value: all-deterministic explainers show no column)."""
    found = {}
    for metric in metrics:
        column = f"{NOISE_FLOOR}{metric}"
        if column in rows.columns and np.isfinite(pd.to_numeric(rows[column], errors="coerce")).any():
            found[metric] = column
    return found


def _rows_of(scope: Scope, label: str) -> pd.DataFrame:
    return scope.frame[scope.frame["attack"].astype(str) == label]


def baseline_part(scope: Scope, label: str, point: dict[str, Any], pairs: list[tuple[Any, ...]]) -> BaselinePart:
    """The baseline at the attack's point on the axes they share, its own reference on the
    others; its lead metric and noise floor per pair."""
    info = scope.suite.attack(label)
    wanted = {**info.reference, **{k: v for k, v in point.items() if k in info.point_axes}}
    rows, base_point = reference_rows(_rows_of(scope, label), info.point_axes or tuple(point), wanted)
    lead = scope.lead.label
    floor = floor_columns(rows, [lead]).get(lead)
    summary = summarize(
        rows, KEYS, [lead, *([floor] if floor else [])],
        seed=scope.seed, resamples=scope.resamples, tag=f"{scope.suite.name}|{label}",
    )
    lookup = {(r["model"], r["explainer"]): r for _, r in summary.iterrows()}
    return BaselinePart(
        info=info, rows=rows, point=base_point,
        estimates=[lookup[p][lead] if p in lookup else MISSING for p in pairs],
        floors=[lookup[p][floor] if p in lookup and floor else MISSING for p in pairs],
    )


def flag_against_floor(cells: list[Cell], floors: Sequence[Estimate], metric: MetricInfo) -> None:
    if not metric.has_direction:
        return
    digits = metric.digits if metric.digits is not None else auto_digits([c.estimate for c in cells if c.estimate])
    for cell, floor in zip(cells, floors, strict=True):
        if cell.estimate is not None:
            cell.flag = noise_floor_flag(cell.estimate, floor, bool(metric.higher_is_better), digits)


def floor_cells(estimates: list[Estimate], metric: MetricInfo) -> list[Cell]:
    cells = estimate_cells(estimates, metric.digits)
    for cell in cells:
        if cell.estimate is None or cell.estimate.missing:
            cell.tooltip = "no noise floor: the explainer is deterministic (or its rows record none)"
        else:
            cell.tooltip = (
                f"the metric between two clean explanations with independent random seeds; mean over "
                f"{cell.estimate.n} images, 95 % bootstrap interval"
            )
    return cells


def _metric_tooltip(metric: MetricInfo) -> str:
    return f"{metric.summary or metric.label} ({metric.direction_text()})"


def _floor_column(metric: MetricInfo, several: bool) -> Column:
    return Column(
        f"noise_floor:{metric.label}", f"noise floor: {metric.title}" if several else "noise floor",
        f"{metric.title} between two clean explanations of the same image with independent random "
        "seeds: the explainer's own randomness (– = deterministic explainer); ⚠ on the attack's "
        "cell = within this floor",
    )


def metric_columns(
    scope: Scope, info: AttackInfo, summary: pd.DataFrame, floors: dict[str, str], parts: list[BaselinePart]
) -> tuple[list[Column], dict[str, list[Cell]]]:
    """Per metric (suite order): the attack's column, its noise floor, and after the lead
    metric the baselines' columns."""
    columns: list[Column] = []
    cells: dict[str, list[Cell]] = {}
    for metric in scope.metrics:
        columns.append(Column(metric.label, f"{info.title}: {metric.title}", _metric_tooltip(metric)))
        cells[metric.label] = estimate_cells(list(summary[metric.label]), metric.digits)
        if metric.label in floors:
            column = _floor_column(metric, len(floors) > 1)
            columns.append(column)
            cells[column.key] = floor_cells(list(summary[floors[metric.label]]), metric)
            flag_against_floor(cells[metric.label], list(summary[floors[metric.label]]), metric)
        if metric.label == scope.lead.label:
            for part in parts:
                key = f"baseline:{part.info.label}"
                columns.append(Column(
                    key, f"{part.info.title}: {metric.title}",
                    f"the same at {point_text(part.point, part.info.axis_titles)} (baseline)",
                ))
                cells[key] = estimate_cells(part.estimates, metric.digits)
                if metric.label in floors:
                    flag_against_floor(cells[key], part.floors, metric)
    return columns, cells


def reference_notes(info: AttackInfo, point: dict[str, Any]) -> list[str]:
    """Where the attack's point comes from, when it is not simply the suite's."""
    titles = info.axis_titles
    if not info.point_axes:
        return [f"{info.title} records no grid axes (results written before plugin metadata): its "
                f"means are over all its rows; {RERUN}"]
    notes = []
    if info.reference_source == "largest grid point":
        axes = " and ".join(titles.get(a, a) for a in info.point_axes)
        notes.append(f"the suite names no reference grid point: the largest {axes} are used")
    elif info.reference_source == "attack":
        notes.append(f"the suite names no reference grid point: {info.title}'s own reference point is used")
    if off_grid(point, info.reference):
        whose = "the suite's reference" if info.reference_source == "suite" else "the reference"
        notes.append(f"{whose} {point_text(info.reference, titles)} is not on this attack's grid: the nearest point is used")
    return notes


def direction_notes(scope: Scope) -> list[str]:
    unknown = [m.title for m in scope.metrics if not m.has_direction]
    if not scope.ranked:
        return [f"no shown metric has a recorded direction (results written before plugin metadata): "
                f"the explainers are shown, not ranked; {RERUN}"]
    if unknown:
        return [f"the direction of {', '.join(unknown)} is not recorded (results written before plugin "
                f"metadata): shown, not ranked; {RERUN}"]
    return []


def caption_of(scope: Scope, info: AttackInfo, point: dict[str, Any], floors: dict[str, str]) -> str:
    where = f"at {point_text(point, info.axis_titles)}" if point else "over all its rows"
    lead = scope.lead
    how = (
        f"ranked within each model by {lead.title} ({'higher' if lead.higher_is_better else 'lower'} = more robust)"
        if scope.ranked else "not ranked (no metric with a recorded direction)"
    )
    caption = f"{info.title} {where}; {how}. Means over images with 95 % bootstrap intervals."
    if floors:
        caption += " " + NOISE_FLOOR_NOTE[0].upper() + NOISE_FLOOR_NOTE[1:] + "."
    return caption


def _rank_tooltip(scope: Scope) -> str:
    lead = scope.lead
    best = "highest" if lead.higher_is_better else "lowest"
    return (f"rank of the explainer within its model: 1 = {best} {lead.title} (most robust); "
            f"{UNRANKED} = not ranked (greyed, see the notes)")


def _ranks(scope: Scope, summary: pd.DataFrame, pairs: list[tuple[str, str]], nonfinite: Any) -> tuple[list[Any], list[str]]:
    if not scope.ranked:
        return [None] * len(pairs), [scope.converged.get(p, "") for p in pairs]
    excluded = [p in scope.converged for p in pairs]
    ranks = ranks_within_models(summary, scope.lead.label, bool(scope.lead.higher_is_better), excluded)
    return ranks, unranked_reasons(summary, ranks, scope.converged, nonfinite)


def _table_rows(summary: pd.DataFrame, columns: list[Column], cells: dict[str, list[Cell]],
                ranks: list[Any], reasons: list[str], explainers: list[Cell]) -> list[Row]:
    rows = []
    for i, record in summary.iterrows():
        row = pair_row(record, rank_cell(ranks[i], reasons[i]), explainers[i], reasons[i])
        for column in columns:
            row[column.key] = cells[column.key][i]
        row["images"] = count_cell(record["images"])
        rows.append(row)
    return sort_rows(rows)


def attack_table(scope: Scope, attack: str, baselines: list[str]) -> Table | None:
    info = scope.suite.attack(attack)
    rows, point = reference_rows(_rows_of(scope, attack), info.point_axes, info.reference)
    floors = floor_columns(rows, [m.label for m in scope.metrics])
    summary = summarize(
        rows, KEYS, [*(m.label for m in scope.metrics), *floors.values()],
        seed=scope.seed, resamples=scope.resamples, tag=f"{scope.suite.name}|{attack}",
    )
    if summary.empty:
        return None
    summary = summary.reset_index(drop=True)
    pairs = [(str(m), str(e)) for m, e in summary[KEYS].itertuples(index=False, name=None)]
    raw_pairs = list(summary[KEYS].itertuples(index=False, name=None))
    parts = [baseline_part(scope, b, point, raw_pairs) for b in baselines]
    columns, cells = metric_columns(scope, info, summary, floors, parts)
    used = pd.concat([rows, *(p.rows for p in parts)], ignore_index=True) if parts else rows
    nonfinite = nonfinite_counts(used)
    ranks, reasons = _ranks(scope, summary, pairs, nonfinite)
    explainers = flag_cells(summary, scope.gaps, scope.gates, nonfinite, scope.warning)
    table_rows = _table_rows(summary, columns, cells, ranks, reasons, explainers)
    notes = reference_notes(info, point) + unranked_notes(table_rows) + nonfinite_notes(used)
    notes += undefined_notes(used, scope.lead.label, scope.lead.title)
    for who, rows_of in [(info, rows), *((p.info, p.rows) for p in parts)]:
        note = pool_fallback_note(rows_of, f" of {who.title}")
        if note:
            notes.append(note)
    return Table(
        id=f"robustness-{attack}",
        title=f"Robustness to {info.title}",
        caption=caption_of(scope, info, point, floors),
        columns=[*pair_columns(_rank_tooltip(scope)), *columns, Column("images", "images", "number of original images")],
        rows=table_rows,
        notes=notes + direction_notes(scope),
    )
