"""Hyperparameter sensitivity (seed 004): per sweep × parameter, the SSIM of each setting's
heatmap to the reference heatmap and the spread of every faithfulness metric across the
settings, one column group per model. A parameter's default is read from the explainer's
recorded resolved parameters, never from the registry."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .comparison import model_accuracies, model_title
from .faithfulness import faithfulness_metrics
from .flags import nonfinite_notes
from .meta import MetricInfo
from .stats import Estimate, bootstrap_mean
from .tables import Cell, Column, Table, estimate_cells, text_cell

SSIM_DIGITS = 3


def number_cell(value: float, digits: int = 3, tooltip: str = "") -> Cell:
    if not math.isfinite(value):
        return Cell("–", sort=None)
    return Cell(f"{value:.{digits}f}", sort=value, tooltip=tooltip)


def _value_text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    try:
        decoded = json.loads(value)
    except (TypeError, ValueError):
        return str(value)
    return decoded if isinstance(decoded, str) else f"{decoded:g}" if isinstance(decoded, int | float) else str(decoded)


def _sorted_values(values: pd.Series) -> list[Any]:
    """Distinct JSON values, numerically sorted when they are all numbers."""
    distinct = [v for v in dict.fromkeys(values) if isinstance(v, str)]
    try:
        decoded = [json.loads(v) for v in distinct]
    except ValueError:
        return distinct
    if all(isinstance(d, int | float) and not isinstance(d, bool) for d in decoded):
        return [v for _, v in sorted(zip(decoded, distinct, strict=True))]
    return distinct


def _reference_labels(sens: pd.DataFrame, sweep: Any, model: str | None = None) -> set[str]:
    """The explainer labels of a sweep's reference setting (its rows have no ``param``)."""
    rows = sens[(sens["sweep"] == sweep) & sens["param"].isna()]
    if model is not None:
        rows = rows[rows["model"].astype(str) == model]
    return set(rows["explainer"].astype(str))


def declared_default(suite: Any, sens: pd.DataFrame, sweep: Any, param: str) -> str:
    """The reference setting's value of ``param`` as the run recorded the explainer's
    resolved parameters (the suite seed for ``seed``)."""
    if param == "seed":
        return "the suite seed"
    for label in sorted(_reference_labels(sens, sweep)):
        value = suite.explainer(label).params.get(param)
        if value is not None:
            return f"{value:g}" if isinstance(value, float) else str(value)
    return "default"


def relative_spread(scores: pd.DataFrame) -> tuple[float, Estimate]:
    """Spread of a score across the settings of a sweep (seed 004): the mean over images of
    the per-image standard deviation across settings (ddof = 0), divided by the mean score.

    ``scores``: one row per image × setting with columns ``image_id``, ``setting``, ``score``.
    Returns ``(relative spread, the mean per-image std with its interval)``. Images need
    every setting; others are dropped.
    """
    wide = scores.pivot_table(index="image_id", columns="setting", values="score", aggfunc="mean").dropna()
    if wide.empty or wide.shape[1] < 2:
        return math.nan, Estimate(math.nan, math.nan, math.nan, 0)
    stds = wide.to_numpy(dtype=np.float64).std(axis=1)
    mean = float(wide.to_numpy(dtype=np.float64).mean())
    estimate = bootstrap_mean(stds, key="spread")
    return (estimate.mean / abs(mean) if mean else math.nan), estimate


@dataclass
class Study:
    """What the rows of a sensitivity table share."""

    suite: Any
    sens: pd.DataFrame
    faith: pd.DataFrame
    metrics: list[MetricInfo]
    models: list[str]
    seed: int
    resamples: int
    ssim: dict[str, list[float]] = field(default_factory=dict)
    spread: dict[tuple[str, str], list[float]] = field(default_factory=dict)


def _columns(study: Study, accuracies: dict[str, float]) -> list[Column]:
    columns = [
        Column("sweep", "explainer", numeric=False),
        Column("param", "parameter", numeric=False),
        Column("values", "values (reference)", "the values tried; the reference value in parentheses", numeric=False),
    ]
    for model in study.models:
        columns.append(Column(f"ssim:{model}", f"{model_title(model, accuracies)}: SSIM to ref. ↑",
                              "mean over images and the non-reference values of the SSIM between the heatmaps; 1 = unchanged"))
        columns.append(Column(f"worst:{model}", f"{model}: worst value's SSIM", "the lowest per-value mean SSIM"))
        for metric in study.metrics:
            columns.append(Column(
                f"spread:{metric.label}:{model}", f"{model}: {metric.title} spread ↓",
                "mean over images of the std of the score across the sweep (reference included), "
                "relative to the mean score",
            ))
    return columns + [Column("images", "images", "images per setting")]


def _spread_cells(study: Study, row: dict[str, Cell], rows_m: pd.DataFrame, sweep: Any, model: str) -> None:
    labels = set(rows_m["explainer"].astype(str)) | _reference_labels(study.sens, sweep, model)
    faith = study.faith
    for metric in study.metrics:
        chosen = faith[
            (faith["model"].astype(str) == model) & (faith["metric"].astype(str) == metric.label)
            & faith["explainer"].astype(str).isin(labels)
        ]
        relative, _ = relative_spread(
            chosen.rename(columns={"explainer": "setting"})[["image_id", "setting", "score"]]
        ) if not chosen.empty else (math.nan, None)
        row[f"spread:{metric.label}:{model}"] = number_cell(relative)
        if math.isfinite(relative):
            study.spread.setdefault((metric.label, model), []).append(relative)


def _model_cells(study: Study, row: dict[str, Cell], group: pd.DataFrame, sweep: Any, param: Any, model: str) -> int:
    rows_m = group[group["model"].astype(str) == model]
    per_image = rows_m.groupby("image_id")["ssim_to_reference"].mean()
    estimate = bootstrap_mean(per_image.to_numpy(), seed=study.seed, resamples=study.resamples,
                              key=f"{study.suite.name}|sens|{sweep}|{param}|{model}")
    row[f"ssim:{model}"] = estimate_cells([estimate], SSIM_DIGITS)[0]
    by_value = rows_m.groupby("value")["ssim_to_reference"].mean()
    row[f"worst:{model}"] = number_cell(float(by_value.min()) if len(by_value) else math.nan)
    if not estimate.missing:
        study.ssim.setdefault(model, []).append(estimate.mean)
    _spread_cells(study, row, rows_m, sweep, model)
    return int(per_image.shape[0])


def _row(study: Study, sweep: Any, param: Any, group: pd.DataFrame) -> dict[str, Cell]:
    row: dict[str, Cell] = {"sweep": text_cell(str(sweep)), "param": text_cell(str(param))}
    reference = json.loads(group["reference_params"].iloc[0]) if "reference_params" in group.columns else {}
    values = [_value_text(v) for v in _sorted_values(group["value"])]
    ref_value = reference.get(str(param), declared_default(study.suite, study.sens, sweep, str(param)))
    row["values"] = text_cell(", ".join(values) + f" ({ref_value})")
    images = max((_model_cells(study, row, group, sweep, param, m) for m in study.models), default=0)
    row["images"] = Cell(str(images), sort=images)
    return row


def _comparison_notes(study: Study, rows: int) -> list[str]:
    """The first two models compared (e.g. regular vs PGD-trained)."""
    if len(study.models) < 2:
        return []
    base, other = study.models[0], study.models[1]
    notes = []
    if study.ssim.get(base) and study.ssim.get(other):
        notes.append(
            f"Mean SSIM to the reference over all {rows} parameters: {base} "
            f"{np.mean(study.ssim[base]):.3f}, {other} {np.mean(study.ssim[other]):.3f}."
        )
    for metric in study.metrics:
        a, b = study.spread.get((metric.label, base)), study.spread.get((metric.label, other))
        if a and b and np.mean(b) > 0:
            notes.append(
                f"Mean {metric.title} spread: {base} {np.mean(a):.3f}, "
                f"{other} {np.mean(b):.3f} ({base} / {other} = {np.mean(a) / np.mean(b):.2f}×)."
            )
    return notes


def _study(suite: Any, sens: pd.DataFrame, seed: int, resamples: int) -> Study:
    faith = suite.faithfulness
    if not faith.empty and "on" in faith.columns:
        faith = faith[faith["on"].astype(str) == "clean"]
    labels = list(dict.fromkeys(faith["metric"].astype(str))) if not faith.empty else []
    metrics = faithfulness_metrics(suite, faith, labels) if labels else []
    models = list(dict.fromkeys(sens["model"].astype(str)))
    return Study(suite, sens, faith, metrics, models, seed, resamples)


def sensitivity_tables(suite: Any, *, seed: int, resamples: int) -> list[Table]:
    """Per sweep × parameter: the SSIM of each setting's heatmap to the reference heatmap and
    the spread of every faithfulness metric across the settings, one column group per model."""
    sens = suite.sensitivity
    if sens.empty or not {"sweep", "param", "ssim_to_reference", "explainer", "model"} <= set(sens.columns):
        return []
    study = _study(suite, sens, seed, resamples)
    variants = sens[sens["param"].notna()]
    rows = [_row(study, sweep, param, group) for (sweep, param), group in variants.groupby(["sweep", "param"], sort=False)]
    if not rows:
        return []
    labels = set(sens["explainer"].astype(str))
    used = study.faith[study.faith["explainer"].astype(str).isin(labels)] if not study.faith.empty else study.faith
    return [Table(
        id="sensitivity",
        title="Sensitivity to hyperparameters",
        caption=(
            "Each hyperparameter varied on its own around the reference setting: SSIM between "
            "each setting's heatmap (Σ_c |a_c| scaled to [0, 1]) and the reference heatmap, "
            "with a 95 % bootstrap interval over images, and the spread of each faithfulness "
            "score across the sweep (lower = more consistent). " + " ".join(_comparison_notes(study, len(rows)))
        ).strip(),
        columns=_columns(study, model_accuracies(sens)),
        rows=rows,
        notes=nonfinite_notes(sens) + nonfinite_notes(used),
    )]
