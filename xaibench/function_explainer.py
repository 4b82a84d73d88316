"""Explainers written as plain functions.

``@explainers.function("name")`` (``xaibench.registry.ExplainerRegistry.function``) turns
``fn(model, x01, target, **params) -> attributions`` into an ``Explainer`` subclass: its
parameters are ``fn``'s parameters after the first three (so ``xaibench list explainers``
shows them and suites are validated against their annotations), and ``explain`` calls ``fn``
with the classifier, the images, the targets and the explainer's parameters.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from .errors import ConfigError
from .types import Classifier, Explainer

_Kind = inspect.Parameter
_RUNTIME = ("noise_ids",)


def _evaluated_signature(fn: Callable[..., Any]) -> inspect.Signature:
    try:
        return inspect.signature(fn, eval_str=True)
    except Exception:  # an annotation that cannot be evaluated is shown as written
        return inspect.signature(fn)


def function_explainer(
    fn: Callable[..., Any],
    *,
    name: str | None = None,
    is_random: bool = False,
    multiplies_by_inputs: bool = False,
    needs_gradients: bool = True,
    title: str = "",
    summary: str = "",
) -> type[Explainer]:
    """An ``Explainer`` subclass that calls ``fn(classifier, x01, target, **params)``.

    ``fn`` takes the model, the ``N×C×H×W`` images in ``[0, 1]`` and the ``N`` targets
    (positionally), then its own parameters (with defaults, or required), and returns
    attributions with the shape of ``x01``. A ``noise_ids`` parameter is not a user
    parameter: ``explain`` passes the ids the runner gives a random explainer (one per
    image; see ``xaibench.types.explanation_seeds``). ``summary`` defaults to the first line
    of ``fn``'s docstring.
    """
    key = name or fn.__name__
    signature = _evaluated_signature(fn)
    parameters = list(signature.parameters.values())
    positional = (_Kind.POSITIONAL_ONLY, _Kind.POSITIONAL_OR_KEYWORD)
    if len(parameters) < 3 or any(p.kind not in positional for p in parameters[:3]):
        raise TypeError(
            f"explainer function {key!r} must take (model, x01, target, ...) as its first three "
            f"positional parameters; its signature is {signature}"
        )
    own: list[inspect.Parameter] = []
    for parameter in parameters[3:]:
        if parameter.name in _RUNTIME:
            continue
        if parameter.kind in (_Kind.POSITIONAL_ONLY, _Kind.VAR_POSITIONAL):
            raise TypeError(
                f"explainer function {key!r}: parameter {parameter.name!r} must be settable by "
                "keyword (a suite names it)"
            )
        own.append(parameter if parameter.kind is _Kind.VAR_KEYWORD else parameter.replace(kind=_Kind.KEYWORD_ONLY))
    takes_noise_ids = "noise_ids" in signature.parameters
    init_signature = inspect.Signature(
        [
            _Kind("self", _Kind.POSITIONAL_OR_KEYWORD),
            _Kind("classifier", _Kind.POSITIONAL_OR_KEYWORD, annotation=Classifier),
            *own,
        ]
    )
    doc_line = (inspect.getdoc(fn) or "").strip().splitlines()

    def __init__(self: Explainer, classifier: Classifier, **params: Any) -> None:
        try:
            bound = init_signature.bind(self, classifier, **params)
        except TypeError as exc:
            raise ConfigError(f"{key}: {exc}") from None
        bound.apply_defaults()
        values: dict[str, Any] = {}
        for parameter_name, value in list(bound.arguments.items())[2:]:
            if init_signature.parameters[parameter_name].kind is _Kind.VAR_KEYWORD:
                values.update(value)
            else:
                values[parameter_name] = value
        Explainer.__init__(self, classifier, **values)

    __init__.__signature__ = init_signature  # type: ignore[attr-defined]

    def explain(self: Explainer, x01: Tensor, target: Tensor, noise_ids: Sequence[str] | None = None) -> Tensor:
        extra = {"noise_ids": noise_ids} if takes_noise_ids else {}
        attributions = torch.as_tensor(fn(self.classifier, x01, target, **self.params, **extra))
        if tuple(attributions.shape) != tuple(x01.shape):
            raise ValueError(
                f"explainer function {key!r} returned attributions of shape {tuple(attributions.shape)} "
                f"for images of shape {tuple(x01.shape)}"
            )
        return attributions.detach().to(device=x01.device, dtype=torch.float32)

    namespace: dict[str, Any] = {
        "__init__": __init__,
        "explain": explain,
        "__doc__": fn.__doc__,
        "__module__": fn.__module__,
        "__qualname__": getattr(fn, "__qualname__", fn.__name__),
        "name": key,
        "title": title,
        "summary": summary or (doc_line[0] if doc_line else ""),
        "is_random": bool(is_random),
        "multiplies_by_inputs": bool(multiplies_by_inputs),
        "needs_gradients": bool(needs_gradients),
        "function": staticmethod(fn),
    }
    return type(fn.__name__, (Explainer,), namespace)


__all__ = ["function_explainer"]
