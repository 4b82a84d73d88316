"""Figures over an attack's grid, drawn with matplotlib's object API (no pyplot state) and
seaborn, saved as SVG (text kept as text: small files) into the site's assets folder.

Which columns are the grid comes from the attack's recorded ``grid_axes`` (meta.py):

* two axes or more: a heatmap per robustness metric (the first axis as rows, the second as
  columns; any further axis held at the reference point), a panel per attack × explainer;
* every robustness metric against the last shown axis, a line per value of the first axis
  when there are two, attacks solid and their baselines dashed, with 95 % bands.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib import rc_context  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import FuncFormatter, MaxNLocator  # noqa: E402

from .grid import value_text  # noqa: E402
from .meta import AttackInfo, MetricInfo  # noqa: E402
from .stats import Estimate  # noqa: E402
from .tables import auto_digits  # noqa: E402

__all__ = ["STYLE", "FigureFile", "heatmap_figure", "line_figure", "panels", "rc_context", "save"]

STYLE = {
    # Names from suites and plugins are data, never TeX: "$x$" must stay "$x$".
    "text.parse_math": False,
    "svg.fonttype": "none",
    "svg.hashsalt": "xaibench",
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


@dataclass
class FigureFile:
    """A figure written to the assets folder."""

    kind: str
    title: str
    caption: str
    path: str  # relative to the site root
    model: str = ""


def save(fig: Figure, path: Path) -> None:
    """Write ``fig`` as SVG without a timestamp (same data, same bytes).

    The figures use the constrained layout, which already fits every label inside the
    canvas; ``bbox_inches="tight"`` would draw each figure a second time to trim it (half of
    a site build's time)."""
    buffer = io.BytesIO()
    with rc_context(STYLE):  # the SVG options apply when saving
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    path.write_text(_one_font_rule(buffer.getvalue().decode("utf-8")), encoding="utf-8")


_FONT_FAMILY = re.compile(r"; font-family: ([^\";]*)")


def _one_font_rule(svg: str) -> str:
    """Matplotlib repeats the ~230-character font fallback list on every ``<text>`` (a third of a
    5 × 10 heatmap's bytes); state it once in the SVG's style sheet instead."""
    found = _FONT_FAMILY.search(svg)
    if found is None or '<style type="text/css">' not in svg:
        return svg
    rule = "text{font-family: " + found.group(1) + "}"
    return _FONT_FAMILY.sub("", svg).replace('<style type="text/css">', '<style type="text/css">' + rule, 1)


def _estimate(value: Any) -> Estimate | None:
    return value if isinstance(value, Estimate) and not value.missing else None


def _mean(value: Any) -> float:
    found = _estimate(value)
    return found.mean if found else math.nan


def panels(rows: int, cols: int, width: float, height: float) -> tuple[Figure, np.ndarray]:
    fig = Figure(figsize=(max(3.2, width * cols), max(2.4, height * rows)), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    return fig, axes


def _color_range(metric: MetricInfo, means: pd.Series) -> tuple[float, float]:
    """The data's range; an effect (lower is better) starts at its declared lower bound."""
    low, high = float(np.nanmin(means)), float(np.nanmax(means))
    floor, ceiling = metric.value_range
    if floor is not None and metric.higher_is_better is False and float(floor) <= low:
        low = float(floor)
    if ceiling is not None:
        high = min(high, float(ceiling))
    return low, max(high, low + 1e-9)


def heatmap_figure(
    grid: pd.DataFrame, model: str, metric: MetricInfo, attacks: Sequence[AttackInfo],
    explainers: Sequence[str], axes: Sequence[str], titles: dict[str, str] | None = None,
) -> Figure | None:
    """Mean ``metric`` over the first two ``axes`` (rows × columns): a panel per attack
    (rows) × explainer; one colour scale per figure, darker = worse for the explainer."""
    rows = grid[grid["model"] == model]
    if rows.empty or metric.label not in rows.columns or len(axes) < 2:
        return None
    means = rows[metric.label].map(_mean)
    if not means.notna().any():
        return None
    row_axis, col_axis = axes[0], axes[1]
    titles = titles or {}
    vmin, vmax = _color_range(metric, means)
    digits = metric.digits if metric.digits is not None else auto_digits([e for e in rows[metric.label] if _estimate(e)])
    with rc_context(STYLE):
        fig, ax_grid = panels(len(attacks), len(explainers), 2.9, 2.4)
        for r, attack in enumerate(attacks):
            for c, explainer in enumerate(explainers):
                ax = ax_grid[r, c]
                panel = rows[(rows["attack"] == attack.label) & (rows["explainer"] == explainer)]
                ax.set_title(f"{attack.title} · {explainer}")
                if panel.empty:
                    ax.set_axis_off()
                    continue
                matrix = panel.assign(value=panel[metric.label].map(_mean)).pivot_table(
                    index=row_axis, columns=col_axis, values="value", aggfunc="mean")
                sns.heatmap(
                    matrix, ax=ax, vmin=vmin, vmax=vmax,
                    cmap="rocket" if metric.higher_is_better else "rocket_r",
                    annot=matrix.size <= 80, fmt=f".{digits}f", annot_kws={"fontsize": 7},
                    cbar=c == len(explainers) - 1, cbar_kws={"label": metric.title},
                    linewidths=0.5, linecolor="white",
                )
                ax.invert_yaxis()
                ax.set_xlabel(titles.get(col_axis, col_axis))
                ax.set_ylabel(titles.get(row_axis, row_axis))
                ax.set_xticklabels([value_text(v) for v in matrix.columns])
                ax.set_yticklabels([value_text(v) for v in matrix.index], rotation=0)
        fig.suptitle(
            f"{model}: {metric.title} over the {titles.get(row_axis, row_axis)} × "
            f"{titles.get(col_axis, col_axis)} grid"
        )
    return fig


def _positions(values: Sequence[Any]) -> tuple[np.ndarray, list[str] | None]:
    """x of each value: the number itself, or its place among the values when not numeric."""
    try:
        return np.array([float(v) for v in values]), None
    except (TypeError, ValueError):
        labels = [str(v) for v in dict.fromkeys(values)]
        return np.array([labels.index(str(v)) for v in values], dtype=float), labels


def _sorted(values: Any) -> list[Any]:
    try:
        return sorted(values)
    except TypeError:
        return sorted(values, key=str)


def _draw_line(ax: Any, rows: pd.DataFrame, metric: str, x_axis: str, style: dict[str, Any]) -> bool:
    line = rows.sort_values(x_axis)
    points = [(x, e) for x, e in zip(line[x_axis], line[metric], strict=True) if _estimate(e)]
    if not points:
        return False
    x, labels = _positions([p for p, _ in points])
    mean = np.array([e.mean for _, e in points])
    low = np.array([e.low for _, e in points])
    high = np.array([e.high for _, e in points])
    ax.plot(x, mean, markersize=3, linewidth=1.3, **style)
    if np.isfinite(low).all() and np.isfinite(high).all():
        ax.fill_between(x, low, high, color=style["color"], alpha=0.12, linewidth=0)
    if labels is not None:
        ax.set_xticks(np.arange(len(labels)), labels)
    return True


def _legend(fig: Figure, ax_row: Sequence[Any], order: list[str], ncols: int) -> None:
    entries: dict[str, Any] = {}
    for ax in ax_row:
        for handle, text in zip(*ax.get_legend_handles_labels(), strict=True):
            entries.setdefault(text, handle)
    texts = [t for t in order if t in entries]
    if texts:
        # One legend column per series value, one row per attack (legends fill column-major).
        fig.legend([entries[t] for t in texts], texts, loc="outside lower center", ncols=max(1, ncols), frameon=False)


def line_figure(
    grid: pd.DataFrame, model: str, metric: MetricInfo, attacks: Sequence[AttackInfo],
    baselines: Sequence[AttackInfo], explainers: Sequence[str], axes: Sequence[str],
    titles: dict[str, str] | None = None,
) -> Figure | None:
    """``metric`` against the last of ``axes`` (at most two), a line per value of the first
    when there are two; attacks solid, baselines dashed; 95 % bands; a panel per explainer."""
    rows = grid[grid["model"] == model]
    if rows.empty or metric.label not in rows.columns or not axes:
        return None
    if not rows[metric.label].map(lambda e: _estimate(e) is not None).any():
        return None
    titles = titles or {}
    x_axis = axes[min(len(axes), 2) - 1]
    series_axis = axes[0] if len(axes) >= 2 else None
    series = _sorted(rows[series_axis].dropna().unique()) if series_axis else [None]
    palette = sns.color_palette("viridis", n_colors=max(len(series), 1))
    drawn = [(a, "-", "o") for a in attacks] + [(b, "--", "s") for b in baselines]

    def label(attack: AttackInfo, value: Any) -> str:
        return attack.title if series_axis is None else f"{attack.title}, {titles.get(series_axis, series_axis)} = {value_text(value)}"

    with rc_context(STYLE):
        fig, ax_grid = panels(1, len(explainers), 3.1, 2.7)
        for c, explainer in enumerate(explainers):
            ax = ax_grid[0, c]
            ax.set_title(str(explainer))
            ax.set_xlabel(titles.get(x_axis, x_axis))
            ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
            if c == 0:
                ax.set_ylabel(metric.title)
            for attack, linestyle, marker in drawn:
                chosen = rows[(rows["explainer"] == explainer) & (rows["attack"] == attack.label)]
                for i, value in enumerate(series):
                    part = chosen if series_axis is None else chosen[chosen[series_axis] == value]
                    _draw_line(ax, part, metric.label, x_axis, {
                        "linestyle": linestyle, "marker": marker, "color": palette[i], "label": label(attack, value)})
        _legend(fig, ax_grid[0], [label(a, v) for v in series for a, *_ in drawn], len(series))
        fig.suptitle(f"{model}: {metric.title} vs {titles.get(x_axis, x_axis)}")
    return fig
