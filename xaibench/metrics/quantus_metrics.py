"""Quantus metrics by name: ``[[metrics]] name = "quantus.Sparseness"`` in a suite.

A provider on ``registry.metrics`` turns ``quantus.<Name>`` into a ``FaithfulnessMetric`` on
first use, importing Quantus only then (it takes seconds). Which metrics are adapted, and why
the others are not, is in ``quantus_catalog``; the conventions are in ``docs/metrics.md
§ Quantus metrics by name``. In short:

* The suite sets the Quantus constructor's parameters that are plain values (numbers,
  strings, lists, booleans), plus ``softmax`` (a ``__call__`` argument of Quantus, its
  default kept). Callables (``perturb_func``, ``similarity_func``, …) keep Quantus's defaults.
* Each call gets the runner's images, attributions and targets as numpy (``channel_first``),
  and the model as an ``nn.Module`` around the runner's ``forward`` (chunked, counted).
* ``normalise`` is applied by the adapter to each image alone: Quantus 0.6 divides all the
  attributions of one call by a single maximum, which makes a score depend on the batch.
* Metrics that draw from ``np.random`` are called one image at a time, with the global
  numpy RNG seeded from the image's seed and restored afterwards; the others get the whole
  batch in Quantus batches of ``chunk_size`` images.
"""

from __future__ import annotations

import inspect
import math
import typing
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import ConfigError, UnknownPluginError
from ..providers import Provider
from ..registry import closest, metrics
from ..types import FaithfulnessMetric, FaithfulnessResult
from .quantus_catalog import (
    ADAPTED,
    ANNOTATIONS,
    NOT_SETTABLE,
    POSITIVE,
    RANDOM_BASELINES,
    SKIPPED,
    Adapted,
)
from .quantus_support import PERTURB_FIXES, ForwardModule, normalise_by_max, quantus_state, snake

PREFIX = "quantus."


class QuantusMetric(FaithfulnessMetric):
    """A Quantus metric scoring each image's explanation (``quantus_metrics`` builds one
    subclass per adapted name; its ``__init__`` signature lists the settable parameters)."""

    category = "faithfulness"  # what the runner and the leaderboard score per image
    quantus_name: ClassVar[str]
    quantus_class: ClassVar[type]
    quantus_category: ClassVar[str]  # Quantus's own category (faithfulness, complexity, axiomatic)
    spec: ClassVar[Adapted]
    declared: ClassVar[tuple[inspect.Parameter, ...]]

    def __init__(self, **given: Any) -> None:
        defaults = {p.name: p.default for p in self.declared}
        unknown = sorted(set(given) - set(defaults))
        if unknown:
            raise TypeError(f"unknown parameters {unknown}; expected {sorted(defaults)}")
        params = {**defaults, **given}
        check_params(self.name, params)
        for key, (value, reason) in self.spec.pinned.items():
            if params.get(key, value) != value:
                raise ConfigError(f"{self.name}: {key} must be {value!r}: {reason}")
        self.given = dict(given)
        self.softmax = bool(params.pop("softmax", False))
        self.normalise = bool(params.pop("normalise", False))
        self.quantus_params = {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}
        self.draws = (
            self.spec.random or params.get("perturb_baseline") in RANDOM_BASELINES or params.get("order") == "random"
        )
        self.per_image = self.spec.per_image or self.draws
        if params.get("order") == "lerf":  # least relevant first: a slow decline is the good one
            self.higher_is_better = not type(self).higher_is_better
        if self.spec.output == "curve" and not self.softmax:  # logits: no bound on the AUC
            self.value_range = (None, None)
        self.quantus()  # Quantus's own checks of the parameters, before any work

    def __reduce__(self) -> tuple[Any, ...]:
        return (rebuild, (self.name, self.given))

    def quantus(self) -> Any:
        """A fresh Quantus metric (an instance keeps every score it ever returned)."""
        fix = PERTURB_FIXES.get(self.spec.perturb_fix)
        extra = {"perturb_func": fix} if fix else {}
        try:
            with quantus_state(None):
                return self.quantus_class(
                    **self.quantus_params, **extra, normalise=False, disable_warnings=True, display_progressbar=False
                )
        except (AssertionError, ValueError, TypeError) as exc:
            raise ConfigError(f"{self.name}: Quantus refused the parameters: {exc}") from None

    def evaluate(
        self,
        forward: Callable[[Tensor], Tensor],
        x01: Tensor,
        attributions: Tensor,
        target: Tensor,
        *,
        seeds: Sequence[int],
        chunk_size: int = 8,
        multiplies_by_inputs: bool = False,
    ) -> FaithfulnessResult:
        """Quantus's score of each image (NaN where the attributions are not all finite, or all zero).

        ``multiplies_by_inputs`` is not used: Quantus scores the attributions as given."""
        count = x01.shape[0]
        if len(seeds) != count:
            raise ValueError(f"{self.name}: {len(seeds)} seeds for {count} images")
        model = ForwardModule(forward, chunk_size, x01.device) if self.spec.uses_model else None
        x = x01.detach().to("cpu", torch.float32).numpy().copy()
        a = attributions.detach().to("cpu", torch.float32).numpy().copy()
        y = target.detach().to("cpu").numpy().astype(np.int64)
        flat = a.reshape(count, -1)
        # Quantus refuses a batch holding an all-zero map (a ReLU'd CAM can be one): such an
        # image scores NaN, like a non-finite one, and the runner flags it (degenerate_map).
        usable = np.isfinite(flat).all(axis=1) & (np.abs(np.nan_to_num(flat)).max(axis=1, initial=0) > 0)
        rows = np.flatnonzero(usable)
        if self.normalise:
            a = normalise_by_max(a)
        try:
            if self.per_image:
                outputs = [self.call(model, x[[i]], y[[i]], a[[i]], 1, seeds[i])[0] for i in rows]
            else:
                outputs = list(self.call(model, x[rows], y[rows], a[rows], chunk_size, None)) if rows.size else []
        finally:
            if model is not None:
                model.release()
        return self.result(outputs, rows, x.shape, model.images if model is not None else 0)

    def call(self, model: nn.Module | None, x: np.ndarray, y: np.ndarray, a: np.ndarray,
             batch_size: int, seed: int | None) -> list[Any]:
        """One Quantus call; ROAD's dict of per-percentage accuracies becomes one curve."""
        metric = self.quantus()
        try:
            with quantus_state(seed):
                out = metric(model=model, x_batch=x, y_batch=y, a_batch=a, channel_first=True,
                             softmax=self.softmax, device="cpu", batch_size=max(int(batch_size), 1))
        except (AssertionError, ValueError) as exc:
            if self.spec.nan_on and self.spec.nan_on in str(exc) and len(x) == 1:
                return [None]
            shape = "×".join(map(str, x.shape[1:]))
            raise ConfigError(f"{self.name}: Quantus rejected {shape} images with {self.given or 'the defaults'}: "
                              f"{exc}") from None
        return [np.array(list(out.values()))] if isinstance(out, dict) else list(out)

    def curve_x(self, shape: tuple[int, ...]) -> np.ndarray:
        """The x axis of the curve (the fraction of features, patches or percent removed)."""
        _, channels, height, width = shape
        if self.spec.output == "road":
            return np.asarray(self.quantus_params["percentages"], dtype=np.float64) / 100.0
        if self.spec.curve_x == "features":
            n, step = channels * height * width, int(self.quantus_params["features_in_step"])
            return np.minimum(np.arange(1, math.ceil(n / step) + 1) * step, n) / n
        size = int(self.quantus_params["patch_size"])
        patches = math.ceil(height / size) * math.ceil(width / size)
        steps = min(patches, int(self.quantus_params.get("regions_evaluation", patches)))
        return np.arange(1, steps + 1) / patches

    def result(self, outputs: list[Any], rows: np.ndarray, shape: tuple[int, ...], images: int) -> FaithfulnessResult:
        count = shape[0]
        if self.spec.output == "score":
            scores = np.full(count, np.nan)
            for row, value in zip(rows, outputs, strict=True):
                scores[row] = np.nan if value is None else float(value)
            return FaithfulnessResult(torch.from_numpy(scores), forward_images=images)
        curve_x = self.curve_x(shape)
        curves = np.full((count, curve_x.size), np.nan)
        for row, value in zip(rows, outputs, strict=True):
            if value is not None:
                curve = np.asarray(value, dtype=np.float64).reshape(-1)
                if curve.size != curve_x.size:
                    raise RuntimeError(f"{self.name}: Quantus returned {curve.size} points, expected {curve_x.size}")
                curves[row] = curve
        # Quantus's AUC (utils.calculate_auc: trapezoid, dx = 1); ROAD: the mean accuracy.
        scores = curves.mean(axis=1) if self.spec.output == "road" else np.trapezoid(curves, dx=1, axis=1)
        return FaithfulnessResult(
            torch.from_numpy(scores),
            curves={snake(self.quantus_name): torch.from_numpy(curves)},
            curve_x=torch.from_numpy(curve_x),
            forward_images=images,
        )


def check_params(name: str, params: dict[str, Any]) -> None:
    """Range checks Quantus does not make (or makes only once it sees the images)."""
    for key in POSITIVE & set(params):
        if int(params[key]) < 1:
            raise ConfigError(f"{name}: {key} must be ≥ 1, got {params[key]!r}")
    for key in ("percentages", "perturb_patch_sizes"):
        values = list(params.get(key) or [])
        if key in params and not values:
            raise ConfigError(f"{name}: {key} must not be empty")
        if key == "percentages" and any(not 0 < p <= 100 for p in values):
            raise ConfigError(f"{name}: percentages must lie in (0, 100], got {values}")
        if key == "perturb_patch_sizes" and any(int(p) < 1 for p in values):
            raise ConfigError(f"{name}: perturb_patch_sizes must be ≥ 1, got {values}")


def rebuild(name: str, given: dict[str, Any]) -> QuantusMetric:
    """Unpickle an adapted metric: its class is built again through the registry."""
    return metrics.get(name)(**given)


# --------------------------------------------------------------------------------------
# The provider
# --------------------------------------------------------------------------------------


def annotation_of(name: str, quantus_annotation: Any) -> Any:
    """The parameter's type for suites; ``None`` for what a suite cannot write (callables)."""
    if name in ANNOTATIONS:
        return ANNOTATIONS[name]
    if quantus_annotation in (bool, int, float, str):
        return quantus_annotation
    args = [a for a in typing.get_args(quantus_annotation) if a is not type(None)]
    inner = args[0] if len(args) == 1 and typing.get_origin(quantus_annotation) is typing.Union else None
    candidate = inner or quantus_annotation
    if typing.get_origin(candidate) in (list, Sequence) and typing.get_args(candidate)[0] in (int, float):
        return list[typing.get_args(candidate)[0]]  # type: ignore[misc]
    return None


def declared_parameters(spec: Adapted, quantus_class: type) -> tuple[inspect.Parameter, ...]:
    """The settable parameters: Quantus's plain-valued constructor parameters, with the
    defaults Quantus leaves as ``None`` made explicit, and ``softmax`` for metrics that
    forward the model."""
    keyword = inspect.Parameter.KEYWORD_ONLY
    out = []
    for param in inspect.signature(quantus_class.__init__).parameters.values():
        if param.name in NOT_SETTABLE or param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
            continue
        default = spec.defaults.get(param.name, param.default)
        annotation = annotation_of(param.name, param.annotation)
        if annotation is None or default is None or default is inspect.Parameter.empty:
            continue
        default = tuple(default) if isinstance(default, list) else default
        out.append(inspect.Parameter(param.name, keyword, default=default, annotation=annotation))
    if spec.uses_model:
        softmax = inspect.signature(quantus_class.__call__).parameters["softmax"].default
        out.append(inspect.Parameter("softmax", keyword, default=bool(softmax), annotation=bool))
    return tuple(out)


def adapter_class(name: str, spec: Adapted, quantus_class: type) -> type[QuantusMetric]:
    """The plugin class of ``quantus.<name>``."""
    declared = declared_parameters(spec, quantus_class)

    def __init__(self: QuantusMetric, **given: Any) -> None:  # noqa: N807
        QuantusMetric.__init__(self, **given)

    self_param = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    __init__.__signature__ = inspect.Signature([self_param, *declared])  # type: ignore[attr-defined]
    quantus_higher = getattr(quantus_class.score_direction, "value", "") == "higher"
    attributes = {
        "__init__": __init__,
        "__module__": __name__,
        "__doc__": f"Quantus {name} ({spec.category}): {spec.summary}.",
        "name": PREFIX + name,
        "title": f"{name} (Quantus)",
        "summary": f"Quantus {spec.category} metric: {spec.summary}",
        "higher_is_better": quantus_higher if spec.higher_is_better is None else spec.higher_is_better,
        "value_range": spec.value_range,
        "quantus_name": name,
        "quantus_class": quantus_class,
        "quantus_category": spec.category,
        "spec": spec,
        "declared": declared,
    }
    return type(f"Quantus{name}", (QuantusMetric,), attributes)


def offered() -> list[str]:
    """The adapted metrics the installed Quantus defines (imports Quantus)."""
    import quantus

    return sorted(name for name in ADAPTED if inspect.isclass(getattr(quantus, name, None)))


def build(name: str) -> type[QuantusMetric]:
    """The plugin class for ``quantus.<name>``; a left-out or unknown name says why."""
    if name in SKIPPED:
        raise UnknownPluginError(
            f"{PREFIX + name!r} is a Quantus metric xaibench does not run: {SKIPPED[name]}. "
            f"Quantus metrics it runs: {', '.join(PREFIX + n for n in sorted(ADAPTED))}."
        )
    import quantus  # an ImportError becomes the provider's "pip install 'xaibench[quantus]'"

    quantus_class = getattr(quantus, name, None)
    if name in ADAPTED and inspect.isclass(quantus_class):
        return adapter_class(name, ADAPTED[name], quantus_class)
    adapted = ", ".join(PREFIX + n for n in sorted(ADAPTED))
    if inspect.isclass(quantus_class) and hasattr(quantus_class, "score_direction"):
        raise UnknownPluginError(
            f"{PREFIX + name!r} is a Quantus {quantus.__version__} metric xaibench has no adapter for. "
            f"Quantus metrics it runs: {adapted}."
        )
    close = closest(name, [*ADAPTED, *SKIPPED])
    hint = f" Did you mean {PREFIX + close!r}?" if close else ""
    raise UnknownPluginError(f"unknown metric {PREFIX + name!r}.{hint} Quantus metrics xaibench runs: {adapted}.")


PROVIDER = Provider(prefix=PREFIX, distribution="quantus", extra="quantus", offered=offered, build=build)
metrics.add_provider(PROVIDER)
