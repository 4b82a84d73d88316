"""Figures of curves and per-class lines: mean faithfulness curves per explainer, the
injected class's rank against a robustness metric, and the sensitivity sweeps."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from .figures import STYLE, panels, rc_context
from .meta import MetricInfo
from .stats import Estimate, bootstrap_mean


def _mean_curve(curves: Sequence[Any], xs: Sequence[Any]) -> tuple[np.ndarray, np.ndarray] | None:
    """The mean of curves that may differ in length: each is interpolated onto a common x."""
    pairs = []
    for curve, x in zip(curves, xs, strict=True):
        if curve is None:
            continue
        y = np.asarray(curve, dtype=np.float64)
        if y.size == 0:
            continue
        if x is None or len(x) != y.size:
            x = np.linspace(0.0, 1.0, y.size)
        pairs.append((np.asarray(x, dtype=np.float64), y))
    if not pairs:
        return None
    lengths = {p[1].size for p in pairs}
    if len(lengths) == 1 and all(np.array_equal(p[0], pairs[0][0]) for p in pairs):
        return pairs[0][0], np.nanmean(np.stack([p[1] for p in pairs]), axis=0)
    grid = np.linspace(min(p[0].min() for p in pairs), max(p[0].max() for p in pairs), 101)
    return grid, np.nanmean(np.stack([np.interp(grid, x, y) for x, y in pairs]), axis=0)


def curve_figure(
    faithfulness: pd.DataFrame, model: str, explainers: Sequence[str], titles: dict[str, str] | None = None
) -> Figure | None:
    """Mean curve per explainer for each faithfulness metric with curves (clean explanations);
    ``titles``: the metrics' recorded titles."""
    rows = faithfulness[faithfulness["model"] == model]
    if "on" in rows.columns:
        rows = rows[rows["on"].astype(str) == "clean"]
    if rows.empty or "curve" not in rows.columns:
        return None
    rows = rows[rows["curve"].notna()]
    metrics = list(dict.fromkeys(rows["metric"].astype(str)))
    if not metrics:
        return None
    palette = sns.color_palette("tab10", n_colors=max(len(explainers), 1))
    colors = {e: palette[i % len(palette)] for i, e in enumerate(explainers)}
    with rc_context(STYLE):
        fig, axes = panels(1, len(metrics), 3.1, 2.7)
        for c, metric in enumerate(metrics):
            ax = axes[0, c]
            ax.set_title((titles or {}).get(metric, metric))
            ax.set_xlabel("fraction of pixels perturbed")
            panel = rows[rows["metric"].astype(str) == metric]
            two_curves = "curve2" in panel.columns and panel["curve2"].notna().any()
            for explainer in explainers:
                data = panel[panel["explainer"] == explainer]
                if data.empty:
                    continue
                xs = data["curve_x"] if "curve_x" in data.columns else [None] * len(data)
                for column, style in (("curve", "-"), ("curve2", "--")):
                    if column not in data.columns or data[column].isna().all():
                        continue
                    mean = _mean_curve(list(data[column]), list(xs))
                    if mean is None:
                        continue
                    names = data.get(f"{column}_name")
                    name = str(names.dropna().iloc[0]) if names is not None and names.notna().any() else column
                    ax.plot(*mean, linestyle=style, color=colors[explainer], linewidth=1.3,
                            label=f"{explainer} ({name})" if two_curves else str(explainer))
            if c == 0:
                ax.set_ylabel("model output")
        # One legend under the panels: inside them, a dozen entries would cover the curves.
        entries: dict[str, Any] = {}
        for ax in axes[0]:
            for handle, text in zip(*ax.get_legend_handles_labels(), strict=True):
                entries.setdefault(text, handle)
        if entries:
            fig.legend(
                list(entries.values()), list(entries), loc="outside lower center",
                ncols=min(4, len(entries)), frameon=False,
            )
        fig.suptitle(f"{model}: mean faithfulness curves (clean explanations)")
    return fig


def _bootstrap(values: np.ndarray, key: str) -> Estimate:
    return bootstrap_mean(values, key=key, resamples=500)


def class_rank_figure(robustness: pd.DataFrame, model: str, info: MetricInfo) -> Figure | None:
    """A metric (mean over the grid, per image, then over images) against the source class's
    rank, a line per explainer; rank 1 (running-up) marked."""
    metric = info.label
    if robustness.empty or "source_class_rank" not in robustness.columns or metric not in robustness.columns:
        return None
    rows = robustness[(robustness["model"] == model) & robustness["source_class_rank"].notna()]
    rows = rows[rows.groupby("attack")["source_class_rank"].transform("nunique") > 1]
    if rows.empty:
        return None
    explainers = list(dict.fromkeys(rows["explainer"].astype(str)))
    palette = sns.color_palette("deep", n_colors=max(len(explainers), 1))
    with rc_context(STYLE):
        fig = Figure(figsize=(4.6, 3.0), layout="constrained")
        ax = fig.add_subplot()
        for color, explainer in zip(palette, explainers, strict=True):
            per = rows[rows["explainer"].astype(str) == explainer].groupby(["source_class_rank", "image_id"])[metric].mean()
            ranks = sorted(int(r) for r in per.index.get_level_values(0).unique())
            estimates = [_bootstrap(per.loc[r].to_numpy(), f"{model}|{explainer}|{r}") for r in ranks]
            x = np.arange(len(ranks))
            mean = np.array([e.mean for e in estimates])
            ax.plot(x, mean, marker="o", markersize=3, color=color, linewidth=1.3, label=explainer)
            ax.fill_between(x, [e.low for e in estimates], [e.high for e in estimates], color=color, alpha=0.15, linewidth=0)
            if 1 in ranks:
                ax.plot([ranks.index(1)], [mean[ranks.index(1)]], marker="*", markersize=10, color=color)
        ax.set_xticks(np.arange(len(ranks)), [str(r) for r in ranks])
        ax.set_xlabel("rank of the injected class (1 = running-up, ★)")
        ax.set_ylabel(info.title)
        ax.legend(frameon=False)
        fig.suptitle(f"{model}: injecting from each class")
    return fig


def sensitivity_figure(sensitivity: pd.DataFrame, sweep: str) -> Figure | None:
    """SSIM to the reference heatmap against each swept value, a panel per parameter and a
    line per model (seed 004's sensitivity plots); 95 % bands over images."""
    if sensitivity.empty or "sweep" not in sensitivity.columns:
        return None
    rows = sensitivity[(sensitivity["sweep"] == sweep) & sensitivity["param"].notna()]
    if rows.empty:
        return None
    params = list(dict.fromkeys(rows["param"].astype(str)))
    models = list(dict.fromkeys(rows["model"].astype(str)))
    palette = sns.color_palette("deep", n_colors=max(len(models), 1))
    with rc_context(STYLE):
        fig, axes = panels(1, len(params), 2.6, 2.5)
        for c, param in enumerate(params):
            ax = axes[0, c]
            ax.set_title(param)
            chosen = rows[rows["param"].astype(str) == param]
            values = list(dict.fromkeys(chosen["value"]))
            for color, model in zip(palette, models, strict=True):
                estimates = []
                for value in values:
                    sample = chosen[(chosen["model"].astype(str) == model) & (chosen["value"] == value)]
                    estimates.append(_bootstrap(sample.groupby("image_id")["ssim_to_reference"].mean().to_numpy(), f"{sweep}|{param}|{model}|{value}"))
                x = np.arange(len(values))
                ax.plot(x, [e.mean for e in estimates], marker="o", markersize=3, color=color, linewidth=1.3, label=model)
                ax.fill_between(x, [e.low for e in estimates], [e.high for e in estimates], color=color, alpha=0.15, linewidth=0)
            ax.set_xticks(np.arange(len(values)), [str(v).strip('"') for v in values], rotation=30)
            if c == 0:
                ax.set_ylabel("SSIM to the reference")
        handles, labels = axes[0, 0].get_legend_handles_labels()
        if handles:
            fig.legend(handles, labels, loc="outside lower center", ncols=max(1, len(models)), frameon=False)
        fig.suptitle(f"{sweep}: heatmap similarity to the reference setting")
    return fig
