"""Small synthetic results folders matching docs/results.md (all three tables + manifests).

By default a folder is what this xaibench's runner writes (results format 3): rows carry
their ``suite`` / ``model`` / ``explainer`` labels and ``attack_name`` in the files, and the
manifests a ``plugins`` block with each plugin's recorded metadata. ``recorded=False`` writes
the older format (no metadata, labels only in the folder names) for the fallback tests.

Besides the built-in plugins, a third-party attack (``patches``, two grid axes of its own)
(and ``blur`` with one axis, ``tiles`` with three) and a third-party robustness metric
(``mymetric``) can be written, declared only here.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import math
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from xaibench.leaderboard.meta import PluginMeta
from xaibench.runner.results import partition_value

ALPHAS = (0.05, 0.1)
TOPKS = (0.1, 0.2, 0.5)
# Per explainer: how fragile it is, and its completeness gap (NaN: no completeness).
FRAGILITY = {"saliency": 3.0, "integrated_gradients": 1.0, "deeplift": 2.0}
GAPS = {"saliency": math.nan, "integrated_gradients": 0.01, "deeplift": 0.41}
FAITHFULNESS = {  # metric: (higher_is_better, curve names)
    "insertion": (True, ("insertion", None)),
    "deletion": (False, ("deletion", None)),
    "infidelity": (False, (None, None)),
    "mif_lif_area": (True, ("mif", "lif")),
}

# What each plugin declares (the metadata the runner records for it).
ATTACKS: dict[str, dict[str, Any]] = {
    "exiaa": {
        "title": "eXIAA", "summary": "injects parts of another class's images",
        "axes": {"alpha": ALPHAS, "topk": TOPKS}, "axis_titles": {"alpha": "α", "topk": "top-k"},
        "baseline_of": None, "strength": 1.0, "scale": 1.0,
    },
    "gaussian_noise": {
        "title": "Gaussian noise", "summary": "noise of the same size",
        "axes": {"alpha": ALPHAS, "topk": TOPKS}, "axis_titles": {"alpha": "α", "topk": "top-k"},
        "baseline_of": "exiaa", "strength": 0.4, "scale": 1.0,
    },
    # A third-party attack: a two-axis grid of its own, no axis titles declared.
    "patches": {
        "title": "Patches", "summary": "pastes square patches",
        "axes": {"patch_size": (4, 8), "n_patches": (1, 2, 3)}, "axis_titles": {},
        "baseline_of": None, "strength": 0.7, "scale": 0.01,
    },
    # Third-party attacks with one grid axis and with three.
    "blur": {
        "title": "Blur", "summary": "blurs the image", "axes": {"sigma": (0.5, 1.0, 2.0)}, "axis_titles": {"sigma": "σ"},
        "baseline_of": None, "strength": 0.5, "scale": 0.1,
    },
    "tiles": {
        "title": "Tiles", "summary": "rotated tiles", "axes": {"size": (2, 4), "count": (1, 2), "angle": (0, 90)},
        "axis_titles": {}, "baseline_of": None, "strength": 0.5, "scale": 0.001,
    },
}
ROBUSTNESS: dict[str, dict[str, Any]] = {
    "explanation_change_pct": {
        "title": "expl. change %", "summary": "mean change of the explanation, % of the original's",
        "higher_is_better": False, "unit": "%", "range": [0, None], "digits": 1,
        "needs": ["expl_original", "expl_corrupted"],
    },
    "ssim": {
        "title": "SSIM", "summary": "SSIM between the original and the corrupted image",
        "higher_is_better": True, "unit": "", "range": [-1, 1], "digits": 3, "needs": ["original", "corrupted"],
    },
    "confidence_drop_pct": {
        "title": "conf. drop pp", "summary": "drop of the predicted class's probability",
        "higher_is_better": False, "unit": "pp", "range": [0, 100], "digits": 2,
        "needs": ["probs_original", "probs_corrupted"],
    },
    "prediction_flipped": {
        "title": "flipped", "summary": "1 where the prediction changed", "higher_is_better": False,
        "unit": "", "range": [0, 1], "digits": None, "needs": ["probs_original", "probs_corrupted"],
    },
    # A third-party robustness metric.
    "mymetric": {
        "title": "my metric", "summary": "a similarity of the two explanations", "higher_is_better": True,
        "unit": "", "range": [0, 1], "digits": 2, "needs": ["expl_original", "expl_corrupted"],
    },
}
BUILTIN_ROBUSTNESS = ("explanation_change_pct", "ssim", "confidence_drop_pct", "prediction_flipped")
FAITHFULNESS_TITLES = {"insertion": "insertion", "deletion": "deletion", "infidelity": "INFD", "mif_lif_area": "MIF−LIF area"}
EXPLAINERS: dict[str, dict[str, Any]] = {
    "saliency": {"title": "Saliency", "has_completeness": False, "convergence_param": None, "params": {"abs": True}},
    "integrated_gradients": {"title": "Integrated Gradients", "has_completeness": True,
                             "convergence_param": "n_steps", "params": {"n_steps": 16, "baseline": 0.0}},
    "deeplift": {"title": "DeepLIFT", "has_completeness": True, "convergence_param": None, "params": {}},
}
EXAMPLE_VALUES = {"explanation_change_pct": 12.5, "ssim": 0.981, "confidence_drop_pct": 1.5,
                  "prediction_flipped": 0.0, "mymetric": 0.75}


def _folder(value: str, encode: bool) -> str:
    # The runner writes partition_value(label). Hive folder values are percent-decoded by the
    # reader, so encoding instead lets a test put any character (even "/") into a value.
    return urllib.parse.quote(value, safe="") if encode else partition_value(value)


def _png(rng: np.random.Generator, side: int = 16) -> bytes:
    pixels = (rng.random((side, side, 3)) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _write(out: Path, table: str | None, suite: str, model: str, explainer: str, unit: str,
           rows: list[dict[str, Any]], encode: bool) -> None:
    folder = out / table if table else out
    folder = (
        folder / f"suite={_folder(suite, encode)}" / f"model={_folder(model, encode)}"
        / f"explainer={_folder(explainer, encode)}"
    )
    folder.mkdir(parents=True, exist_ok=True)
    # Rows of different attacks differ in columns: every row gets the union (None elsewhere).
    columns = list(dict.fromkeys(key for row in rows for key in row))
    rows = [{key: row.get(key) for key in columns} for row in rows]
    pq.write_table(pa.Table.from_pylist(rows), folder / f"part-{unit}.parquet")


def grid_points(attack: str) -> list[dict[str, Any]]:
    axes = ATTACKS[attack]["axes"]
    return [dict(zip(axes, values, strict=True)) for values in itertools.product(*axes.values())]


def reference_point(attack: str, reference: dict[str, float] | None) -> dict[str, Any]:
    """The suite's reference on the axes it names, else the largest grid point."""
    axes = ATTACKS[attack]["axes"]
    return {axis: (reference or {}).get(axis, max(values)) for axis, values in axes.items()}


def plugins_block(
    *, attacks: Sequence[str] = ("exiaa", "gaussian_noise"), metrics: Sequence[str] = BUILTIN_ROBUSTNESS,
    explainers: Sequence[str] = ("saliency", "integrated_gradients", "deeplift"),
    models: Sequence[str] = ("tiny_cnn",), reference: dict[str, float] | None = None,
    faithfulness: bool = True,
) -> dict[str, Any]:
    """The manifest's ``plugins`` block as the runner records it (docs/results.md)."""
    def common(kind: str, label: str, name: str, params: dict[str, Any]) -> dict[str, Any]:
        return {"kind": kind, "label": label, "name": name, "params": params, "distribution": "synthetic",
                "version": "0.0.1"}

    block: dict[str, Any] = {kind: {} for kind in ("attacks", "metrics", "explainers", "models")}
    for label in attacks:
        spec = ATTACKS[label]
        block["attacks"][label] = {
            **common("attacks", label, label, {k + "s": list(v) for k, v in spec["axes"].items()}),
            "title": spec["title"], "summary": spec["summary"], "grid_axes": list(spec["axes"]),
            "grid": grid_points(label), "reference": reference_point(label, reference),
            "baseline_of": spec["baseline_of"], "black_box": True, "needs_pool": True,
            **({"axis_titles": spec["axis_titles"]} if spec["axis_titles"] else {}),
        }
    for label in metrics:
        block["metrics"][label] = {**common("metrics", label, label, {}), "category": "robustness", **ROBUSTNESS[label]}
    for label, (higher, _) in FAITHFULNESS.items() if faithfulness else ():
        block["metrics"][label] = {
            **common("metrics", label, label, {}), "title": FAITHFULNESS_TITLES[label], "summary": "",
            "category": "faithfulness", "higher_is_better": higher, "unit": "", "range": [None, None], "digits": None,
        }
    for label in explainers:
        spec = EXPLAINERS.get(label, {"title": label, "has_completeness": False, "convergence_param": None, "params": {}})
        block["explainers"][label] = {**common("explainers", label, label, spec["params"]), "summary": "",
                                      "is_random": False, **{k: v for k, v in spec.items() if k != "params"}}
    for label in models:
        block["models"][label] = common("models", label, label, {})
    return block


def plugin_meta(**kwargs: Any) -> PluginMeta:
    """The leaderboard's view of ``plugins_block(**kwargs)`` (for hand-built SuiteResults)."""
    return PluginMeta.from_manifests([{"plugins": plugins_block(**kwargs)}])


def _robustness_rows(rng: np.random.Generator, image_id: str, i: int, explainer: str, gap: float,
                     attacks: Sequence[str], metrics: Sequence[str], extra: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for attack in attacks:
        spec = ATTACKS[attack]
        for point in grid_points(attack):
            level = math.prod(point.values()) * spec["scale"]
            for rank in (0, 1):
                change = FRAGILITY.get(explainer, 1.5) * spec["strength"] * 100 * level
                values = {
                    "explanation_change_pct": change * (1 + 0.2 * rng.standard_normal()),
                    "ssim": 1 - level * spec["strength"] * (1 + 0.1 * rng.random()),
                    "confidence_drop_pct": 10 * level * spec["strength"] * rng.random(),
                    "prediction_flipped": 0.0,
                }
                values["mymetric"] = 1 - min(1.0, values["explanation_change_pct"] / 100)
                rows.append({
                    "image_id": image_id, "label": i % 3, "predicted_class": i % 3,
                    "predicted_prob": 0.9, "predicted_class_corrupted": i % 3,
                    "attack": attack, "attack_params": "{}", **point, "attack_image_rank": rank,
                    "attack_image_id": f"img:{100 + rank}",
                    **{m: values[m] for m in metrics},
                    "completeness_gap": gap, "completeness_gap_corrupted": gap,
                    **extra,
                })
    return rows


def _faithfulness_rows(rng: np.random.Generator, image_id: str, i: int, explainer: str, attack: str,
                       point: dict[str, Any], extra: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for on in ("clean", "attacked"):
        for metric, (higher, names) in FAITHFULNESS.items():
            quality = 1.0 / FRAGILITY.get(explainer, 1.5)
            score = (quality if higher else 1 - quality) + 0.05 * rng.standard_normal()
            x = np.linspace(0, 1, 11)
            curve = (np.exp(-3 * x * quality) if names[0] else None)
            rows.append({
                "image_id": image_id, "label": i % 3, "predicted_class": i % 3, "on": on,
                "attack": attack if on == "attacked" else None,
                **{axis: value if on == "attacked" else None for axis, value in point.items()},
                "attack_image_id": "img:100" if on == "attacked" else None,
                "metric": metric, "metric_params": "{}", "higher_is_better": higher,
                "score": float(score),
                "curve": curve.tolist() if curve is not None else None,
                "curve2": (curve * 0.5).tolist() if names[1] else None,
                "curve_x": x.tolist() if curve is not None else None,
                "curve_name": names[0], "curve2_name": names[1],
                **extra,
            })
    return rows


def _example_row(rng: np.random.Generator, image_id: str, attack: str, point: dict[str, Any],
                 metrics: Sequence[str], extra: dict[str, Any]) -> dict[str, Any]:
    heat = rng.random((8, 8)).astype(np.float32)
    return {
        "image_id": image_id, "attack": attack, **point, "attack_image_id": "img:100",
        **{m: EXAMPLE_VALUES[m] for m in metrics},
        "original_png": _png(rng), "corrupted_png": _png(rng),
        "heatmap_original": heat.ravel().tolist(),
        "heatmap_corrupted": (heat[::-1]).ravel().tolist(),
        "heatmap_height": 8, "heatmap_width": 8, **extra,
    }


def _manifest(run_id: str, suite: str, description: str, seed: int, reference: dict[str, float],
              models: Sequence[str], explainers: Sequence[str], attacks: Sequence[str],
              metrics: Sequence[str], plugins: dict[str, Any] | None) -> dict[str, Any]:
    payload = {
        "run_id": run_id,
        "started": "2026-01-01T00:00:00+00:00",
        "suite": {
            "suite": {"name": suite, "description": description, "seed": seed, "reference": reference},
            "models": [{"name": m, "label": m} for m in models],
            "explainers": [{"name": e, "label": e} for e in explainers],
            "attacks": [
                {"name": a, "label": a, **{k + "s": list(v) for k, v in ATTACKS[a]["axes"].items()}}
                for a in attacks
            ],
            "metrics": [{"name": m, "label": m} for m in [*metrics, *FAITHFULNESS]],
            "source": f"suites/{suite}.toml",
        },
        "environment": {"xaibench": "0.1.0", "torch": "2.0", "device": "cpu", "device_name": "cpu"},
        "models": {m: {"pretrained_source": f"synthetic weights of {m}"} for m in models},
    }
    if plugins is not None:
        payload["plugins"] = plugins
    return payload


def write_results(
    out: Path,
    *,
    suite: str = "synthetic",
    models: Sequence[str] = ("tiny_cnn",),
    explainers: Sequence[str] = ("saliency", "integrated_gradients", "deeplift"),
    images: int = 5,
    seed: int = 0,
    image_offset: int = 0,
    faithfulness: bool = True,
    examples: bool = True,
    manifest: bool = True,
    reference: dict[str, float] | None = None,
    description: str = "a synthetic suite for the leaderboard tests",
    encode_folders: bool = False,
    attacks: Sequence[str] = ("exiaa", "gaussian_noise"),
    metrics: Sequence[str] = BUILTIN_ROBUSTNESS,
    recorded: bool = True,
) -> Path:
    """Write a results folder with the three tables and a manifest. Faithfulness rows on
    attacked images are of ``attacks[0]`` at its reference point; examples of every attack."""
    rng = np.random.default_rng(seed)
    reference = {"alpha": 0.1, "topk": 0.2} if reference is None else reference
    point = reference_point(attacks[0], reference)
    run_id = f"20260101T000000Z-{seed:06d}"
    for model in models:
        for explainer in explainers:
            unit = hashlib.sha256(f"{suite}|{model}|{explainer}|{seed}".encode()).hexdigest()[:16]
            extra = {
                "run_id": run_id, "unit_id": unit, "seed": seed, "dataset": "synthetic",
                "model_name": model, "pretrained_source": f"synthetic weights of {model}",
                "explainer_name": explainer, "device": "cpu", "xaibench_version": "0.1.0",
                "torch_version": "2.0", "captum_version": "0.9.0",
            }
            labelled = {"suite": suite, "model": model, "explainer": explainer} if recorded else {}
            robustness, faith, example_rows = [], [], []
            for i in range(images):
                image_id = f"img:{image_offset + i}"
                gap = GAPS.get(explainer, 0.02)
                gap = gap * (1 + 0.1 * rng.standard_normal()) if not math.isnan(gap) else math.nan
                robustness += [
                    {**row, **({"attack_name": row["attack"]} if recorded else {}), **labelled}
                    for row in _robustness_rows(rng, image_id, i, explainer, gap, attacks, metrics, extra)
                ]
                faith += _faithfulness_rows(rng, image_id, i, explainer, attacks[0], point, {**extra, **labelled})
                if i < 2:  # as the runner: the first images' examples, per attack at its reference
                    example_rows += [
                        _example_row(rng, image_id, attack, reference_point(attack, reference), metrics,
                                     {**extra, **labelled, **({"attack_name": attack} if recorded else {})})
                        for attack in attacks
                    ]
            _write(out, "robustness", suite, model, explainer, unit, robustness, encode_folders)
            if faithfulness:
                _write(out, "faithfulness", suite, model, explainer, unit, faith, encode_folders)
            if examples:
                _write(out, "examples", suite, model, explainer, unit, example_rows, encode_folders)
    if manifest:
        plugins = plugins_block(
            attacks=attacks, metrics=metrics, explainers=explainers, models=models, reference=reference,
        ) if recorded else None
        payload = _manifest(run_id, suite, description, seed, reference, models, explainers, attacks, metrics, plugins)
        (out / "runs").mkdir(parents=True, exist_ok=True)
        for path in (out / "manifest.json", out / "runs" / f"{run_id}.json"):
            path.write_text(json.dumps(payload), encoding="utf-8")
    return out
