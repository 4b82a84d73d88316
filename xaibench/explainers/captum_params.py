"""How a Captum attribution class's parameters become an explainer's suite parameters.

``captum.<Name>`` explainers (``captum_methods``) take the Captum constructor's parameters
(minus the model) and the ``attribute()`` keyword parameters (minus ``inputs`` and
``target``) as their own, typed so that a suite can give them: a module becomes its dotted
name (``layer = "layer4"``), a baseline a number, a window shape a list of integers. A
parameter a suite cannot give (a tensor mask, a callable, ``additional_forward_args``) keeps
Captum's default; a *required* one makes the class unusable (``adapt`` says why).
"""

from __future__ import annotations

import functools
import inspect
import re
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from captum.attr._utils.approximation_methods import SUPPORTED_METHODS
from torch import nn

_Kind = inspect.Parameter
_KEYWORD = _Kind.KEYWORD_ONLY

#: Suite types of the Captum parameters a suite may set (the defaults stay Captum's).
SETTABLE: dict[str, Any] = {
    # constructors
    "layer": str,  # a dotted module name, resolved on the model
    "multiply_by_inputs": bool,
    "eps": float,
    "memory_efficient": bool,
    # attribute()
    "baselines": float | None,  # a constant pixel value (pixel space is [0, 1])
    "layer_baselines": float | None,
    "n_steps": int,
    "method": Literal[tuple(SUPPORTED_METHODS)],  # type: ignore[misc]
    "internal_batch_size": int | None,
    "n_samples": int,
    "stdevs": float,
    "perturbations_per_eval": int,
    "sliding_window_shapes": list[int],
    "strides": int | list[int] | None,
    "attribute_to_layer_input": bool,
    "relu_attributions": bool,
    "abs": bool,
    "interpolate_mode": Literal["nearest", "bilinear", "bicubic", "area", "nearest-exact"],
}

#: Defaults where Captum has none (GradientShap's baseline distribution: one black image).
REQUIRED_DEFAULTS: dict[str, Any] = {"baselines": 0.0}

#: Captum parameters a suite cannot set, and why (Captum's default is used).
FIXED: dict[str, str] = {
    "model": "the classifier the runner hands the explainer",
    "forward_func": "the classifier the runner hands the explainer",
    "inputs": "the images",
    "target": "the explained class",
    "additional_forward_args": "the classifier takes images only",
    "device_ids": "DataParallel is not used",
    "return_convergence_delta": "used internally for the completeness gap",
    "custom_attribution_func": "a function",
    "grad_kwargs": "a dict of autograd options",
    "show_progress": "progress bars would flood the runner's log",
    "verbose": "progress output",
    "feature_mask": "a tensor; set patch_size instead",
    "layer_mask": "a tensor",
    "return_input_shape": "attributions must have the shape of the input",
    "attr_dim_summation": "the layer map must be summed over its channels",
    "interpretable_model": "an object (Captum's default surrogate model is used)",
    "similarity_func": "a function",
    "perturb_func": "a function",
    "perm_func": "a function",
}

#: Added to classes whose ``attribute()`` takes a ``feature_mask``.
PATCH_SIZE = _Kind(
    "patch_size", _KEYWORD, default=None, annotation=int | None
)  # square patches (all channels together) as the features; None: every value is a feature
#: Added to random classes: the per-image seeds come from it and the noise ids.
SEED = _Kind("seed", _KEYWORD, default=0, annotation=int)


class NotAdaptable(Exception):
    """A Captum class that cannot be an explainer; the message says why."""


def _simple(annotation: Any) -> Any | None:
    """``bool``/``int``/``float``/``str`` (or ``X | None`` of one) as a suite type, else ``None``."""
    if annotation in (bool, int, float, str):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(members) == 1 and members[0] in (bool, int, float, str):
            return members[0] | None
    return None


def suite_parameter(parameter: inspect.Parameter) -> inspect.Parameter | None:
    """The suite parameter for one Captum parameter; ``None`` when a suite cannot set it
    (Captum's default is used). Raises ``NotAdaptable`` for a required one it cannot give."""
    name, required = parameter.name, parameter.default is _Kind.empty
    if parameter.kind in (_Kind.VAR_POSITIONAL, _Kind.VAR_KEYWORD):
        return None
    if name in FIXED:
        if required and name not in ("model", "forward_func", "inputs", "target"):
            raise NotAdaptable(f"its required parameter {name!r} is {FIXED[name]}")
        return None
    annotation = SETTABLE.get(name) or _simple(parameter.annotation)
    if annotation is None:
        if required:
            raise NotAdaptable(f"its required parameter {name!r} cannot be given in a suite")
        return None
    default = parameter.default
    if required and name in REQUIRED_DEFAULTS:
        default = REQUIRED_DEFAULTS[name]
        annotation = type(default)
    if isinstance(default, tuple):  # a suite writes arrays
        default = list(default)
    return _Kind(name, _KEYWORD, default=default, annotation=annotation)


def suite_parameters(function: Any, skip: int) -> list[inspect.Parameter]:
    """The suite parameters of ``function`` (a Captum ``__init__`` or ``attribute``), after
    its first ``skip`` parameters (``self`` and the model, or ``self``)."""
    parameters = list(inspect.signature(function).parameters.values())[skip:]
    adapted = (suite_parameter(p) for p in parameters)
    return [p for p in adapted if p is not None]


def captum_value(value: Any) -> Any:
    """A suite value as Captum takes it: arrays become tuples."""
    return tuple(captum_value(v) for v in value) if isinstance(value, list) else value


def summary_of(cls: type) -> str:
    """The first sentence of a Captum class's docstring (no links), for ``xaibench list``."""
    paragraph = (inspect.getdoc(cls) or "").strip().split("\n\n")[0]
    text = " ".join(paragraph.split())
    text = re.split(r"\s*(?:https?://|`\S)", text)[0]
    sentence = re.split(r"(?<=[a-z0-9)])\.\s+(?=[A-Z])", text)[0].rstrip(" .:,")
    return sentence + "." if sentence else cls.__name__


# --------------------------------------------------------------------------------------
# Which Captum classes are offered
# --------------------------------------------------------------------------------------

PREFIX = "captum."

#: Captum classes that are not offered, and why (docs/explainers.md lists them).
SKIPPED: dict[str, str] = {
    "DeepLiftShap": "needs a distribution of at least two baseline images (a tensor); use deeplift_shap",
    "LayerDeepLiftShap": "needs a distribution of at least two baseline images (a tensor)",
    "FeaturePermutation": "permutes each feature across the images of a batch: an image's attributions "
    "depend on the images it is batched with, and a single image cannot be explained",
    "LayerFeaturePermutation": "permutes across the images of a batch (as FeaturePermutation)",
    "NoiseTunnel": "wraps another attribution object; use smoothgrad, sq_smoothgrad or input_x_smoothgrad",
    "LimeBase": "needs the interpretable-space transforms as functions; use captum.Lime or captum.KernelShap",
    "DataLoaderAttribution": "attributes a whole DataLoader, not a batch of images",
}

#: Methods that draw random numbers (permutations, samples, noise): seeded per image.
RANDOM = frozenset({"ShapleyValueSampling", "KernelShap", "Lime", "GradientShap", "LayerGradientShap"})
#: Exact Shapley values cost n·n! forward passes for n features: at most this many.
MAX_FEATURES: dict[str, int] = {"ShapleyValues": 8}


@dataclass(frozen=True)
class Adaptation:
    """How one Captum class becomes an explainer."""

    cls: type
    init: tuple[inspect.Parameter, ...]  # suite parameters of the constructor
    call: tuple[inspect.Parameter, ...]  # suite parameters of attribute()
    extra: tuple[inspect.Parameter, ...]  # patch_size, seed
    is_layer: bool
    has_delta: bool
    multiplies_by_inputs: bool


def _captum_classes() -> dict[str, type]:
    import captum.attr as attr
    from captum.attr._utils.attribution import Attribution

    found = {}
    for name in getattr(attr, "__all__", dir(attr)):
        obj = getattr(attr, name, None)
        if inspect.isclass(obj) and issubclass(obj, Attribution):
            found[name] = obj
    return found


def _rule_out(name: str, cls: type) -> str | None:
    """Why ``cls`` cannot be an explainer, by what it is."""
    from captum.attr._utils.attribution import NeuronAttribution

    if name in SKIPPED:
        return SKIPPED[name]
    if name.startswith(("LLM", "RemoteLLM")):
        return "attributes the text a language model generates"
    if cls.__module__ == "captum.attr._utils.attribution":
        return "is an abstract base class"
    if issubclass(cls, NeuronAttribution):
        return "attributes one neuron of a layer (a neuron_selector), not the score of a class"
    if "target" not in inspect.signature(cls.attribute).parameters:
        return "has no target: it explains no class (e.g. a layer's activations)"
    return None


def _probe(cls: type, init: Sequence[inspect.Parameter]) -> tuple[bool, bool]:
    """``multiplies_by_inputs`` and ``has_convergence_delta()`` of ``cls`` with Captum's
    default constructor arguments, read from an instance on a one-layer stand-in model."""
    stand_in = nn.Sequential(nn.Conv2d(1, 1, 1))
    kwargs = {"layer": stand_in[0]} if any(p.name == "layer" for p in init) else {}
    try:
        probe = cls(stand_in, **kwargs)
        return bool(probe.multiplies_by_inputs), bool(probe.has_convergence_delta())
    except Exception:  # a constructor that wants more than a model and a layer
        return False, False


@functools.cache
def adapt(name: str) -> Adaptation | str:
    """The adaptation of ``captum.attr.<name>``, or why it is not offered. ``KeyError`` if
    captum.attr has no attribution class of that name."""
    from captum.attr._utils.attribution import LayerAttribution

    cls = _captum_classes()[name]
    reason = _rule_out(name, cls)
    if reason:
        return reason
    try:
        init = suite_parameters(cls.__init__, skip=2)
        call = suite_parameters(cls.attribute, skip=2)
    except NotAdaptable as exc:
        return str(exc)
    extra = []
    if "feature_mask" in inspect.signature(cls.attribute).parameters:
        extra.append(PATCH_SIZE)
    if name in RANDOM:
        extra.append(SEED)
    multiplies, has_delta = _probe(cls, init)
    return Adaptation(
        cls, tuple(init), tuple(call), tuple(extra), issubclass(cls, LayerAttribution), has_delta, multiplies
    )


@functools.lru_cache(maxsize=1)
def offered() -> list[str]:
    """The Captum class names offered as ``captum.<Name>`` explainers."""
    return sorted(n for n in _captum_classes() if isinstance(adapt(n), Adaptation))


def skipped() -> dict[str, str]:
    """The Captum attribution classes not offered, with the reason."""
    return {n: r for n in sorted(_captum_classes()) if isinstance(r := adapt(n), str)}
