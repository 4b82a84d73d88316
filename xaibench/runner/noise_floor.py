"""The explainer's own noise floor: how much a random explainer's map moves between two
independent draws on the same clean image. An attack effect inside it cannot be told from the
explainer's randomness (docs/explainers.md, "Randomness")."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .degenerate import map_kinds
from .outputs import finite, nan_where, nonfinite_fraction


def compares_explanations(metric: Any) -> bool:
    """Whether a robustness metric compares two explanations (it then has a noise floor)."""
    needs = set(getattr(metric, "needs", ()))
    return {"expl_original", "expl_corrupted"} <= needs


def noise_floors(
    access: Any,
    metrics: list[tuple[Any, Any]],
    ids: list[str],
    pixels: Tensor,
    predicted: Tensor,
    probs: Tensor,
    clean: Tensor,
) -> dict[str, list[float]]:
    """Per robustness metric label (``metrics``: ``(metric, spec)`` pairs) that compares two
    explanations, one value per original: the metric between the clean explanation and a second
    one of the same image drawn with an independent random stream (``"<id>#independent"``).
    ``access`` is the unit's ``ModelAccess``. Empty for deterministic explainers (a random one
    declares ``is_random`` and takes ``noise_ids``).
    """
    if not access.is_random:
        return {}
    chosen = [(m, s) for m, s in metrics if compares_explanations(m)]
    if not chosen:
        return {}
    independent = access.explain(pixels, predicted, [f"{i}#independent" for i in ids])
    bad = nonfinite_fraction(independent) + nonfinite_fraction(clean)  # no floor from a broken map
    flat = [bool(a or b) for a, b in zip(map_kinds(clean), map_kinds(independent), strict=True)]  # nor a degenerate one
    bad = bad.cpu() + torch.tensor(flat, dtype=torch.float64)
    tensors = {
        "original": pixels, "corrupted": pixels, "expl_original": finite(clean),
        "expl_corrupted": finite(independent), "probs_original": probs, "probs_corrupted": probs,
    }
    return {spec.label: nan_where(metric(**{n: tensors[n] for n in metric.needs}), bad) for metric, spec in chosen}
