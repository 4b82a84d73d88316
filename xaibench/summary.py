"""Summary tables: mean ± std per model × explainer × attack × grid point.

Rows whose explanations had non-finite entries (``nonfinite_fraction > 0``) or were all zero
or constant (``degenerate_map``, see ``xaibench.runner.degenerate``) carry NaN metrics and are
left out of the means; the tables count them (``excluded``, of which ``degenerate`` for the
second reason), ``n`` counts the rows in the means (so ``n + excluded`` is every row), and a
line under the table says why.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .runner.degenerate import COLUMN as DEGENERATE
from .runner.degenerate import flags, what

BASE_KEYS = ("suite", "model", "explainer", "attack")
#: Not a metric of a plugin, but a column of every robustness row: the explainer's own gap.
GAP = ("completeness_gap", "compl. gap", 3)


def _grid_axes(plugins: dict[str, Any] | None) -> list[str]:
    axes: list[str] = []
    for record in ((plugins or {}).get("attacks") or {}).values():
        axes += [a for a in record.get("grid_axes") or [] if a not in axes]
    return axes


def shown_metrics(plugins: dict[str, Any] | None) -> list[tuple[str, str, int]]:
    """``(column, title, digits)`` of every robustness metric the results recorded, in suite order."""
    shown = []
    for label, record in ((plugins or {}).get("metrics") or {}).items():
        if record.get("category", "robustness") != "robustness":
            continue
        digits = record.get("digits")
        shown.append((label, str(record.get("title") or label), 2 if digits is None else int(digits)))
    return [*shown, GAP]


NONFINITE = "nonfinite_fraction"
NONFINITE_REASON = "the explainer returned non-finite attributions (NaN/inf)"
DEGENERATE_REASON = (
    "the explainer returned an all-zero or constant explanation, on which the metrics are "
    f"undefined ('{DEGENERATE}' column)"
)


def _nonfinite(frame: pd.DataFrame) -> pd.Series:
    """Per row: whether its explanations had non-finite entries (False where not recorded)."""
    if NONFINITE not in frame.columns:
        return pd.Series(False, index=frame.index)
    return pd.to_numeric(frame[NONFINITE], errors="coerce").fillna(0.0) > 0


def _counts(table: pd.DataFrame, frame: pd.DataFrame, keys: list[str], grouped: Any) -> None:
    """``n`` (rows in the means), ``excluded`` and its ``degenerate`` part, per group."""
    by = [frame[k] for k in keys]
    degenerate = flags(frame) & ~_nonfinite(frame)
    table["excluded"] = (_nonfinite(frame) | degenerate).groupby(by, dropna=False, sort=True).sum()
    table["degenerate"] = degenerate.groupby(by, dropna=False, sort=True).sum()
    table["n"] = grouped.size() - table["excluded"]


def summarize(frame: pd.DataFrame, plugins: dict[str, Any] | None = None) -> pd.DataFrame:
    """One row per model × explainer × attack × grid point with ``<metric>_mean``,
    ``<metric>_std``, ``n`` (rows in the means), ``excluded`` (rows left out of the means:
    non-finite attributions, or ``degenerate`` ones, all zero or constant; ``n + excluded`` is
    every row). ``plugins``: the manifest's plugin records (grid axes, metrics, titles)."""
    keys = [k for k in (*BASE_KEYS, *_grid_axes(plugins)) if k in frame.columns]
    metrics = [m for m, _, _ in shown_metrics(plugins) if m in frame.columns]
    if not keys or not metrics:
        return pd.DataFrame()
    grouped = frame.groupby(keys, dropna=False, sort=True)
    table = grouped[metrics].agg(["mean", "std"])
    table.columns = [f"{metric}_{stat}" for metric, stat in table.columns]
    _counts(table, frame, keys, grouped)
    table["images"] = grouped["image_id"].nunique() if "image_id" in frame.columns else table["n"]
    return _described(table.reset_index(), frame)


def _described(table: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame:
    """``table`` with the reason its degenerate rows were excluded (``attrs``, for the line)."""
    bad = flags(frame)
    if bad.any():
        table.attrs["degenerate_reason"] = (
            f"the explainer returned {what(frame.loc[bad, DEGENERATE])}, on which the metrics are "
            f"undefined ('{DEGENERATE}' column)"
        )
    return table


def _excluded_line(summary: pd.DataFrame) -> str | None:
    """The line under a table with excluded rows, each reason with its count."""
    if "excluded" not in summary.columns:
        return None
    total = int(summary["excluded"].sum())
    if not total:
        return None
    groups = int((summary["excluded"] > 0).sum())
    degenerate = int(summary["degenerate"].sum()) if "degenerate" in summary.columns else 0
    reason = summary.attrs.get("degenerate_reason", DEGENERATE_REASON)
    if not degenerate:
        why = NONFINITE_REASON
    elif degenerate == total:
        why = reason
    else:
        why = f"{total - degenerate} because {NONFINITE_REASON}; {degenerate} because {reason}"
    line = (
        f"⚠ {total} row{'s' if total != 1 else ''} in {groups} group{'s' if groups != 1 else ''} "
        f"excluded from the means ('excluded' column): {why}"
    )
    return f"[yellow]{escape(line)}[/yellow]"


def _cell(mean: float, std: float, digits: int = 2) -> str:
    if pd.isna(mean):
        return "–"
    if pd.isna(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def render_summary(
    summary: pd.DataFrame, console: Console, *, title: str = "Summary", plugins: dict[str, Any] | None = None
) -> None:
    if summary.empty:
        console.print("[yellow]no rows to summarise[/yellow]")
        return
    table = Table(title=title, show_lines=False, header_style="bold")
    keys = [k for k in (*BASE_KEYS, *_grid_axes(plugins)) if k in summary.columns and k != "suite"]
    for key in keys:
        table.add_column(key.replace("_", " "))
    shown = shown_metrics(plugins)
    shown = [s for s in shown if f"{s[0]}_mean" in summary.columns]
    for _, header, _ in shown:
        table.add_column(header, justify="right")
    table.add_column("n", justify="right")
    excluded = _excluded_line(summary)
    if excluded:
        table.add_column("excluded", justify="right")
    for _, row in summary.iterrows():
        cells = [str(row[k]) if not isinstance(row[k], float) else f"{row[k]:g}" for k in keys]
        cells += [_cell(row[f"{m}_mean"], row[f"{m}_std"], d) for m, _, d in shown]
        cells.append(str(int(row["n"])))
        if excluded:
            cells.append(str(int(row["excluded"])))
        table.add_row(*cells)
    console.print(table)
    if excluded:
        console.print(excluded)


FAITHFULNESS_KEYS = ("suite", "model", "explainer", "on", "metric")


def summarize_faithfulness(frame: pd.DataFrame, robustness: pd.DataFrame | None = None) -> pd.DataFrame:
    """Mean ± std of each faithfulness metric per model × explainer (clean and attacked),
    with the explainer's throughput, its rank per metric (1 = best; none when every row was
    excluded), ``n`` (rows in the means) and ``excluded`` (rows left out: non-finite
    attributions, or ``degenerate``, all-zero or constant ones; ``n + excluded`` is every row). With the
    ``robustness`` rows, a pair whose median completeness gap exceeds its gate is not ranked
    (``unranked`` holds why), as on the leaderboard."""
    keys = [k for k in FAITHFULNESS_KEYS if k in frame.columns]
    grouped = frame.groupby(keys, dropna=False, sort=True)
    table = grouped["score"].agg(["mean", "std"]).rename(columns={"mean": "score_mean", "std": "score_std"})
    _counts(table, frame, keys, grouped)
    table["images"] = grouped["image_id"].nunique()
    table["higher_is_better"] = grouped["higher_is_better"].first()
    if "explainer_images_per_s" in frame.columns:
        table["images_per_s"] = grouped["explainer_images_per_s"].mean()
    table = table.reset_index()
    table["unranked"] = ""
    if robustness is not None and not robustness.empty and {"model", "explainer"} <= set(table.columns):
        from .leaderboard.flags import under_converged

        reasons = under_converged(robustness)
        table["unranked"] = [
            reasons.get((str(m), str(e)), "") for m, e in table[["model", "explainer"]].itertuples(index=False)
        ]
    rank_keys = [k for k in ("suite", "model", "on", "metric") if k in table.columns]
    signed = table["score_mean"].where(table["higher_is_better"].astype(bool), -table["score_mean"])
    signed = signed.where(table["unranked"] == "")
    table["rank"] = signed.groupby([table[k] for k in rank_keys]).rank(ascending=False, method="min")
    return _described(table, frame)


def render_faithfulness(summary: pd.DataFrame, console: Console, *, title: str = "Faithfulness") -> None:
    if summary.empty:
        return
    table = Table(title=title, header_style="bold")
    excluded = _excluded_line(summary)
    headers = ["model", "explainer", "on", "metric", "score", "rank", "images/s", "n"]
    if excluded:
        headers.append("excluded")
    for header in headers:
        table.add_column(header, justify="right" if header in ("score", "rank", "images/s", "n", "excluded") else "left")
    ordered = summary.sort_values([c for c in ("model", "on", "metric", "rank") if c in summary.columns])
    for _, row in ordered.iterrows():
        arrow = "↑" if row["higher_is_better"] else "↓"
        rank = row["rank"]
        cells = [
            str(row.get("model", "")),
            str(row.get("explainer", "")),
            str(row.get("on", "")),
            f"{row['metric']} {arrow}",
            _cell(row["score_mean"], row["score_std"], 4),
            "⊘" if row.get("unranked") else ("–" if pd.isna(rank) or not math.isfinite(rank) else str(int(rank))),
            f"{row['images_per_s']:.2f}" if "images_per_s" in row and pd.notna(row["images_per_s"]) else "–",
            str(int(row["n"] if "n" in row else row["images"])),
        ]
        if excluded:
            cells.append(str(int(row["excluded"])))
        table.add_row(*cells)
    console.print(table)
    if excluded:
        console.print(excluded)
    if "unranked" in summary.columns:
        pairs = summary[summary["unranked"] != ""].drop_duplicates(["model", "explainer"])
        for _, row in pairs.iterrows():
            console.print(f"[yellow]⊘ {escape(str(row['explainer']))} × {escape(str(row['model']))} {escape(row['unranked'])}[/yellow]")
