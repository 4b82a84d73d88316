"""The rendering-agnostic table model (cells, columns, rows) and the helpers every ranked
table shares: formatted estimates, ranks within a model, the reasons a row is not ranked."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from .flags import COMPLETENESS_GAP_LIMIT, Excluded, _pair
from .stats import Estimate, rank

UNRANKED = "⊘"  # the rank cell of a row that is shown but not ranked


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


class Row(dict):  # type: ignore[type-arg]
    """One table row: its cells by column key, and ``unranked``, the reason it has no rank
    (shown greyed on the site, ⊘ in markdown); empty for a row ranked as usual."""

    unranked: str = ""

    def __init__(self, cells: Any = (), unranked: str = "") -> None:
        super().__init__(cells)
        self.unranked = unranked or getattr(cells, "unranked", "")


@dataclass
class Table:
    """A rendered-agnostic table: the HTML site and the markdown output both draw it."""

    id: str
    title: str
    caption: str
    columns: list[Column]
    rows: list[dict[str, Cell]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def auto_digits(estimates: Sequence[Estimate]) -> int:
    """Decimals for a column whose metric declares none: fewer for larger values."""
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


def estimate_cells(estimates: list[Estimate], digits: int | None = None) -> list[Cell]:
    """A cell per estimate: the mean, its interval as the detail; ``digits`` as the metric
    declares them (None: automatic, from the column's largest value)."""
    places = digits if digits is not None else auto_digits(estimates)
    cells = []
    for estimate in estimates:
        text, interval = format_estimate(estimate, places)
        cells.append(Cell(
            text,
            detail=interval,
            sort=None if estimate.missing else estimate.mean,
            estimate=estimate,
            tooltip="" if estimate.missing else f"mean over {estimate.n} images; 95 % bootstrap interval",
        ))
    return cells


def text_cell(text: str) -> Cell:
    return Cell(text, sort=text)


def count_cell(value: int) -> Cell:
    return Cell(str(int(value)), sort=int(value))


def flag_cells(
    rows: pd.DataFrame,
    gaps: dict[tuple[str, str], float],
    gates: dict[tuple[str, str], float] | None = None,
    nonfinite: dict[tuple[str, str], Excluded] | None = None,
    warning: Callable[[str, float], str] | None = None,
) -> list[Cell]:
    """The explainer cells, flagged for a completeness gap above the pair's gate (the text
    from ``warning(explainer, gap)``) and for rows left out (``nonfinite``: the
    ``exclusion_counts``: non-finite attributions, all-zero or constant explanations)."""
    gates = gates or {}
    nonfinite = nonfinite or {}
    cells = []
    for model, explainer in rows[["model", "explainer"]].itertuples(index=False):
        pair = _pair(model, explainer)
        flags = []
        gap = gaps.get(pair)
        if gap is not None and gap > gates.get(pair, COMPLETENESS_GAP_LIMIT):
            flags.append(warning(str(explainer), gap) if warning else f"median completeness gap {gap:.2f}")
        if pair in nonfinite:
            counts = nonfinite[pair]
            left = counts.nonfinite + counts.degenerate < counts.total
            flags.append("; ".join(counts.texts()) + ("; the means are over the remaining rows" if left else ""))
        cells.append(Cell(str(explainer), sort=str(explainer), flag="; ".join(flags)))
    return cells


def ranks_within_models(
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


def rank_cell(value: int | None, unranked: str = "") -> Cell:
    if unranked:
        return Cell(UNRANKED, sort=None, tooltip=unranked)
    return Cell("–" if value is None else str(value), sort=None if value is None else value)


def unranked_reasons(
    summary: pd.DataFrame,
    ranks: Sequence[int | None],
    converged: dict[tuple[str, str], str],
    nonfinite: dict[tuple[str, str], Excluded],
) -> list[str]:
    """Why each row has no rank: under-converged, or no value at all (every row non-finite or
    degenerate, or the metric undefined); empty for ranked rows."""
    reasons = []
    for i, (model, explainer) in enumerate(summary[["model", "explainer"]].itertuples(index=False)):
        pair = _pair(model, explainer)
        if pair in converged:
            reasons.append(converged[pair])
        elif ranks[i] is not None:
            reasons.append("")
        elif pair in nonfinite:
            reasons.append(f"not ranked: no value left ({'; '.join(nonfinite[pair].texts())})")
        else:
            reasons.append("not ranked: no value (the metric is undefined for every row)")
    return reasons


def unranked_notes(rows: Sequence[Row]) -> list[str]:
    return [f"{row['explainer'].text} × {row['model'].text} {row.unranked}" for row in rows if row.unranked]


def sort_rows(rows: list[Row]) -> list[Row]:
    """By model, then rank (unranked rows last, in their order)."""
    return sorted(rows, key=lambda r: (r["model"].text, r["rank"].sort if r["rank"].sort is not None else math.inf))


def pair_row(record: Any, rank: Cell, explainer: Cell, unranked: str) -> Row:
    """The first three cells of a ranked table's row: rank, model, explainer."""
    return Row({
        "rank": rank,
        "model": Cell(str(record["model"]), sort=str(record["model"])),
        "explainer": explainer,
    }, unranked=unranked)


def pair_columns(rank_tooltip: str) -> list[Column]:
    return [
        Column("rank", "rank", rank_tooltip),
        Column("model", "model", numeric=False),
        Column("explainer", "explainer", numeric=False),
    ]
