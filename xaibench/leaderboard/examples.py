"""The examples part of a suite's section: per model × explainer, a few originals with their
corrupted image (at the attack's grid point, shown by its recorded grid axes) and both
explanations, and the value of every robustness metric the row carries."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .grid import point_text
from .images import fit_png, heatmap_png
from .meta import AttackInfo, MetricInfo
from .slugs import slugify

EXAMPLE_SIDE = 128  # pixels: example images are shown at this size
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


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


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and pd.isna(value))


def _images(assets: Path, stem: str, record: pd.Series) -> list[dict[str, str]] | None:
    original, corrupted = (
        fit_png(payload, EXAMPLE_SIDE) if payload is not None else None
        for payload in (_png_bytes(record["original_png"]), _png_bytes(record["corrupted_png"]))
    )
    if original is None or corrupted is None:
        return None
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
        images.append(_put(assets, stem, heatmap_png(heat[0], vmax), "explanation (original)", "heatmap"))
        images.append(_put(assets, stem, heatmap_png(heat[1], vmax), "explanation (corrupted)", "heatmap"))
    return images


def metric_text(metric: MetricInfo, value: Any) -> str:
    """``"expl. change % 12.5"``: the metric's title and its value (– when missing)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not np.isfinite(number):
        return f"{metric.title} –"
    digits = metric.digits if metric.digits is not None else 3
    return f"{metric.title} {number:.{digits}f}"


def _view(record: pd.Series, info: AttackInfo, metrics: list[MetricInfo], images: list[dict[str, str]]) -> dict[str, Any]:
    point = {k: record[k] for k in info.point_axes if k in record and _present(record[k])}
    return {
        "model": str(record["model"]),
        "explainer": str(record["explainer"]),
        "image_id": str(record["image_id"]),
        "attack": info.title if info.label else "",
        "point": f"({point_text(point, info.axis_titles)})" if point else "",
        "values": [metric_text(m, record.get(m.label)) for m in metrics],
        "images": images,
    }


def _shown_attacks(suite: Any, frame: pd.DataFrame) -> list[str]:
    """The attacks whose examples are shown, in suite order: every attack but a baseline
    whose attack is present (its examples would repeat the same originals)."""
    present = suite.attack_order(frame["attack"].dropna()) if "attack" in frame.columns else []
    return suite.main_attacks(present)


def example_views(suite: Any, assets: Path, per_pair: int) -> list[dict[str, Any]]:
    """Up to ``per_pair`` originals per model × explainer × attack (one group of rows without
    an attack column)."""
    frame = suite.examples
    needed = {"model", "explainer", "image_id", "original_png", "corrupted_png"}
    if frame.empty or not needed <= set(frame.columns) or per_pair <= 0:
        return []
    frame = frame.assign(_attack=frame["attack"].fillna("").astype(str) if "attack" in frame.columns else "")
    attacks = _shown_attacks(suite, frame) or [""]
    frame = frame[frame["_attack"].isin(attacks)].sort_values("image_id", kind="stable")
    metrics = suite.plugins.robustness_metrics(frame.columns)
    views = []
    for (model, _explainer), rows in frame.groupby(["model", "explainer"], sort=False):
        for attack in attacks:
            info = suite.attack(attack) if attack else AttackInfo(label="", name="", title="")
            chosen = rows[rows["_attack"] == attack].drop_duplicates("image_id").head(per_pair)
            for _, record in chosen.iterrows():
                stem = slugify(suite.name, model, attack, record["image_id"], length=40)
                images = _images(assets, stem, record)
                if images is not None:
                    views.append(_view(record, info, metrics, images))
    return views
