"""Summary tables: mean ± std per model × explainer × attack × grid point."""

from __future__ import annotations

import pandas as pd
from rich.console import Console
from rich.table import Table

GROUP_KEYS = ("suite", "model", "explainer", "attack", "alpha", "topk")
SUMMARY_METRICS = (
    "explanation_change_pct",
    "ssim",
    "confidence_drop_pct",
    "prediction_flipped",
    "topk_intersection",
    "rank_correlation",
    "completeness_gap",
)


def summarize(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per group with ``<metric>_mean``, ``<metric>_std`` and ``n`` (rows)."""
    keys = [k for k in GROUP_KEYS if k in frame.columns]
    metrics = [m for m in SUMMARY_METRICS if m in frame.columns]
    if not keys or not metrics:
        return pd.DataFrame()
    grouped = frame.groupby(keys, dropna=False, sort=True)
    table = grouped[metrics].agg(["mean", "std"])
    table.columns = [f"{metric}_{stat}" for metric, stat in table.columns]
    table["n"] = grouped.size()
    table["images"] = grouped["image_id"].nunique() if "image_id" in frame.columns else table["n"]
    return table.reset_index()


def _cell(mean: float, std: float, digits: int = 2) -> str:
    if pd.isna(mean):
        return "–"
    if pd.isna(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def render_summary(summary: pd.DataFrame, console: Console, *, title: str = "Summary") -> None:
    if summary.empty:
        console.print("[yellow]no rows to summarise[/yellow]")
        return
    table = Table(title=title, show_lines=False, header_style="bold")
    keys = [k for k in GROUP_KEYS if k in summary.columns and k != "suite"]
    for key in keys:
        table.add_column(key.replace("_", " "))
    shown = [
        ("explanation_change_pct", "expl. change %", 1),
        ("ssim", "SSIM", 3),
        ("confidence_drop_pct", "conf. drop pp", 2),
        ("prediction_flipped", "flipped", 2),
        ("topk_intersection", "top-k ∩", 2),
        ("rank_correlation", "Spearman", 2),
        ("completeness_gap", "compl. gap", 3),
    ]
    shown = [s for s in shown if f"{s[0]}_mean" in summary.columns]
    for _, header, _ in shown:
        table.add_column(header, justify="right")
    table.add_column("n", justify="right")
    for _, row in summary.iterrows():
        cells = [str(row[k]) if not isinstance(row[k], float) else f"{row[k]:g}" for k in keys]
        cells += [_cell(row[f"{m}_mean"], row[f"{m}_std"], d) for m, _, d in shown]
        cells.append(str(int(row["n"])))
        table.add_row(*cells)
    console.print(table)
