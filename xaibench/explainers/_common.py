"""Shared plumbing for the Captum-backed explainers: input preparation, output hygiene, gaps."""

from __future__ import annotations

import functools
import inspect
import types
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import ConfigError

#: Denominator floor of the relative completeness gap (logit units).
GAP_EPS = 1e-6


def check_choice(owner: str, what: str, value: Any, choices: Sequence[Any]) -> None:
    """``ConfigError`` naming the valid values when ``value`` is not one of ``choices``."""
    if not any(type(value) is type(choice) and value == choice for choice in choices):
        raise ConfigError(f"{owner}: unknown {what} {value!r}; valid: {', '.join(map(str, choices))}")


@functools.lru_cache(maxsize=64)
def _declared_types(function: Callable[..., Any]) -> dict[str, Any]:
    parameters = inspect.signature(function, eval_str=True).parameters
    return {name: p.annotation for name, p in parameters.items()}


def _cast(value: Any, annotation: Any) -> Any:
    if isinstance(annotation, types.UnionType):  # ``int | None``: cast to the one other type
        members = [a for a in annotation.__args__ if a is not type(None)]
        if value is None and len(members) < len(annotation.__args__):
            return None
        annotation = members[0] if len(members) == 1 else None
    return annotation(value) if annotation in (int, float, bool) else value


def cast_params(owner: str, function: Callable[..., Any], values: dict[str, Any]) -> dict[str, Any]:
    """``values`` (a constructor's arguments) cast to the types ``function`` declares:
    ``int``, ``float`` and ``bool`` parameters (and their ``| None`` forms) become exactly
    that type, the rest stay as given. A value that cannot be cast is a ``ConfigError``."""
    declared = _declared_types(function)
    cast = {}
    for name, value in values.items():
        try:
            cast[name] = _cast(value, declared.get(name))
        except (TypeError, ValueError):
            raise ConfigError(f"{owner}: {name} must be a number, got {value!r}") from None
    return cast


def model_device_dtype(classifier: nn.Module) -> tuple[torch.device, torch.dtype]:
    """Where the classifier's weights live, so inputs can follow them."""
    for tensor in (*classifier.parameters(), *classifier.buffers()):
        if tensor.is_floating_point():
            return tensor.device, tensor.dtype
    return torch.device("cpu"), torch.float32


def prepare(classifier: nn.Module, x01: Tensor, target: Tensor | int) -> tuple[Tensor, Tensor]:
    """Detached inputs on the model's device and one ``long`` target per image.

    Attribution needs ``eval()``: DeepLIFT runs inputs and baselines through one forward, so
    train-mode BatchNorm would mix them, and dropout would make every method random.
    """
    if x01.ndim != 4:
        raise ValueError(f"explainers take N×C×H×W images, got shape {tuple(x01.shape)}")
    if classifier.training:
        classifier.eval()
    device, dtype = model_device_dtype(classifier)
    # detach(): Captum flips requires_grad on the tensor it is given; never on the caller's.
    x = x01.detach().to(device=device, dtype=dtype)
    return x, as_targets(target, x.shape[0], device)


def as_targets(target: Tensor | int, n: int, device: torch.device) -> Tensor:
    """``target`` as a length-``n`` ``long`` tensor (a scalar is broadcast)."""
    t = torch.as_tensor(target, dtype=torch.long, device=device).reshape(-1)
    if t.numel() == 1 and n != 1:
        t = t.expand(n)
    if t.numel() != n:
        raise ValueError(f"expected one target per image ({n}), got {t.numel()}")
    return t.contiguous()


def finish(attributions: Tensor, like: Tensor) -> Tensor:
    """Detached float32 attributions on the caller's device, with the caller's shape."""
    return attributions.detach().to(device=like.device, dtype=torch.float32).reshape(like.shape)


@contextmanager
def quiet_captum() -> Iterator[None]:
    """Silence Captum's per-call notices, which say nothing about our (controlled) usage."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Input Tensor .* did not already require")
        warnings.filterwarnings("ignore", message="Setting forward, backward hooks")
        yield


def target_logits(classifier: nn.Module, x: Tensor, target: Tensor) -> Tensor:
    """``f(x)[i, target_i]`` under ``no_grad``."""
    with torch.no_grad():
        logits = classifier(x)
    return logits.gather(1, target.view(-1, 1)).squeeze(1)


def relative_gap(attributions: Tensor, delta: Tensor) -> Tensor:
    """``|Σa − Δ| / max(|Δ|, eps)`` per image, as float32 on ``attributions``' device."""
    total = attributions.detach().double().flatten(1).sum(1)
    delta = delta.detach().double().to(total.device)
    gap = (total - delta).abs() / delta.abs().clamp_min(GAP_EPS)
    return gap.float()
