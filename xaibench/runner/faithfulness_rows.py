"""Faithfulness rows: each faithfulness metric scores a set of explanations of the unit."""

from __future__ import annotations

import json
from typing import Any

from torch import Tensor

from ..types import id_seeds
from . import degenerate
from .outputs import finite, nan_where, nonfinite_fraction


def is_faithfulness(metric: Any) -> bool:
    return getattr(metric, "category", "") == "faithfulness" and hasattr(metric, "evaluate")


def _curve(result: Any, names: list[str], index: int, count: int) -> list[Any]:
    if len(names) <= index:
        return [None] * count
    return [row.tolist() for row in result.curves[names[index]].float()]


def _resolved(spec: Any, record: dict[str, Any] | None) -> str:
    """Every resolved parameter (defaults too: which INFD perturbation, …), as recorded."""
    params = (record or {}).get("params", spec.params)
    return json.dumps(params, sort_keys=True, default=str)


def score(run: Any, x01: Tensor, attributions: Tensor, target: Tensor, image_rows: list[int],
          extra: dict[str, list[Any]]) -> None:
    """Add one faithfulness row per image and metric to ``run.tables``.

    ``image_rows``: the original (row of ``run.batch``) each image is or was made from; the
    metric's own random draws follow the original, so clean and attacked rows share them.
    """
    batch = run.batch
    seeds = id_seeds([batch.ids[i] for i in image_rows], run.suite.seed)
    bad = nonfinite_fraction(attributions)
    labels = degenerate.map_kinds(attributions)  # "" on rows with non-finite entries
    skip = degenerate.excluded(bad, labels)
    attributions = finite(attributions)
    count = x01.shape[0]
    for metric, spec in run.faithfulness:
        result = metric.evaluate(
            run.access.logits,
            x01,
            attributions,
            target,
            seeds=seeds,
            chunk_size=run.access.sizes.get(run.access.forward_key),
            multiplies_by_inputs=bool(getattr(run.explainer, "multiplies_by_inputs", False)),
        )
        names = list(result.curves)
        run.tables.add("faithfulness", {
            "image_id": [batch.ids[i] for i in image_rows],
            "label": [int(batch.labels[i]) for i in image_rows],
            "predicted_class": [int(t) for t in target.tolist()],
            **extra,
            "metric": [spec.label] * count,
            "metric_name": [spec.name] * count,
            "metric_params": [_resolved(spec, run.plugins["metrics"].get(spec.label))] * count,
            "higher_is_better": [bool(metric.higher_is_better)] * count,
            "score": nan_where(result.scores, skip),
            "nonfinite_fraction": bad.tolist(),
            degenerate.COLUMN: labels,
            "curve_name": [names[0] if names else None] * count,
            "curve": _curve(result, names, 0, count),
            "curve2_name": [names[1] if len(names) > 1 else None] * count,
            "curve2": _curve(result, names, 1, count),
            "curve_x": [result.curve_x.float().tolist() if result.curve_x is not None else None] * count,
            "metric_forward_images": [result.forward_images / max(count, 1)] * count,
        })


def score_clean(run: Any) -> None:
    """Faithfulness of the clean explanations of the unit's originals."""
    count = len(run.batch)
    extra = {"on": ["clean"] * count, "attack": [None] * count, "attack_name": [None] * count}
    score(run, run.batch.pixels, run.clean, run.predicted, list(range(count)), extra)
