"""Converged or flagged: an explainer's steps chosen per model so its numbers mean something.

IG with too few steps is not IG: on EfficientNet-Lite0 16 Gauss–Legendre steps leave a median
relative completeness gap of 158 % (``|Σa − (f(x) − f(b))| / |f(x) − f(b)|``). A suite entry
``max_completeness_gap = g`` asks the runner to choose the explainer's ``convergence_param``
(declared by the explainer; IG: ``n_steps``) per model: starting from the suite's value, it
doubles it until the median gap over the model's first batch (the originals of its first work
unit, at most ``SAMPLE_IMAGES``) is ≤ g, or until
``MAX_DOUBLINGS`` doublings. The choice is made once, before any unit, on the same images for
every executor; it is cached under ``OUT/_cache``, recorded in the manifest
(``convergence``) and lands in every row's ``explainer_params``; the gate itself is a row
column (``max_completeness_gap``). Rows whose explainer still misses the gate are shown,
greyed, and not ranked by the leaderboard.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .. import registry
from ..files import write_json
from ..hashing import stable_hash
from ..types import Classifier

#: At most this many doublings (16 steps → 512).
MAX_DOUBLINGS = 5
#: The median is taken over the model's first work unit's originals (the first batch), at
#: most this many; the leaderboard then checks the gate on every image.
SAMPLE_IMAGES = 8


def median_gap(explainer: Any, classifier: Classifier, x01: Tensor, precision: str = "fp32") -> float:
    """The median relative completeness gap of ``explainer`` on ``x01`` for the predicted class."""
    device = x01.device
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
        with torch.no_grad():
            target = classifier(x01).argmax(dim=1)
        attributions = explainer.explain(x01, target)
        gap = explainer.completeness_gap(x01, target, attributions)
    if gap is None:
        return math.nan
    values = gap.detach().double().cpu()
    values = values[torch.isfinite(values)]
    # The median as the leaderboard takes it: the mean of the two middle values for an even
    # count (torch.median would return the lower one and pass a gate the rows then miss).
    return float(values.quantile(0.5)) if values.numel() else math.nan


def choose(
    classifier: Classifier,
    name: str,
    params: dict[str, Any],
    gate: float,
    x01: Tensor,
    *,
    precision: str = "fp32",
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(params with the chosen value, record)``; ``params`` unchanged when the explainer
    declares no ``convergence_param`` (the gate then only decides the ranking)."""
    explainer_cls = registry.explainers.get(name)
    param = getattr(explainer_cls, "convergence_param", None)
    record: dict[str, Any] = {"gate": gate, "param": param, "trials": [], "converged": False}
    if param is None:
        gap = median_gap(explainer_cls(classifier, **params), classifier, x01, precision)
        record["trials"].append({"median_gap": gap})
        record["converged"] = math.isfinite(gap) and gap <= gate
        return dict(params), record
    defaults = {p.name: p.default for p in registry.explainers.params(name)}
    value = int(params.get(param, defaults.get(param)))
    record["requested"] = value
    for doubling in range(MAX_DOUBLINGS + 1):
        trial = {**params, param: value}
        gap = median_gap(explainer_cls(classifier, **trial), classifier, x01, precision)
        record["trials"].append({param: value, "median_gap": gap})
        if math.isfinite(gap) and gap <= gate:
            record["converged"] = True
            break
        if doubling < MAX_DOUBLINGS:
            value *= 2
    record["chosen"] = value
    return {**params, param: value}, record


def choose_cached(
    out: Path,
    classifier: Classifier,
    name: str,
    params: dict[str, Any],
    gate: float,
    x01: Tensor,
    identity: dict[str, Any],
    *,
    precision: str = "fp32",
) -> tuple[dict[str, Any], dict[str, Any]]:
    """:func:`choose`, remembered in ``OUT/_cache`` so a resumed run (or a Ray worker) reuses
    the choice instead of measuring again; ``identity`` names what the choice depends on."""
    key = {**identity, "name": name, "params": params, "gate": gate, "precision": precision}
    digest = stable_hash(key)
    path = out / "_cache" / f"convergence-{digest}.json"
    if path.is_file():
        try:
            stored = json.loads(path.read_text())
            return stored["params"], stored["record"]
        except (OSError, ValueError, KeyError, TypeError):
            pass  # unreadable or damaged: measure again (and overwrite it)
    chosen, record = choose(classifier, name, params, gate, x01, precision=precision)
    write_json(path, {"params": chosen, "record": record})
    return chosen, record


def converge(
    res: Any, model: Any, spec: Any, params: dict[str, Any], suite: Any, out: Path, results_format: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The parameters of ``spec`` (an explainer with ``max_completeness_gap``) with its
    convergence parameter chosen on the first batch of ``model`` (``res``: the run's
    ``Resources``), cached in ``OUT/_cache`` under the results format."""
    # The first batch: the originals of the model's first unit (the leaderboard checks all).
    originals = res.originals(model)
    sample = res.dataset(model).load(originals[: min(suite.images_per_unit, SAMPLE_IMAGES)])
    identity = {"model": model.key(), "images": list(sample.ids), "format": results_format}
    return choose_cached(
        out, res.classifier(model), spec.name, params, float(spec.max_completeness_gap),
        sample.pixels.to(res.device), identity, precision=suite.precision,
    )
