"""Models side by side (the FPA paper's Table 1 layout): faithfulness of the clean
explanations with one column per model, one row per explainer × metric."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from .faithfulness import faithfulness_metrics
from .flags import nonfinite_notes, undefined_notes
from .stats import MISSING, summarize
from .tables import Cell, Column, Table, estimate_cells, text_cell


def model_accuracies(frame: pd.DataFrame) -> dict[str, float]:
    """Held-out accuracy per model, as the rows record it (trained models know theirs)."""
    if frame.empty or "model_test_accuracy" not in frame.columns:
        return {}
    found = frame.groupby("model")["model_test_accuracy"].first()
    return {str(m): float(v) for m, v in found.items() if v is not None and math.isfinite(float(v))}


def model_title(model: str, accuracies: dict[str, float]) -> str:
    accuracy = accuracies.get(model)
    return f"{model} (acc. {accuracy:.3f})" if accuracy is not None else model


def _columns(models: list[str], accuracies: dict[str, float]) -> list[Column]:
    columns = [
        Column("estimator", "estimator", "explainer and metric (for MIF/LIF: its channel reduction)", numeric=False),
        Column("metric", "metric", numeric=False),
    ]
    for model in models:
        columns.append(Column(f"model:{model}", model_title(model, accuracies), f"{model}: mean over images [95 % interval]"))
    return columns + [Column("images", "images", "images per model")]


def _rows(suite: Any, frame: pd.DataFrame, summary: pd.DataFrame, models: list[str]) -> list[dict[str, Cell]]:
    lookup = {
        (str(r.metric), str(r.explainer), str(r.model)): (r.score, int(r.images))
        for r in summary.itertuples(index=False)
    }
    explainers = list(dict.fromkeys(frame["explainer"].astype(str)))
    rows = []
    for metric in faithfulness_metrics(suite, frame, list(dict.fromkeys(frame["metric"].astype(str)))):
        for explainer in explainers:
            found = [lookup.get((metric.label, explainer, m)) for m in models]
            if not any(found):
                continue
            cells = estimate_cells([f[0] if f else MISSING for f in found], metric.digits)
            row = {
                "estimator": text_cell(f"{explainer} · {metric.label}"),
                "metric": text_cell(f"{metric.title} {metric.arrow}".strip()),
            }
            for model, cell in zip(models, cells, strict=True):
                row[f"model:{model}"] = cell
            images = max((f[1] for f in found if f), default=0)
            row["images"] = Cell(str(images), sort=images)
            rows.append(row)
    return rows


def model_comparison_tables(suite: Any, *, seed: int, resamples: int) -> list[Table]:
    """Faithfulness of clean explanations with models as columns: one row per explainer ×
    metric (an "estimator"), for suites with two or more models."""
    frame = suite.faithfulness
    if frame.empty or not {"metric", "score", "model"} <= set(frame.columns):
        return []
    if "on" in frame.columns:
        frame = frame[frame["on"].astype(str) == "clean"]
    models = list(dict.fromkeys(frame["model"].astype(str)))
    if len(models) < 2:
        return []
    summary = summarize(
        frame, ["metric", "explainer", "model"], ["score"], seed=seed, resamples=resamples,
        tag=f"{suite.name}|models", blocks=("metric", "explainer"),
    )
    accuracies = model_accuracies(frame)
    accuracy_text = (
        " Accuracies are each model's own held-out (test-split) accuracy, recorded when it was "
        "trained: " + ", ".join(f"{m} {a:.3f}" for m, a in accuracies.items()) + "."
        if accuracies else ""
    )
    return [Table(
        id="models-side-by-side",
        title="Models side by side",
        caption=(
            "Faithfulness of the clean explanations with one column per model (the FPA paper's "
            "Table 1 layout): means over images with 95 % bootstrap intervals." + accuracy_text
        ),
        columns=_columns(models, accuracies),
        rows=_rows(suite, frame, summary, models),
        notes=nonfinite_notes(frame) + undefined_notes(frame, "score", "score"),
    )]
