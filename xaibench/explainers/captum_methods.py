"""Any Captum attribution method by name: ``captum.GuidedBackprop``, ``captum.LayerGradCam``, …

A provider (``xaibench.providers``) on the explainer registry turns ``captum.<Name>`` into an
``Explainer`` subclass on first use. Its parameters are the Captum constructor's (minus the
model; ``layer`` as a dotted module name) and ``attribute()``'s keyword parameters (minus
``inputs`` and ``target``), typed for suites with Captum's defaults (``captum_params``).
Capabilities come from Captum: ``multiplies_by_inputs`` from the method's property,
completeness where it has a convergence delta, ``needs_gradients`` from its base class.
Layer methods' maps are summed over the layer's channels, upsampled bilinearly to the image
and repeated over its channels. Sampling methods run one image at a time under a seed from
``explanation_seeds`` (common random numbers), with the global RNGs restored afterwards.
"""

from __future__ import annotations

import inspect
import random
import warnings
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from ..errors import ConfigError, UnknownPluginError
from ..providers import Provider
from ..registry import ParamSpec, closest, explainers
from ..types import Classifier, Explainer, explanation_seeds
from ._common import finish, prepare, quiet_captum, relative_gap, target_logits
from .captum_layers import FeatureCount, layer_map_to_image, patch_mask, resolve_layer
from .captum_params import (
    MAX_FEATURES,
    PREFIX,
    RANDOM,
    Adaptation,
    adapt,
    captum_value,
    offered,
    skipped,
    summary_of,
)


def _unknown(name: str) -> UnknownPluginError:
    names = offered()
    lowered = {n.lower(): n for n in names}
    close = lowered.get(name.lower()) or closest(name, names)
    hint = f" Did you mean {PREFIX + close!r}?" if close else ""
    return UnknownPluginError(
        f"unknown explainer {PREFIX + name!r}: captum.attr has no attribution method {name!r}.{hint} "
        f"Captum methods: {', '.join(PREFIX + n for n in names)}."
    )


def build(name: str) -> type[Explainer]:
    """The explainer class for ``captum.<name>`` (the provider's ``build``)."""
    try:
        adaptation = adapt(name)
    except KeyError:
        raise _unknown(name) from None
    if isinstance(adaptation, str):
        raise UnknownPluginError(f"{PREFIX + name!r} cannot be used as an explainer: it {adaptation}.")
    return explainer_class(name, adaptation)


# --------------------------------------------------------------------------------------
# The explainers
# --------------------------------------------------------------------------------------


class CaptumExplainer(Explainer):
    """A Captum attribution method; subclasses (one per method) come from ``explainer_class``."""

    captum_class: ClassVar[type]
    adaptation: ClassVar[Adaptation]
    is_layer: ClassVar[bool] = False
    #: ``attribute()`` needs its baselines as a tensor (GradientShap's distribution).
    baseline_tensor: ClassVar[bool] = False

    def __init__(self, classifier: Classifier, **params: Any):
        super().__init__(classifier, **params)
        a = self.adaptation
        values = self._checked(params)
        init = {p.name: captum_value(values[p.name]) for p in a.init}
        if "layer" in init:
            init["layer"] = resolve_layer(classifier, values["layer"], self.name)
        self.call_kwargs = {p.name: captum_value(values[p.name]) for p in a.call}
        self.patch_size = values.get("patch_size")
        self.seed = int(values.get("seed", 0))
        self._check_sizes(classifier)
        self.captum = self.captum_class(classifier, **init)
        # Instance values: multiply_by_inputs = false changes both.
        self.multiplies_by_inputs = bool(self.captum.multiplies_by_inputs)
        self.has_completeness = a.has_delta and not a.is_layer and self.multiplies_by_inputs

    def _checked(self, params: dict[str, Any]) -> dict[str, Any]:
        """``params`` checked against the declared types and converted (``3.0`` → ``3``)."""
        a, values = self.adaptation, {}
        for p in (*a.init, *a.call, *a.extra):
            spec = ParamSpec(p.name, p.default, p.annotation)
            try:
                values[p.name] = spec.convert(params[p.name])
            except ValueError as exc:
                raise ConfigError(f"{self.name}: parameter {p.name!r} {exc}") from None
        if values.get("patch_size") is not None and values["patch_size"] < 1:
            raise ConfigError(f"{self.name}: patch_size must be ≥ 1 (pixels) or left out")
        return values

    def _check_sizes(self, classifier: Classifier) -> None:
        """Occlusion windows and exact Shapley feature counts against the model's images."""
        size = getattr(classifier, "input_size", None)
        if size is None:
            return
        shape = (int(getattr(classifier, "in_channels", 3)), *map(int, size))
        window = self.call_kwargs.get("sliding_window_shapes")
        fits = window is None or (len(window) == 3 and all(1 <= w <= d for w, d in zip(window, shape, strict=True)))
        if not fits:
            raise ConfigError(
                f"{self.name}: sliding_window_shapes {list(window)} does not fit the model's "
                f"{'×'.join(map(str, shape))} images (give channels, height, width)"
            )
        limit = MAX_FEATURES.get(self.captum_class.__name__)
        count = FeatureCount(*shape).count(self.patch_size)
        if limit is not None and count > limit:
            raise ConfigError(
                f"{self.name}: exact Shapley values need n·n! forward passes; {count} features "
                f"(patch_size = {self.patch_size}) is more than {limit}. Set a larger patch_size "
                "or use captum.ShapleyValueSampling"
            )

    @classmethod
    def incompatibility(cls, classifier: Classifier) -> str | None:
        """LRP needs a rule for every leaf module; Captum has them for conv, linear, pooling,
        batch norm, ReLU, tanh and dropout only."""
        from captum.attr import LRP
        from captum.attr._core.lrp import SUPPORTED_LAYERS_WITH_RULES, SUPPORTED_NON_LINEAR_LAYERS

        if not issubclass(cls.captum_class, LRP):
            return None
        known = (*SUPPORTED_LAYERS_WITH_RULES, *SUPPORTED_NON_LINEAR_LAYERS)
        leaves = [m for m in classifier.modules() if next(m.children(), None) is None]
        missing = sorted({type(m).__name__ for m in leaves if type(m) not in known and not hasattr(m, "rule")})
        return f"Captum's LRP has no rule for {', '.join(missing)}" if missing else None

    def _kwargs(self, x: Tensor) -> dict[str, Any]:
        kwargs = dict(self.call_kwargs)
        if "baselines" in kwargs and self.baseline_tensor:  # a distribution of one image
            kwargs["baselines"] = torch.full_like(x[:1], float(kwargs["baselines"]))
        if self.patch_size is not None:
            kwargs["feature_mask"] = patch_mask(x, int(self.patch_size))
        if kwargs.get("internal_batch_size") is not None:  # Captum asserts ≥ the batch
            kwargs["internal_batch_size"] = max(int(kwargs["internal_batch_size"]), x.shape[0])
        return kwargs

    def attribute(self, x: Tensor, t: Tensor) -> Tensor:
        """Captum's attributions of ``x`` (prepared) for ``t``, shaped like ``x``."""
        if self.needs_gradients:
            x = x.detach().requires_grad_(True)  # layer hooks need a graph without weight gradients
        with quiet_captum(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Setting backward hooks on ReLU")
            attributions = self.captum.attribute(x, target=t, **self._kwargs(x))
        if self.is_layer:
            attributions = layer_map_to_image(attributions, x, getattr(self.classifier, "model", None))
        return attributions.detach()

    def _seeded(self, x: Tensor, t: Tensor, seed: int) -> Tensor:
        """``attribute`` with torch (CPU and ``x``'s GPU), NumPy and ``random`` seeded from
        ``seed``; the global states are restored afterwards."""
        devices = []
        if x.device.type == "cuda":
            devices = [x.device.index if x.device.index is not None else torch.cuda.current_device()]
        numpy_state, python_state = np.random.get_state(), random.getstate()
        try:
            with torch.random.fork_rng(devices=devices):
                torch.default_generator.manual_seed(seed)
                for device in devices:
                    torch.cuda.default_generators[device].manual_seed(seed)
                np.random.seed(seed % 2**32)
                random.seed(seed)
                return self.attribute(x, t)
        finally:
            np.random.set_state(numpy_state)
            random.setstate(python_state)

    def explain(self, x01: Tensor, target: Tensor, noise_ids: Sequence[str] | None = None) -> Tensor:
        x, t = prepare(self.classifier, x01, target)
        if not self.is_random:
            return finish(self.attribute(x, t), x01)
        seeds = explanation_seeds(x01, t.cpu(), self.seed, noise_ids)
        parts = [self._seeded(x[i : i + 1], t[i : i + 1], seed) for i, seed in enumerate(seeds)]
        return finish(torch.cat(parts), x01)

    def completeness_gap(
        self, x01: Tensor, target: Tensor, attributions: Tensor, logits: Tensor | None = None
    ) -> Tensor | None:
        """``|Σa − (f(x) − f(b))| / |f(x) − f(b)|`` per image (``f(b) = 0`` without a
        baseline: LRP conserves ``f(x)``); ``None`` for a method without completeness."""
        if not self.has_completeness:
            return None
        x, t = prepare(self.classifier, x01, target)
        if logits is None:
            delta = target_logits(self.classifier, x, t)
        else:
            delta = logits.detach().to(x.device).gather(1, t.view(-1, 1)).squeeze(1)
        if self.uses_baseline:
            baseline = torch.full_like(x, float(self.call_kwargs.get("baselines") or 0.0))
            delta = delta - target_logits(self.classifier, baseline, t)
        return relative_gap(attributions, delta).to(x01.device)


def _signature(a: Adaptation) -> inspect.Signature:
    seen: dict[str, inspect.Parameter] = {}
    for p in (*a.init, *a.call, *a.extra):
        seen.setdefault(p.name, p)
    return inspect.Signature(
        [
            inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD),
            inspect.Parameter("classifier", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Classifier),
            *seen.values(),
        ]
    )


def _capabilities(name: str, a: Adaptation) -> dict[str, Any]:
    from captum.attr._utils.attribution import GradientAttribution

    calls = {p.name: p for p in a.call}
    completeness = a.has_delta and not a.is_layer and a.multiplies_by_inputs
    steps = next((n for n in ("n_steps", "n_samples") if n in calls), None)
    return {
        "needs_gradients": issubclass(a.cls, GradientAttribution),
        "uses_baseline": "baselines" in calls or "layer_baselines" in calls,
        "is_random": name in RANDOM,
        "multiplies_by_inputs": a.multiplies_by_inputs,
        "has_completeness": completeness,
        "convergence_param": steps if completeness else None,
        "reuses_logits": completeness,
    }


def explainer_class(name: str, a: Adaptation) -> type[CaptumExplainer]:
    """A ``CaptumExplainer`` subclass for ``captum.attr.<name>`` with a typed signature."""
    signature = _signature(a)
    key = PREFIX + name

    def __init__(self: CaptumExplainer, classifier: Classifier, **params: Any) -> None:
        try:
            bound = signature.bind(self, classifier, **params)
        except TypeError as exc:
            raise ConfigError(f"{key}: {exc}") from None
        bound.apply_defaults()
        CaptumExplainer.__init__(self, classifier, **dict(list(bound.arguments.items())[2:]))

    __init__.__signature__ = signature  # type: ignore[attr-defined]
    namespace: dict[str, Any] = {
        "__init__": __init__,
        "__doc__": f"Captum's ``{name}`` as an explainer.\n\n{inspect.getdoc(a.cls) or ''}",
        "__module__": __name__,
        "name": key,
        "title": name,
        "summary": summary_of(a.cls),
        "captum_class": a.cls,
        "adaptation": a,
        "is_layer": a.is_layer,
        "baseline_tensor": any(
            p.name == "baselines" and p.default is inspect.Parameter.empty
            for p in inspect.signature(a.cls.attribute).parameters.values()
        ),
        **_capabilities(name, a),
    }
    return type(f"Captum{name}", (CaptumExplainer,), namespace)


PROVIDER = Provider(prefix=PREFIX, distribution="captum", extra="", offered=offered, build=build)
explainers.add_provider(PROVIDER)

__all__ = ["PROVIDER", "CaptumExplainer", "adapt", "build", "explainer_class", "offered", "skipped"]
