"""What an explainer returns is checked at the runner's boundary, before anything scores it.

A map of the wrong shape would otherwise be broadcast, cropped or reshaped somewhere inside a
metric and scored as if it were an explanation (a half-size map was once ranked #1). So:

* wrong type, shape, dtype or device → :class:`ExplainerOutputError`, which fails the work
  unit with a message naming the explainer, the expected and the actual value;
* non-finite entries (NaN, ±inf) are *counted* per row (``nonfinite_fraction``); the rows
  that contain any get NaN metrics, and the leaderboard says how many rows it excluded and
  why. The metrics themselves are computed on a finite copy so one NaN never crashes a
  batch or leaks into another row;
* all-zero or constant maps are *recorded* per row (``degenerate_map``, see
  :mod:`xaibench.runner.degenerate`) and their rows get NaN metrics too, for the same reason.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


class ExplainerOutputError(ValueError):
    """An explainer returned something that is not an attribution map of its input."""


def check_attributions(attributions: object, inputs: Tensor, explainer: str) -> Tensor:
    """``attributions`` when it is a floating tensor with the shape and device of ``inputs``."""
    expected = tuple(inputs.shape)
    if not isinstance(attributions, Tensor):
        raise ExplainerOutputError(
            f"explainer {explainer!r} returned {type(attributions).__name__}, expected a tensor "
            f"of attributions with the input's shape {expected} (N×C×H×W)"
        )
    actual = tuple(attributions.shape)
    if actual != expected:
        raise ExplainerOutputError(
            f"explainer {explainer!r} returned attributions of shape {actual} for inputs of shape "
            f"{expected}; an explainer must return one value per input entry, shaped N×C×H×W like "
            "its input (upsample a low-resolution map and repeat it over the channels)"
        )
    if not attributions.is_floating_point():
        raise ExplainerOutputError(
            f"explainer {explainer!r} returned attributions of dtype {attributions.dtype}, expected a floating dtype"
        )
    if attributions.device != inputs.device:
        raise ExplainerOutputError(
            f"explainer {explainer!r} returned attributions on {attributions.device} for inputs on "
            f"{inputs.device}; return them on the input's device"
        )
    return attributions


def nonfinite_fraction(*maps: Tensor) -> Tensor:
    """Per row, the fraction of non-finite entries over all the given ``N×…`` maps (float64)."""
    bad = sum((~torch.isfinite(m)).flatten(1).sum(dim=1, dtype=torch.float64) for m in maps)
    size = sum(m[0].numel() for m in maps)
    return torch.as_tensor(bad, dtype=torch.float64) / max(size, 1)


def finite(attributions: Tensor) -> Tensor:
    """A copy with every non-finite entry set to 0 (the rows concerned are NaN'd afterwards)."""
    if bool(torch.isfinite(attributions).all()):
        return attributions
    return torch.where(torch.isfinite(attributions), attributions, torch.zeros_like(attributions))


def nan_where(values: Tensor, skip: Tensor) -> list[float]:
    """Metric values as floats, NaN on the rows with ``skip > 0``: their explanations had
    non-finite entries (a ``nonfinite_fraction``) or were degenerate (``degenerate.excluded``)."""
    values = values.detach().double().cpu()
    return torch.where(skip.to(values.device) > 0, torch.full_like(values, math.nan), values).tolist()
