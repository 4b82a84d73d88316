"""Figures of a suite, drawn with matplotlib's object API (no pyplot state) and seaborn,
saved as SVG (text kept as text: small files) into the site's assets folder.

* α × top-k heatmaps of the explanation change, per model (attacks × explainers panels);
* the eXIAA paper's Figures 2–4: explanation change, SSIM and confidence drop against
  top-k, a line per α, the attack solid and the Gaussian-noise baseline dashed;
* mean insertion / deletion and MIF / LIF curves per explainer, where faithfulness rows exist.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.colors as mcolors  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import FuncFormatter, MaxNLocator  # noqa: E402

from .aggregate import METRIC_TITLES, Estimate, attack_title, bootstrap_mean  # noqa: E402

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
LINE_METRICS = {
    "explanation_change_pct": ("Explanation change (%)", "Figure 2 of the eXIAA paper"),
    "ssim": ("SSIM (original vs corrupted image)", "Figure 3 of the eXIAA paper"),
    "confidence_drop_pct": ("Confidence drop (pp)", "Figure 4 of the eXIAA paper"),
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
    """Write ``fig`` as SVG without a timestamp (same data, same bytes)."""
    buffer = io.BytesIO()
    with matplotlib.rc_context(STYLE):  # the SVG options apply when saving
        fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    path.write_bytes(buffer.getvalue())


def _estimate(value: Any) -> Estimate | None:
    return value if isinstance(value, Estimate) and not value.missing else None


def _grid(rows: int, cols: int, width: float, height: float) -> tuple[Figure, np.ndarray]:
    fig = Figure(figsize=(max(3.2, width * cols), max(2.4, height * rows)), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    return fig, axes


def heatmap_figure(grid: pd.DataFrame, model: str, attacks: Sequence[str], explainers: Sequence[str]) -> Figure | None:
    """Mean explanation change over α × top-k: one panel per attack (rows) × explainer."""
    rows = grid[grid["model"] == model]
    if rows.empty or "explanation_change_pct" not in rows.columns:
        return None
    means = rows["explanation_change_pct"].map(lambda e: e.mean if _estimate(e) else math.nan)
    vmax = float(np.nanmax(means.to_numpy())) if means.notna().any() else 1.0
    with matplotlib.rc_context(STYLE):
        fig, axes = _grid(len(attacks), len(explainers), 2.9, 2.4)
        for r, attack in enumerate(attacks):
            for c, explainer in enumerate(explainers):
                ax = axes[r, c]
                panel = rows[(rows["attack"] == attack) & (rows["explainer"] == explainer)]
                ax.set_title(f"{attack_title(attack)} · {explainer}")
                if panel.empty:
                    ax.set_axis_off()
                    continue
                matrix = panel.assign(
                    value=panel["explanation_change_pct"].map(lambda e: e.mean if _estimate(e) else math.nan)
                ).pivot_table(index="alpha", columns="topk", values="value", aggfunc="mean")
                sns.heatmap(
                    matrix, ax=ax, vmin=0.0, vmax=max(vmax, 1e-9), cmap="rocket_r",
                    annot=matrix.size <= 80, fmt=".1f", annot_kws={"fontsize": 7},
                    cbar=c == len(explainers) - 1, cbar_kws={"label": "expl. change %"},
                    linewidths=0.5, linecolor="white",
                )
                ax.invert_yaxis()
                ax.set_xlabel("top-k")
                ax.set_ylabel("α")
                ax.set_xticklabels([f"{v:g}" for v in matrix.columns])
                ax.set_yticklabels([f"{v:g}" for v in matrix.index], rotation=0)
        fig.suptitle(f"{model}: explanation change over the α × top-k grid")
    return fig


def line_figure(
    grid: pd.DataFrame, model: str, metric: str, attacks: Sequence[str], baselines: Sequence[str],
    explainers: Sequence[str],
) -> Figure | None:
    """``metric`` against top-k, a line per α; attacks solid, baselines dashed; 95 % bands."""
    rows = grid[grid["model"] == model]
    if rows.empty or metric not in rows.columns:
        return None
    if not rows[metric].map(lambda e: _estimate(e) is not None).any():
        return None
    alphas = sorted(rows["alpha"].dropna().unique())
    palette = sns.color_palette("viridis", n_colors=max(len(alphas), 1))
    colors = {alpha: palette[i] for i, alpha in enumerate(alphas)}
    styles = {a: "-" for a in attacks} | {b: "--" for b in baselines}
    markers = {a: "o" for a in attacks} | {b: "s" for b in baselines}
    label, _ = LINE_METRICS.get(metric, (METRIC_TITLES.get(metric, metric), ""))
    with matplotlib.rc_context(STYLE):
        fig, axes = _grid(1, len(explainers), 3.1, 2.7)
        for c, explainer in enumerate(explainers):
            ax = axes[0, c]
            ax.set_title(str(explainer))
            ax.set_xlabel("top-k")
            ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
            if c == 0:
                ax.set_ylabel(label)
            for attack in [*attacks, *baselines]:
                for alpha in alphas:
                    line = rows[
                        (rows["explainer"] == explainer) & (rows["attack"] == attack)
                        & np.isclose(rows["alpha"].astype(float), alpha)
                    ].sort_values("topk")
                    points = [(t, e) for t, e in zip(line["topk"], line[metric], strict=True) if _estimate(e)]
                    if not points:
                        continue
                    x = np.array([float(t) for t, _ in points])
                    mean = np.array([e.mean for _, e in points])
                    low = np.array([e.low for _, e in points])
                    high = np.array([e.high for _, e in points])
                    ax.plot(
                        x, mean, linestyle=styles.get(attack, "-"), marker=markers.get(attack, "o"),
                        markersize=3, color=colors[alpha], linewidth=1.3,
                        label=f"{attack_title(attack)}, α = {alpha:g}",
                    )
                    if np.isfinite(low).all() and np.isfinite(high).all():
                        ax.fill_between(x, low, high, color=colors[alpha], alpha=0.12, linewidth=0)
        entries: dict[str, Any] = {}
        for ax in axes[0]:
            for handle, text in zip(*ax.get_legend_handles_labels(), strict=True):
                entries.setdefault(text, handle)
        if entries:
            # One legend column per α, one legend row per attack (legends fill column-major).
            order = [
                f"{attack_title(attack)}, α = {alpha:g}"
                for alpha in alphas for attack in [*attacks, *baselines]
            ]
            texts = [t for t in order if t in entries]
            fig.legend(
                [entries[t] for t in texts], texts, loc="outside lower center",
                ncols=max(1, len(alphas)), frameon=False,
            )
        fig.suptitle(f"{model}: {label} vs top-k")
    return fig


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


def curve_figure(faithfulness: pd.DataFrame, model: str, explainers: Sequence[str]) -> Figure | None:
    """Mean curve per explainer for each faithfulness metric with curves (clean explanations)."""
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
    with matplotlib.rc_context(STYLE):
        fig, axes = _grid(1, len(metrics), 3.1, 2.7)
        for c, metric in enumerate(metrics):
            ax = axes[0, c]
            ax.set_title(METRIC_TITLES.get(metric, metric))
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


def heatmap_png(values: np.ndarray, vmax: float, colormap: str = "inferno") -> bytes:
    """An attribution heatmap (Σ_c |a|) as a small palette PNG on the scale 0 … ``vmax``."""
    from PIL import Image

    scale = vmax if vmax > 0 and math.isfinite(vmax) else 1.0
    normalized = np.clip(np.nan_to_num(values / scale), 0.0, 1.0)
    image = Image.fromarray(np.round(normalized * 255).astype(np.uint8), mode="L").convert("P")
    # One byte per pixel: the colour map's 256 entries are the palette.
    palette = matplotlib.colormaps[colormap](np.linspace(0.0, 1.0, 256), bytes=True)[:, :3]
    image.putpalette(palette.ravel().tolist())
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def fit_png(payload: bytes, max_side: int) -> bytes | None:
    """``payload`` (a PNG) scaled down to at most ``max_side`` pixels; None if unreadable."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(payload)) as image:
            image.load()
            if max(image.size) <= max_side:
                return payload
            image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
            image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
            buffer = io.BytesIO()
            image.save(buffer, format="PNG", optimize=True)
            return buffer.getvalue()
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError):
        return None


def colormap_css(name: str = "inferno", stops: int = 6) -> str:
    """A CSS gradient of the heatmap colour map (the examples' colour bar)."""
    cmap = matplotlib.colormaps[name]
    return ", ".join(mcolors.to_hex(cmap(i / (stops - 1))) for i in range(stops))


def _bootstrap(values: np.ndarray, key: str) -> Estimate:
    return bootstrap_mean(values, key=key, resamples=500)


def class_rank_figure(robustness: pd.DataFrame, model: str, metric: str = "explanation_change_pct") -> Figure | None:
    """The eXIAA paper's Fig. 5: ``metric`` (mean over the grid, per image, then over images)
    against the source class's rank, a line per explainer; rank 1 (running-up) marked."""
    if robustness.empty or "source_class_rank" not in robustness.columns or metric not in robustness.columns:
        return None
    rows = robustness[(robustness["model"] == model) & robustness["source_class_rank"].notna()]
    rows = rows[rows.groupby("attack")["source_class_rank"].transform("nunique") > 1]
    if rows.empty:
        return None
    explainers = list(dict.fromkeys(rows["explainer"].astype(str)))
    palette = sns.color_palette("deep", n_colors=max(len(explainers), 1))
    with matplotlib.rc_context(STYLE):
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
        ax.set_ylabel(METRIC_TITLES.get(metric, metric))
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
    with matplotlib.rc_context(STYLE):
        fig, axes = _grid(1, len(params), 2.6, 2.5)
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
