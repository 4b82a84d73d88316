"""Rows of the hyperparameter-sensitivity study (seed 004): each setting of a swept explainer
against the sweep's reference setting, on the same images and target classes."""

from __future__ import annotations

import json
from typing import Any

import torch
from torch import Tensor

from .. import registry
from .model_access import ModelAccess
from .plan import explainer_params
from .suite import PluginSpec


def sensitivity_heatmap(attributions: Tensor) -> Tensor:
    """``N×1×H×W`` in ``[0, 1]``: ``Σ_c |a_c|`` divided by the image's maximum (0 stays 0).

    The heatmap the hyperparameter-sensitivity suite compares with SSIM (seed 004 compares
    heatmaps as images; the absolute value makes signed and unsigned settings comparable).
    """
    heat = attributions.detach().abs().sum(dim=1, keepdim=True).to(torch.float64)
    peak = heat.flatten(1).amax(dim=1).view(-1, 1, 1, 1)
    return torch.where(peak > 0, heat / peak.clamp_min(torch.finfo(torch.float64).tiny), 0.0)


def _reference(unit: Any, res: Any, batch: Any, clean: Tensor, predicted: Tensor) -> Tensor:
    """The reference setting's explanations of the batch: this unit's own when it *is* the
    reference, else from the process cache, else computed here (with the same noise)."""
    sweep = unit.explainer.sweep
    suite = res.suite
    reference_spec = PluginSpec("explainers", unit.explainer.name, dict(sweep["reference"]), sweep["sweep"])
    params = explainer_params(reference_spec, suite.seed)
    key = json.dumps(
        [unit.model.key(), unit.explainer.name, params, suite.precision, list(batch.ids), predicted.tolist()],
        sort_keys=True, default=str,
    )
    if sweep["param"] is None:
        res.references.put(key, clean)
        return clean
    cached = res.references.get(key)
    if cached is not None:
        return cached
    classifier = res.classifier(unit.model)
    explainer = registry.explainers.get(unit.explainer.name)(classifier, **params)
    access = ModelAccess(
        classifier, explainer, res.device, res.chunk_sizes,
        model_label=unit.model.label, explainer_label=sweep["sweep"], precision=suite.precision,
    )
    reference = access.explain(batch.pixels, predicted, list(batch.ids))  # the same noise as `clean`
    res.references.put(key, reference)
    return reference


def sensitivity_rows(unit: Any, res: Any, batch: Any, clean: Tensor, predicted: Tensor) -> dict[str, list[Any]]:
    """One row per image of a swept explainer: its heatmap against the sweep's reference
    setting (SSIM of ``sensitivity_heatmap``s, Spearman correlation of the raw attributions)."""
    from ..metrics.robustness import RankCorrelation
    from ..metrics.ssim import ssim

    sweep = unit.explainer.sweep
    count = len(batch)
    reference = _reference(unit, res, batch, clean, predicted)
    similarity = ssim(sensitivity_heatmap(reference), sensitivity_heatmap(clean))
    correlation = RankCorrelation()(expl_original=reference, expl_corrupted=clean)
    return {
        "image_id": list(batch.ids),
        "label": [int(v) for v in batch.labels],
        "predicted_class": [int(v) for v in predicted.tolist()],
        "sweep": [sweep["sweep"]] * count,
        "param": [sweep["param"]] * count,
        "value": [None if sweep["param"] is None else json.dumps(sweep["value"])] * count,
        "reference_params": [json.dumps(sweep["reference"], sort_keys=True)] * count,
        "ssim_to_reference": similarity.double().cpu().tolist(),
        "rank_correlation_to_reference": correlation.double().cpu().tolist(),
    }
