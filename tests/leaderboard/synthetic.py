"""Small synthetic results folders matching docs/results.md (all three tables + manifests)."""

from __future__ import annotations

import hashlib
import io
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
    pq.write_table(pa.Table.from_pylist(rows), folder / f"part-{unit}.parquet")


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
) -> Path:
    """Write a results folder with the three tables and a manifest."""
    rng = np.random.default_rng(seed)
    reference = {"alpha": 0.1, "topk": 0.2} if reference is None else reference
    point = reference or {"alpha": max(ALPHAS), "topk": max(TOPKS)}
    run_id = f"20260101T000000Z-{seed:06d}"
    for model in models:
        for explainer in explainers:
            unit = hashlib.sha256(f"{suite}|{model}|{explainer}|{seed}".encode()).hexdigest()[:16]
            provenance = {
                "run_id": run_id, "unit_id": unit, "seed": seed, "dataset": "synthetic",
                "model_name": model, "pretrained_source": f"synthetic weights of {model}",
                "explainer_name": explainer, "device": "cpu", "xaibench_version": "0.1.0",
                "torch_version": "2.0", "captum_version": "0.9.0",
            }
            robustness, faith, example_rows = [], [], []
            for i in range(images):
                image_id = f"img:{image_offset + i}"
                gap = GAPS.get(explainer, 0.02)
                gap = gap * (1 + 0.1 * rng.standard_normal()) if not math.isnan(gap) else math.nan
                for attack, strength in (("exiaa", 1.0), ("gaussian_noise", 0.4)):
                    for alpha in ALPHAS:
                        for topk in TOPKS:
                            for rank in (0, 1):
                                change = FRAGILITY.get(explainer, 1.5) * strength * 100 * alpha * topk
                                robustness.append({
                                    "image_id": image_id, "label": i % 3, "predicted_class": i % 3,
                                    "predicted_prob": 0.9, "predicted_class_corrupted": i % 3,
                                    "attack": attack, "attack_params": "{}", "alpha": alpha,
                                    "topk": topk, "attack_image_rank": rank,
                                    "attack_image_id": f"img:{100 + rank}",
                                    "explanation_change_pct": change * (1 + 0.2 * rng.standard_normal()),
                                    "ssim": 1 - alpha * topk * strength * (1 + 0.1 * rng.random()),
                                    "confidence_drop_pct": 10 * alpha * topk * strength * rng.random(),
                                    "prediction_flipped": 0.0,
                                    "completeness_gap": gap, "completeness_gap_corrupted": gap,
                                    **provenance,
                                })
                for on in ("clean", "attacked"):
                    for metric, (higher, names) in FAITHFULNESS.items():
                        quality = 1.0 / FRAGILITY.get(explainer, 1.5)
                        score = (quality if higher else 1 - quality) + 0.05 * rng.standard_normal()
                        x = np.linspace(0, 1, 11)
                        curve = (np.exp(-3 * x * quality) if names[0] else None)
                        faith.append({
                            "image_id": image_id, "label": i % 3, "predicted_class": i % 3,
                            "on": on,
                            "attack": "exiaa" if on == "attacked" else None,
                            "alpha": point["alpha"] if on == "attacked" else None,
                            "topk": point["topk"] if on == "attacked" else None,
                            "attack_image_id": "img:100" if on == "attacked" else None,
                            "metric": metric, "metric_params": "{}", "higher_is_better": higher,
                            "score": float(score),
                            "curve": curve.tolist() if curve is not None else None,
                            "curve2": (curve * 0.5).tolist() if names[1] else None,
                            "curve_x": x.tolist() if curve is not None else None,
                            "curve_name": names[0], "curve2_name": names[1],
                            **provenance,
                        })
                if i < 2:
                    heat = rng.random((8, 8)).astype(np.float32)
                    example_rows.append({
                        "image_id": image_id, "attack": "exiaa", "alpha": point["alpha"],
                        "topk": point["topk"], "attack_image_id": "img:100",
                        "explanation_change_pct": 12.5,
                        "original_png": _png(rng), "corrupted_png": _png(rng),
                        "heatmap_original": heat.ravel().tolist(),
                        "heatmap_corrupted": (heat[::-1]).ravel().tolist(),
                        "heatmap_height": 8, "heatmap_width": 8, **provenance,
                    })
            _write(out, "robustness", suite, model, explainer, unit, robustness, encode_folders)
            if faithfulness:
                _write(out, "faithfulness", suite, model, explainer, unit, faith, encode_folders)
            if examples:
                _write(out, "examples", suite, model, explainer, unit, example_rows, encode_folders)
    if manifest:
        payload = {
            "run_id": run_id,
            "started": "2026-01-01T00:00:00+00:00",
            "suite": {
                "suite": {"name": suite, "description": description, "seed": seed, "reference": reference},
                "models": [{"name": m, "label": m} for m in models],
                "explainers": [{"name": e, "label": e} for e in explainers],
                "attacks": [
                    {"name": "exiaa", "label": "exiaa", "alphas": list(ALPHAS), "topks": list(TOPKS)},
                    {"name": "gaussian_noise", "label": "gaussian_noise", "alphas": list(ALPHAS), "topks": list(TOPKS)},
                ],
                "source": f"suites/{suite}.toml",
            },
            "environment": {"xaibench": "0.1.0", "torch": "2.0", "device": "cpu", "device_name": "cpu"},
            "models": {m: {"pretrained_source": f"synthetic weights of {m}"} for m in models},
        }
        (out / "runs").mkdir(parents=True, exist_ok=True)
        for path in (out / "manifest.json", out / "runs" / f"{run_id}.json"):
            path.write_text(json.dumps(payload), encoding="utf-8")
    return out
