"""Which figures a suite's section shows, with their titles and captions: per group of
attacks that share grid axes, the heatmaps and line figures of every robustness metric; the
injected class's rank; the sensitivity sweeps; the faithfulness curves."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from . import figures as fig_mod
from .curves import class_rank_figure, curve_figure, sensitivity_figure
from .grid import at_rest_axes, primary_source_rows
from .meta import RERUN, AttackInfo, MetricInfo
from .robustness import lead_metric
from .slugs import slugify
from .stats import summarize

Keep = Callable[..., None]


def _order(frame: pd.DataFrame, column: str) -> list[str]:
    return list(dict.fromkeys(frame[column].dropna().astype(str))) if column in frame.columns else []


def axis_groups(suite: Any, present: list[str], notes: list[str]) -> dict[tuple[str, ...], list[AttackInfo]]:
    """The attacks by their grid axes (attacks on the same axes share a figure); an attack
    without recorded axes gets none, and a note."""
    groups: dict[tuple[str, ...], list[AttackInfo]] = {}
    for label in present:
        info = suite.attack(label)
        if info.grid_axes:
            groups.setdefault(info.grid_axes, []).append(info)
        else:
            notes.append(f"no figure for {info.title}: its results record no grid axes; {RERUN}")
    return groups


def _grid_means(suite: Any, frame: pd.DataFrame, attacks: list[AttackInfo], axes: tuple[str, ...],
                metrics: list[MetricInfo], seed: int, resamples: int) -> pd.DataFrame:
    """Mean and interval per model × explainer × attack × the first two axes."""
    rows = pd.concat(
        [at_rest_axes(frame[frame["attack"].astype(str) == a.label], axes, a.reference) for a in attacks],
        ignore_index=True,
    )
    keys = ["model", "explainer", "attack", *axes[:2]]
    if rows.empty or not set(keys) <= set(rows.columns):
        return pd.DataFrame()
    return summarize(
        rows, keys, [m.label for m in metrics], seed=seed, resamples=resamples,
        tag=f"{suite.name}|grid|{'|'.join(axes)}", blocks=("model", "explainer"),
    )


def _names(infos: list[AttackInfo]) -> str:
    return ", ".join(a.title for a in infos)


def _group_figures(keep: Keep, suite: Any, frame: pd.DataFrame, group: tuple[tuple[str, ...], list[AttackInfo]],
                   metrics: list[MetricInfo], main_labels: list[str], seed: int, resamples: int) -> None:
    axes, attacks = group
    grid = _grid_means(suite, frame, attacks, axes, metrics, seed, resamples)
    if grid.empty:
        return
    main = [a for a in attacks if a.label in main_labels]
    baselines = [a for a in attacks if a.label not in main_labels]
    titles = {k: v for a in attacks for k, v in a.axis_titles.items()}
    shown = [titles.get(a, a) for a in axes]
    held = f" ({', '.join(shown[2:])} at the reference point)" if len(axes) > 2 else ""
    explainers = _order(frame, "explainer")
    dashed = f", {_names(baselines)} dashed (baseline)" if baselines else ""
    for model in _order(frame, "model"):
        for metric in metrics:
            if len(axes) >= 2:
                keep(
                    fig_mod.heatmap_figure(grid, model, metric, main + baselines, explainers, axes, titles),
                    f"heatmap-{metric.label}", model, f"{model}: {metric.title} over {shown[0]} × {shown[1]}",
                    f"{model}: mean {metric.title} at every {shown[0]} × {shown[1]} grid point of "
                    f"{_names(main + baselines)}, per attack and explainer{held}.", "|".join(axes),
                )
            x_axis = shown[min(len(axes), 2) - 1]
            per = f", a line per {shown[0]}" if len(axes) >= 2 else ""
            keep(
                fig_mod.line_figure(grid, model, metric, main, baselines, explainers, axes, titles),
                f"lines-{metric.label}", model, f"{model}: {metric.title} vs {x_axis}",
                f"{model}: {metric.title} against {x_axis}{per}{held}; {_names(main)} solid{dashed}; "
                "bands are 95 % bootstrap intervals over images.", "|".join(axes),
            )


def robustness_figures(keep: Keep, suite: Any, seed: int, resamples: int) -> list[str]:
    """The grid figures and the class-rank figure; returns the notes of attacks without any."""
    frame = primary_source_rows(suite.robustness)
    notes: list[str] = []
    if frame.empty or "attack" not in frame.columns:
        return notes
    metrics = suite.plugins.robustness_metrics(frame.columns)
    if not metrics:
        return notes
    present = suite.attack_order(frame["attack"].dropna())
    main_labels = suite.main_attacks(present)
    for group in axis_groups(suite, present, notes).items():
        _group_figures(keep, suite, frame, group, metrics, main_labels, seed, resamples)
    lead = lead_metric(metrics)
    for model in _order(suite.robustness, "model"):
        keep(
            class_rank_figure(suite.robustness, model, lead), "class-rank", model,
            f"{model}: injecting from each class",
            f"{model}: mean {lead.title} over the attack's grid against the rank of the class the "
            "attack images come from; ★ = the running-up class; bands are 95 % bootstrap intervals "
            "over images.",
        )
    return notes


def study_figures(keep: Keep, suite: Any) -> None:
    """Sensitivity sweeps and the faithfulness curves (clean explanations)."""
    sensitivity = suite.sensitivity
    if not sensitivity.empty and "sweep" in sensitivity.columns:
        for sweep in _order(sensitivity, "sweep"):
            keep(
                sensitivity_figure(sensitivity, sweep), "sensitivity", sweep,
                f"{sweep}: sensitivity to its hyperparameters",
                f"{sweep}: SSIM between each setting's heatmap and the reference setting's, per "
                "swept value and model; bands are 95 % bootstrap intervals over images.",
            )
    faithfulness = suite.faithfulness
    if faithfulness.empty or "curve" not in faithfulness.columns:
        return
    explainers = _order(faithfulness, "explainer")
    if not sensitivity.empty and {"param", "explainer"} <= set(sensitivity.columns):
        # A sweep's variants would bury the curves (dozens of lines): draw the references.
        variants = set(sensitivity.loc[sensitivity["param"].notna(), "explainer"].astype(str))
        explainers = [e for e in explainers if e not in variants]
    titles = {m: suite.metric(m).title for m in _order(faithfulness, "metric")}
    for model in _order(faithfulness, "model"):
        keep(
            curve_figure(faithfulness, model, explainers, titles), "curves", model,
            f"{model}: faithfulness curves",
            f"{model}: mean perturbation curves per explainer (clean explanations); where a "
            "metric has two curves the first is solid and the second dashed.",
        )


def suite_figures(suite: Any, assets: Path, *, seed: int, resamples: int) -> tuple[list[Any], list[str]]:
    """Draw and save every figure of the suite; returns the files and the figure notes."""
    written: list[Any] = []

    def keep(fig: Any, kind: str, model: str, title: str, caption: str, *extra: str) -> None:
        if fig is None:
            return
        name = f"{slugify(suite.name, kind, model, *extra)}.svg"
        fig_mod.save(fig, assets / name)
        written.append(fig_mod.FigureFile(kind, title, caption, f"assets/{name}", model))

    notes = robustness_figures(keep, suite, seed, resamples)
    study_figures(keep, suite)
    return written, notes
