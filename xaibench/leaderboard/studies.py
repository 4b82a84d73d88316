"""Tables for the studies of issue 7: models side by side, hyperparameter sensitivity, and the
eXIAA ablations. Same statistics as ``aggregate``: images are the sample, 95 % percentile
bootstrap intervals over images, paired (per image) where two settings are compared.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd

from .aggregate import (
    METRIC_TITLES,
    Cell,
    Column,
    Estimate,
    Table,
    _estimate_cells,
    attack_title,
    bootstrap_mean,
    metric_directions,
    nonfinite_notes,
    summarize,
    undefined_notes,
)


def _text_cell(text: str) -> Cell:
    return Cell(text, sort=text)


def _number_cell(value: float, digits: int = 3, tooltip: str = "") -> Cell:
    if not math.isfinite(value):
        return Cell("–", sort=None)
    return Cell(f"{value:.{digits}f}", sort=value, tooltip=tooltip)


def model_accuracies(frame: pd.DataFrame) -> dict[str, float]:
    """Held-out accuracy per model, as the rows record it (trained models know theirs)."""
    if frame.empty or "model_test_accuracy" not in frame.columns:
        return {}
    found = frame.groupby("model")["model_test_accuracy"].first()
    return {str(m): float(v) for m, v in found.items() if v is not None and math.isfinite(float(v))}


def _model_title(model: str, accuracies: dict[str, float]) -> str:
    accuracy = accuracies.get(model)
    return f"{model} (acc. {accuracy:.3f})" if accuracy is not None else model


# --------------------------------------------------------------------------------------
# Models side by side (the FPA paper's Table 1 structure)
# --------------------------------------------------------------------------------------


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
    directions = metric_directions(frame)
    summary = summarize(
        frame, ["metric", "explainer", "model"], ["score"], seed=seed, resamples=resamples,
        tag=f"{suite.name}|models", blocks=("metric", "explainer"),
    )
    accuracies = model_accuracies(frame)
    metrics = list(dict.fromkeys(frame["metric"].astype(str)))
    explainers = list(dict.fromkeys(frame["explainer"].astype(str)))
    lookup = {
        (str(r.metric), str(r.explainer), str(r.model)): (r.score, int(r.images))
        for r in summary.itertuples(index=False)
    }
    columns = [
        Column("estimator", "estimator", "explainer and metric (for MIF/LIF: its channel reduction)", numeric=False),
        Column("metric", "metric", numeric=False),
    ]
    for model in models:
        columns.append(Column(f"model:{model}", _model_title(model, accuracies), f"{model}: mean over images [95 % interval]"))
    columns.append(Column("images", "images", "images per model"))
    rows = []
    for metric in metrics:
        for explainer in explainers:
            found = [lookup.get((metric, explainer, m)) for m in models]
            if not any(found):
                continue
            cells = _estimate_cells([f[0] if f else Estimate(math.nan, math.nan, math.nan, 0) for f in found])
            better = "↑" if directions.get(metric, True) else "↓"
            row = {
                "estimator": _text_cell(f"{explainer} · {metric}"),
                "metric": _text_cell(f"{METRIC_TITLES.get(metric, metric)} {better}"),
            }
            for model, cell in zip(models, cells, strict=True):
                row[f"model:{model}"] = cell
            images = max((f[1] for f in found if f), default=0)
            row["images"] = Cell(str(images), sort=images)
            rows.append(row)
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
        columns=columns,
        rows=rows,
        notes=nonfinite_notes(frame) + undefined_notes(frame, "score", "score"),
    )]


# --------------------------------------------------------------------------------------
# Hyperparameter sensitivity (seed 004)
# --------------------------------------------------------------------------------------


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


def _declared_default(group: pd.DataFrame, param: str) -> str:
    """The explainer's declared default for ``param`` (the suite seed for ``seed``)."""
    if param == "seed":
        return "the suite seed"
    from .. import registry

    name = group["explainer_name"].dropna().iloc[0] if "explainer_name" in group.columns and group["explainer_name"].notna().any() else None
    try:
        declared = {p.name: p.default for p in registry.explainers.params(str(name))} if name else {}
    except Exception:
        declared = {}
    value = declared.get(param)
    return f"{value:g}" if isinstance(value, float) else str(value) if value is not None else "default"


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


def sensitivity_tables(suite: Any, *, seed: int, resamples: int) -> list[Table]:
    """Per sweep × parameter: the SSIM of each setting's heatmap to the reference heatmap and
    the spread of every faithfulness metric across the settings, one column group per model."""
    sens = suite.sensitivity
    if sens.empty or not {"sweep", "param", "ssim_to_reference", "explainer", "model"} <= set(sens.columns):
        return []
    faith = suite.faithfulness
    if not faith.empty and "on" in faith.columns:
        faith = faith[faith["on"].astype(str) == "clean"]
    metrics = list(dict.fromkeys(faith["metric"].astype(str))) if not faith.empty else []
    models = list(dict.fromkeys(sens["model"].astype(str)))
    accuracies = model_accuracies(sens)
    variants = sens[sens["param"].notna()]
    columns = [
        Column("sweep", "explainer", numeric=False),
        Column("param", "parameter", numeric=False),
        Column("values", "values (reference)", "the values tried; the reference value in parentheses", numeric=False),
    ]
    for model in models:
        title = _model_title(model, accuracies)
        columns.append(Column(f"ssim:{model}", f"{title}: SSIM to ref. ↑",
                              "mean over images and the non-reference values of the SSIM between the heatmaps; 1 = unchanged"))
        columns.append(Column(f"worst:{model}", f"{model}: worst value's SSIM", "the lowest per-value mean SSIM"))
        for metric in metrics:
            columns.append(Column(
                f"spread:{metric}:{model}", f"{model}: {METRIC_TITLES.get(metric, metric)} spread ↓",
                "mean over images of the std of the score across the sweep (reference included), "
                "relative to the mean score",
            ))
    columns.append(Column("images", "images", "images per setting"))
    rows = []
    summary_ssim: dict[str, list[float]] = {m: [] for m in models}
    summary_spread: dict[tuple[str, str], list[float]] = {}
    for (sweep, param), group in variants.groupby(["sweep", "param"], sort=False):
        row: dict[str, Cell] = {
            "sweep": _text_cell(str(sweep)),
            "param": _text_cell(str(param)),
        }
        reference = json.loads(group["reference_params"].iloc[0]) if "reference_params" in group.columns else {}
        values = [_value_text(v) for v in _sorted_values(group["value"])]
        ref_value = reference.get(str(param), _declared_default(group, str(param)))
        row["values"] = _text_cell(", ".join(values) + f" ({ref_value})")
        images = 0
        for model in models:
            rows_m = group[group["model"].astype(str) == model]
            per_image = rows_m.groupby("image_id")["ssim_to_reference"].mean()
            estimate = bootstrap_mean(per_image.to_numpy(), seed=seed, resamples=resamples,
                                      key=f"{suite.name}|sens|{sweep}|{param}|{model}")
            row[f"ssim:{model}"] = _estimate_cells([estimate], "ssim")[0]
            by_value = rows_m.groupby("value")["ssim_to_reference"].mean()
            row[f"worst:{model}"] = _number_cell(float(by_value.min()) if len(by_value) else math.nan)
            if not estimate.missing:
                summary_ssim[model].append(estimate.mean)
            images = max(images, int(per_image.shape[0]))
            labels = set(rows_m["explainer"].astype(str))
            reference_label = sens[
                (sens["model"].astype(str) == model) & (sens["sweep"] == sweep) & sens["param"].isna()
            ]["explainer"].astype(str)
            labels |= set(reference_label)
            for metric in metrics:
                chosen = faith[
                    (faith["model"].astype(str) == model) & (faith["metric"].astype(str) == metric)
                    & faith["explainer"].astype(str).isin(labels)
                ]
                relative, _ = relative_spread(
                    chosen.rename(columns={"explainer": "setting"})[["image_id", "setting", "score"]]
                ) if not chosen.empty else (math.nan, None)
                row[f"spread:{metric}:{model}"] = _number_cell(relative)
                if math.isfinite(relative):
                    summary_spread.setdefault((metric, model), []).append(relative)
        row["images"] = Cell(str(images), sort=images)
        rows.append(row)
    if not rows:
        return []
    notes: list[str] = []
    if len(models) >= 2:
        base, other = models[0], models[1]
        if summary_ssim[base] and summary_ssim[other]:
            notes.append(
                f"Mean SSIM to the reference over all {len(rows)} parameters: {base} "
                f"{np.mean(summary_ssim[base]):.3f}, {other} {np.mean(summary_ssim[other]):.3f}."
            )
        for metric in metrics:
            a, b = summary_spread.get((metric, base)), summary_spread.get((metric, other))
            if a and b and np.mean(b) > 0:
                notes.append(
                    f"Mean {METRIC_TITLES.get(metric, metric)} spread: {base} {np.mean(a):.3f}, "
                    f"{other} {np.mean(b):.3f} ({base} / {other} = {np.mean(a) / np.mean(b):.2f}×)."
                )
    labels = set(sens["explainer"].astype(str))
    used = faith[faith["explainer"].astype(str).isin(labels)] if not faith.empty else faith
    return [Table(
        id="sensitivity",
        title="Sensitivity to hyperparameters",
        caption=(
            "Each hyperparameter varied on its own around the reference setting: SSIM between "
            "each setting's heatmap (Σ_c |a_c| scaled to [0, 1]) and the reference heatmap, "
            "with a 95 % bootstrap interval over images, and the spread of each faithfulness "
            "score across the sweep (lower = more consistent). " + " ".join(notes)
        ).strip(),
        columns=columns,
        rows=rows,
        notes=nonfinite_notes(sens) + nonfinite_notes(used),
    )]


# --------------------------------------------------------------------------------------
# eXIAA ablations (seed 000, Fig. 5 and appendix A)
# --------------------------------------------------------------------------------------


def _paired(first: pd.Series, second: pd.Series, *, seed: int, resamples: int, key: str) -> Estimate:
    joined = pd.concat([first.rename("a"), second.rename("b")], axis=1).dropna()
    return bootstrap_mean((joined["a"] - joined["b"]).to_numpy(), seed=seed, resamples=resamples, key=key)


def ablation_tables(suite: Any, *, seed: int, resamples: int, metric: str = "explanation_change_pct") -> list[Table]:
    """(1) Source class rank: the running-up class (rank 1) against every other rank, paired
    by image; (2) attack-image rank: an attack that skips the most confident images against
    the same attack that does not. Means over the whole α × top-k grid."""
    frame = suite.robustness
    if frame.empty or metric not in frame.columns or "attack" not in frame.columns:
        return []
    tables = []
    if "source_class_rank" in frame.columns:
        multi = [
            a for a, g in frame.groupby("attack", sort=False)
            if g["source_class_rank"].nunique() > 1 and (g["source_class_rank"] == 1).any()
        ]
        rows = []
        ranks_all: list[int] = []
        for attack in multi:
            ranks_all = sorted(set(ranks_all) | set(int(r) for r in frame.loc[frame["attack"] == attack, "source_class_rank"].dropna()))
        columns = [
            Column("model", "model", numeric=False),
            Column("explainer", "explainer", numeric=False),
            Column("attack", "attack", numeric=False),
        ]
        columns += [Column(f"rank:{r}", "running-up (1)" if r == 1 else f"class rank {r}",
                           f"mean {metric} injecting from the class ranked {r} after the predicted one") for r in ranks_all]
        columns += [
            Column("difference", "running-up − others", "paired per image: running-up minus the mean of the other ranks; 95 % interval"),
            Column("position", "running-up's place", "1 = the running-up class changes explanations most"),
        ]
        for attack in multi:
            rows_a = frame[frame["attack"] == attack]
            for (model, explainer), group in rows_a.groupby(["model", "explainer"], sort=False):
                per = group.groupby(["source_class_rank", "image_id"])[metric].mean()
                means = {int(r): float(per.loc[r].mean()) for r in per.index.get_level_values(0).unique()}
                row = {
                    "model": _text_cell(str(model)),
                    "explainer": _text_cell(str(explainer)),
                    "attack": _text_cell(attack_title(str(attack))),
                }
                estimates = []
                for r in ranks_all:
                    values = per.loc[r].to_numpy() if r in means else np.array([])
                    estimates.append(bootstrap_mean(values, seed=seed, resamples=resamples,
                                                    key=f"{suite.name}|ablation|{attack}|{model}|{explainer}|{r}"))
                for r, cell in zip(ranks_all, _estimate_cells(estimates, metric), strict=True):
                    row[f"rank:{r}"] = cell
                running_up = per.loc[1]
                others = group[group["source_class_rank"] != 1].groupby("image_id")[metric].mean()
                difference = _paired(running_up, others, seed=seed, resamples=resamples,
                                     key=f"{suite.name}|ablation-diff|{attack}|{model}|{explainer}")
                row["difference"] = _estimate_cells([difference], metric)[0]
                order = sorted(means, key=lambda r: -means[r])
                row["position"] = Cell(f"{order.index(1) + 1} of {len(order)}", sort=order.index(1) + 1)
                rows.append(row)
        if rows:
            used = frame[frame["attack"].isin(multi)]
            tables.append(Table(
                id="ablation-source-class",
                title="Ablation: running-up class vs other classes",
                caption=(
                    f"Mean {METRIC_TITLES.get(metric, metric)} over the α × top-k grid when the "
                    "injected images come from the running-up class (rank 1, the paper's attack) "
                    "or from the class of another rank (eXIAA paper Fig. 5). 95 % bootstrap "
                    "intervals over images."
                ),
                columns=columns,
                rows=rows,
                notes=nonfinite_notes(used) + undefined_notes(used, metric, METRIC_TITLES.get(metric, metric)),
            ))
    if "attack_image_rank" in frame.columns and "attack_params" in frame.columns:
        params = frame.drop_duplicates("attack")[["attack", "attack_params"]]
        described = {str(r.attack): json.loads(r.attack_params or "{}") for r in params.itertuples(index=False)}
        pairs = []
        for attack, p in described.items():
            if int(p.get("first_attack_image", 0)) <= 0:
                continue
            for other, q in described.items():
                same = {k: v for k, v in q.items() if k != "first_attack_image"} == {
                    k: v for k, v in p.items() if k != "first_attack_image"
                }
                if other != attack and same and int(q.get("first_attack_image", 0)) == 0:
                    pairs.append((other, attack))
                    break
        rows = []
        for top, low in pairs:
            first = frame[frame["attack"] == top]
            second = frame[frame["attack"] == low]
            for (model, explainer), group in first.groupby(["model", "explainer"], sort=False):
                other = second[(second["model"] == model) & (second["explainer"] == explainer)]
                a = group.groupby("image_id")[metric].mean()
                b = other.groupby("image_id")[metric].mean()
                cells = _estimate_cells([
                    bootstrap_mean(a.to_numpy(), seed=seed, resamples=resamples, key=f"{suite.name}|imgrank|{top}|{model}|{explainer}"),
                    bootstrap_mean(b.to_numpy(), seed=seed, resamples=resamples, key=f"{suite.name}|imgrank|{low}|{model}|{explainer}"),
                    _paired(a, b, seed=seed, resamples=resamples, key=f"{suite.name}|imgrank-diff|{top}|{low}|{model}|{explainer}"),
                ], metric)
                ranks_top = group["attack_image_rank"]
                ranks_low = other["attack_image_rank"]
                rows.append({
                    "model": _text_cell(str(model)),
                    "explainer": _text_cell(str(explainer)),
                    "top": _text_cell(f"{attack_title(top)} (images {int(ranks_top.min()) + 1}–{int(ranks_top.max()) + 1})"),
                    "top_value": cells[0],
                    "low": _text_cell(f"{attack_title(low)} (images {int(ranks_low.min()) + 1}–{int(ranks_low.max()) + 1})" if len(other) else attack_title(low)),
                    "low_value": cells[1],
                    "difference": cells[2],
                })
        if rows:
            used = frame[frame["attack"].isin({a for pair in pairs for a in pair})]
            tables.append(Table(
                id="ablation-attack-image-rank",
                title="Ablation: most confident vs lower-ranked attack images",
                caption=(
                    f"Mean {METRIC_TITLES.get(metric, metric)} over the α × top-k grid with the most "
                    "confident attack images of the running-up class and with lower-ranked ones "
                    "(eXIAA paper appendix A); the difference is paired per image, with a 95 % interval."
                ),
                columns=[
                    Column("model", "model", numeric=False),
                    Column("explainer", "explainer", numeric=False),
                    Column("top", "top-ranked images", numeric=False),
                    Column("top_value", "change %"),
                    Column("low", "lower-ranked images", numeric=False),
                    Column("low_value", "change %"),
                    Column("difference", "top − lower", "paired per image; 95 % interval"),
                ],
                rows=rows,
                notes=nonfinite_notes(used) + undefined_notes(used, metric, METRIC_TITLES.get(metric, metric)),
            ))
    return tables
