"""Build the static leaderboard site: ``index.html`` plus ``assets/`` (SVG figures, PNG examples).

Every string from a suite, a plugin or a file name reaches the page through Jinja2's
autoescaping, and asset file names are slugs (ASCII, with a hash of the original name), so
a hostile name can neither inject markup nor escape the assets folder.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from jinja2 import Environment, StrictUndefined
from markupsafe import Markup

from .. import __version__
from ..errors import XaibenchError
from .aggregate import (
    COMPLETENESS_GAP_LIMIT,
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    Row,
    Table,
    attack_title,
    faithfulness_tables,
    grid_summary,
    point_text,
    robustness_tables,
)
from .load import RunInfo, SuiteResults, load_results
from .template import PAGE, SCRIPT, STYLE

DEFAULT_EXAMPLES = 3
EXAMPLE_SIDE = 128  # pixels: example images are shown at this size
_SLUG = re.compile(r"[^a-z0-9]+")
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def slugify(*parts: object, length: int = 48) -> str:
    """An ASCII file-name-safe slug of ``parts``, unique per input (short hash appended)."""
    raw = "\x1f".join(str(p) for p in parts)
    text = _SLUG.sub("-", raw.lower()).strip("-")[:length].strip("-") or "x"
    return f"{text}-{hashlib.sha256(raw.encode('utf-8')).hexdigest()[:8]}"


@dataclass
class TableView:
    anchor: str
    title: str
    caption: str
    columns: list[Any]
    rows: list[dict[str, Any]]
    notes: list[str]


@dataclass
class SuiteView:
    """What the template shows of one suite."""

    name: str
    anchor: str
    description: str
    counts: str
    notes: list[str]
    tables: list[TableView]
    figures: list[Any] = field(default_factory=list)
    examples: list[dict[str, Any]] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    weights: list[dict[str, str]] = field(default_factory=list)
    convergence: list[dict[str, str]] = field(default_factory=list)


@dataclass
class Leaderboard:
    """The aggregated leaderboard: per suite, its overview tables (before any rendering)."""

    suites: list[SuiteResults]
    tables: dict[str, list[Table]]
    seed: int
    resamples: int


def build_leaderboard(
    dirs: list[str | Path], *, seed: int = DEFAULT_SEED, resamples: int = DEFAULT_RESAMPLES
) -> Leaderboard:
    """Read the results folders and compute every overview table."""
    from .studies import ablation_tables, model_comparison_tables, sensitivity_tables

    suites = load_results(dirs)
    # A study's own table comes before the long per-explainer tables it summarises.
    tables = {
        suite.name: robustness_tables(suite, seed=seed, resamples=resamples)
        + sensitivity_tables(suite, seed=seed, resamples=resamples)
        + model_comparison_tables(suite, seed=seed, resamples=resamples)
        + faithfulness_tables(suite, seed=seed, resamples=resamples)
        + ablation_tables(suite, seed=seed, resamples=resamples)
        for suite in suites
    }
    return Leaderboard(suites=suites, tables=tables, seed=seed, resamples=resamples)


def _counts(suite: SuiteResults) -> str:
    frame = suite.robustness if not suite.robustness.empty else suite.faithfulness
    parts = []
    for column, word in (("model", "model"), ("explainer", "explainer"), ("image_id", "image")):
        if column in frame.columns:
            n = frame[column].nunique()
            parts.append(f"{n} {word}{'s' if n != 1 else ''}")
    parts.append(f"{len(suite.robustness)} robustness rows")
    if not suite.faithfulness.empty:
        parts.append(f"{len(suite.faithfulness)} faithfulness rows")
    dirs = sorted({run.results_dir for run in suite.runs})
    parts.append(f"from {len(dirs)} results folder{'s' if len(dirs) != 1 else ''}")
    return ", ".join(parts)


def _table_view(table: Table) -> TableView:
    return TableView(
        anchor=slugify(table.id, length=32), title=table.title, caption=table.caption,
        columns=table.columns, rows=[row if isinstance(row, Row) else Row(row) for row in table.rows],
        notes=table.notes,
    )


def _order(frame: pd.DataFrame, column: str) -> list[str]:
    return list(dict.fromkeys(frame[column].dropna().astype(str))) if column in frame.columns else []


def _figures(suite: SuiteResults, assets: Path, *, seed: int, resamples: int) -> list[Any]:
    from . import figures as fig_mod

    written: list[Any] = []

    def keep(fig: Any, kind: str, model: str, title: str, caption: str) -> None:
        if fig is None:
            return
        name = f"{slugify(suite.name, kind, model)}.svg"
        fig_mod.save(fig, assets / name)
        written.append(fig_mod.FigureFile(kind, title, caption, f"assets/{name}", model))

    robustness = suite.robustness
    if not robustness.empty and {"attack", "alpha", "topk"} <= set(robustness.columns):
        metrics = [m for m in fig_mod.LINE_METRICS if m in robustness.columns]
        grid = grid_summary(suite, metrics, seed=seed, resamples=resamples)
        attacks = _order(robustness, "attack")
        main = [a for a in attacks if not suite.is_baseline(a)]
        baselines = [a for a in attacks if suite.is_baseline(a)]
        explainers = _order(robustness, "explainer")
        for model in _order(robustness, "model"):
            keep(
                fig_mod.heatmap_figure(grid, model, main + baselines, explainers), "heatmap", model,
                f"{model}: α × top-k heatmaps",
                f"{model}: mean explanation change (%) at every α × top-k grid point, per attack and explainer.",
            )
            for metric, (label, paper) in fig_mod.LINE_METRICS.items():
                if metric not in grid.columns:
                    continue
                keep(
                    fig_mod.line_figure(grid, model, metric, main, baselines, explainers),
                    f"lines-{metric}", model, f"{model}: {label} vs top-k",
                    f"{model}: {label} against top-k, a line per α; "
                    + ", ".join(attack_title(a) for a in main) + " solid"
                    + (", " + ", ".join(attack_title(b) for b in baselines) + " dashed (baseline)" if baselines else "")
                    + f"; bands are 95 % bootstrap intervals over images (as {paper}).",
                )
        for model in _order(robustness, "model"):
            keep(
                fig_mod.class_rank_figure(robustness, model), "class-rank", model,
                f"{model}: injecting from each class",
                f"{model}: mean explanation change over the α × top-k grid against the rank of the "
                "class the attack images come from (as the eXIAA paper's Fig. 5); ★ = the running-up "
                "class; bands are 95 % bootstrap intervals over images.",
            )
    sensitivity = suite.sensitivity
    if not sensitivity.empty and "sweep" in sensitivity.columns:
        for sweep in _order(sensitivity, "sweep"):
            keep(
                fig_mod.sensitivity_figure(sensitivity, sweep), "sensitivity", sweep,
                f"{sweep}: sensitivity to its hyperparameters",
                f"{sweep}: SSIM between each setting's heatmap and the reference setting's, per "
                "swept value and model; bands are 95 % bootstrap intervals over images.",
            )
    faithfulness = suite.faithfulness
    if not faithfulness.empty and "curve" in faithfulness.columns:
        explainers = _order(faithfulness, "explainer")
        if not sensitivity.empty and {"param", "explainer"} <= set(sensitivity.columns):
            # A sweep's variants would bury the curves (dozens of lines): draw the references.
            variants = set(sensitivity.loc[sensitivity["param"].notna(), "explainer"].astype(str))
            explainers = [e for e in explainers if e not in variants]
        for model in _order(faithfulness, "model"):
            keep(
                fig_mod.curve_figure(faithfulness, model, explainers), "curves", model,
                f"{model}: faithfulness curves",
                f"{model}: mean perturbation curves per explainer (clean explanations); for MIF/LIF "
                "the first curve is solid and the second dashed.",
            )
    return written


def _png_bytes(value: Any) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = base64.b64decode(value, validate=True)
        except ValueError:
            return None
    data = bytes(value)
    return data if data.startswith(_PNG_MAGIC) else None


def _heatmap_array(values: Any, height: Any, width: Any) -> np.ndarray | None:
    try:
        array = np.asarray(values, dtype=np.float64)
        h, w = int(height), int(width)
    except (TypeError, ValueError):
        return None
    if h <= 0 or w <= 0 or array.size != h * w:
        return None
    return np.abs(array.reshape(h, w))


def _put(assets: Path, stem: str, payload: bytes, label: str, kind: str) -> dict[str, str]:
    """Write an example image, named by its content (an original shared by several
    explainers is stored once)."""
    name = f"{stem}-{kind}-{hashlib.sha256(payload).hexdigest()[:10]}.png"
    (assets / name).write_bytes(payload)
    return {"path": f"assets/{name}", "label": label}


def _examples(suite: SuiteResults, assets: Path, per_pair: int) -> list[dict[str, Any]]:
    from . import figures as fig_mod

    frame = suite.examples
    needed = {"model", "explainer", "image_id", "original_png", "corrupted_png"}
    if frame.empty or not needed <= set(frame.columns) or per_pair <= 0:
        return []
    frame = frame.copy()
    attack = frame["attack"].astype(str) if "attack" in frame.columns else pd.Series("", index=frame.index)
    # The attack before the baseline, then by image.
    frame["_baseline"] = attack.map(suite.is_baseline)
    frame = frame.sort_values(["_baseline", "image_id"], kind="stable")
    views = []
    for (model, explainer), rows in frame.groupby(["model", "explainer"], sort=False):
        for _, record in rows.drop_duplicates("image_id").head(per_pair).iterrows():
            original, corrupted = (
                fig_mod.fit_png(payload, EXAMPLE_SIDE) if payload is not None else None
                for payload in (_png_bytes(record["original_png"]), _png_bytes(record["corrupted_png"]))
            )
            if original is None or corrupted is None:
                continue
            stem = slugify(suite.name, model, record["image_id"], length=40)
            images = [
                _put(assets, stem, original, "original", "original"),
                _put(assets, stem, corrupted, "corrupted", "corrupted"),
            ]
            heat = [
                _heatmap_array(record.get(column), record.get("heatmap_height"), record.get("heatmap_width"))
                for column in ("heatmap_original", "heatmap_corrupted")
            ]
            if all(h is not None for h in heat):
                both = np.concatenate([h.ravel() for h in heat])
                both = both[np.isfinite(both)]
                vmax = float(np.quantile(both, 0.995)) if both.size else 1.0
                images.append(_put(assets, stem, fig_mod.heatmap_png(heat[0], vmax), "explanation (original)", "heatmap"))
                images.append(_put(assets, stem, fig_mod.heatmap_png(heat[1], vmax), "explanation (corrupted)", "heatmap"))
            point = {
                k: float(record[k]) for k in ("alpha", "topk")
                if k in record and record[k] is not None and not pd.isna(record[k])
            }
            change = record.get("explanation_change_pct")
            views.append({
                "model": str(model),
                "explainer": str(explainer),
                "image_id": str(record["image_id"]),
                "attack": attack_title(str(record.get("attack", ""))),
                "point": f"({point_text(point)})" if point else "",
                "change": "–" if change is None or pd.isna(change) else f"{float(change):.1f} %",
                "images": images,
            })
    return views


PACKAGES = ("xaibench", "torch", "captum", "timm", "numpy", "python")


def _when(started: str | None) -> str:
    if not started:
        return "unknown"
    try:
        moment = datetime.fromisoformat(str(started))
    except ValueError:
        return str(started)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S") + (" UTC" if moment.tzinfo is not None else "")


def _run_view(run: RunInfo) -> dict[str, Any]:
    env = run.environment
    device = str(env.get("device", "unknown"))
    if env.get("device_name") and env.get("device_name") != env.get("device"):
        device += f" ({env['device_name']})"
    return {
        "results_dir": run.results_dir,
        "run_id": run.run_id,
        "started": _when(run.started),
        "suite_source": run.suite_source or "unknown",
        "seed": "unknown" if run.seed is None else str(run.seed),
        "device": device,
        "packages": ", ".join(f"{p} {env[p]}" for p in PACKAGES if env.get(p)),
        "git": str(env.get("git_revision") or "–")[:12],
        "rows": run.rows,
        "environment": {str(k): str(v) for k, v in env.items()},
        "from_manifest": run.from_manifest,
    }


def _weights(runs: list[RunInfo]) -> list[dict[str, str]]:
    """Where each model's weights came from, once per (model, source), with the runs."""
    found: dict[tuple[str, str], list[str]] = {}
    for run in runs:
        for model, source in run.models.items():
            found.setdefault((model, source or "unknown"), []).append(run.run_id)
    several = len({run.run_id for run in runs}) > 1
    return [
        {"model": model, "source": source, "runs": ", ".join(ids) if several else ""}
        for (model, source), ids in found.items()
    ]


def _number(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "–" if value is None else str(value)
    if isinstance(value, float):
        return f"{value:.3g}" if np.isfinite(value) else "–"
    return str(value)


_CONVERGENCE_SHOWN = {"model", "explainer", "gate", "param", "requested", "chosen", "trials", "converged", "median_gap"}


def _convergence(runs: list[RunInfo]) -> list[dict[str, str]]:
    """The manifests' ``convergence`` records (the steps chosen per model × explainer and
    the median completeness gap measured), one line each."""
    several = len({run.run_id for run in runs}) > 1
    out = []
    for run in runs:
        for record in run.convergence:
            trials = [t for t in record.get("trials") or [] if isinstance(t, dict)]
            param = record.get("param")
            setting = "–"
            if param and ("chosen" in record or "requested" in record):
                requested, chosen = record.get("requested"), record.get("chosen", record.get("requested"))
                setting = (
                    f"{param} = {_number(chosen)}" if requested in (None, chosen)
                    else f"{param}: {_number(requested)} → {_number(chosen)}"
                )
            gap = record.get("median_gap", trials[-1].get("median_gap") if trials else None)
            converged = record.get("converged")
            details = [
                f"{key} = {_number(value)}" for key, value in record.items()
                if key not in _CONVERGENCE_SHOWN and not isinstance(value, dict | list)
            ]
            if len(trials) > 1:
                details.append("tried: " + ", ".join(
                    " ".join(f"{k} {_number(v)}" for k, v in t.items()) for t in trials
                ))
            out.append({
                "model": str(record.get("model", "")),
                "explainer": str(record.get("explainer", "")),
                "setting": setting,
                "gap": _number(gap),
                "gate": _number(record.get("gate")),
                "converged": "–" if converged is None else ("yes" if converged else "no: shown greyed, not ranked"),
                "details": "; ".join(details),
                "run": run.run_id if several else "",
            })
    return out


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode() + "'"


def render_html(views: list[SuiteView], *, title: str, seed: int, resamples: int) -> str:
    from .figures import colormap_css

    style = STYLE.replace("%(colormap)s", colormap_css())
    csp = (
        "default-src 'none'; img-src 'self' data:; "
        f"style-src {_csp_hash(style)}; script-src {_csp_hash(SCRIPT)}; "
        "base-uri 'none'; form-action 'none'"
    )
    env = Environment(autoescape=True, undefined=StrictUndefined, keep_trailing_newline=True)
    template = env.from_string(PAGE)
    return template.render(
        suites=views,
        title=title,
        csp=csp,
        style=Markup(style),
        script=Markup(SCRIPT),
        version=__version__,
        built=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        seed=seed,
        resamples=resamples,
        gap_limit=COMPLETENESS_GAP_LIMIT,
    )


def _clean_assets(assets: Path, keep: set[str]) -> None:
    """Remove figures and images a previous build left behind (only ours: *.svg, *.png)."""
    for path in assets.iterdir():
        if path.is_file() and path.suffix in (".svg", ".png") and path.name not in keep:
            path.unlink()


def build_site(
    dirs: list[str | Path],
    out: str | Path,
    *,
    seed: int = DEFAULT_SEED,
    resamples: int = DEFAULT_RESAMPLES,
    examples: int = DEFAULT_EXAMPLES,
    title: str = "xaibench leaderboard",
) -> Path:
    """Write ``out/index.html`` and ``out/assets/``; return the path of ``index.html``."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise XaibenchError(f"--out {str(out)!r} is a file; the site needs a folder")
    board = build_leaderboard(dirs, seed=seed, resamples=resamples)
    assets = out / "assets"
    assets.mkdir(parents=True, exist_ok=True)
    views = []
    anchors: set[str] = set()
    for suite in board.suites:
        anchor = slugify("suite", suite.name, length=32)
        anchors.add(anchor)
        views.append(SuiteView(
            name=suite.name,
            anchor=anchor,
            description=suite.description,
            counts=_counts(suite),
            notes=suite.notes,
            tables=[_table_view(t) for t in board.tables[suite.name]],
            figures=_figures(suite, assets, seed=seed, resamples=resamples),
            examples=_examples(suite, assets, examples),
            runs=[_run_view(run) for run in suite.runs],
            weights=_weights(suite.runs),
            convergence=_convergence(suite.runs),
        ))
    written = {Path(f.path).name for v in views for f in v.figures}
    written |= {Path(i["path"]).name for v in views for e in v.examples for i in e["images"]}
    _clean_assets(assets, written)
    html = render_html(views, title=title, seed=seed, resamples=resamples)
    index = out / "index.html"
    index.write_text(html, encoding="utf-8")
    return index


def site_size(out: str | Path) -> int:
    """Bytes of every file under ``out``."""
    return sum(p.stat().st_size for p in Path(out).rglob("*") if p.is_file())

