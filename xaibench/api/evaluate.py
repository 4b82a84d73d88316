"""``xaibench.evaluate``: benchmark your own model and explanation functions in one call.

The objects become runtime plugins (``inputs.py``) and an ordinary suite, which the ordinary
planner, units and executor run: the same rows, batching, chunk tuning and out-of-memory
back-off as ``xaibench run``. The model is prepared for attribution as every model is (eval
mode, no parameter gradients, in-place activations off, moved to the device); its training
mode, parameter gradient flags and device are put back afterwards.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from torch import nn

from .. import registry
from ..errors import ConfigError
from . import inputs
from .results import Results
from .running import execute

SOURCE = "xaibench.evaluate()"


@contextmanager
def _restored(model: nn.Module) -> Iterator[None]:
    """Put back what preparing ``model`` for attribution changes: mode, gradient flags, device."""
    training = model.training
    flags = [(p, p.requires_grad) for p in model.parameters()]
    device = next((p.device for p in model.parameters()), None)
    try:
        yield
    finally:
        if device is not None:
            model.to(device)
        for parameter, flag in flags:
            parameter.requires_grad_(flag)
        model.train(training)


def _attack_entries(attacks: Any, grid: Mapping[str, Sequence[Any]] | None) -> list[dict[str, Any]]:
    """``[[attacks]]`` entries; ``grid`` values go to each attack's parameter for that axis
    (``alpha`` → ``alphas``, or ``alpha`` itself), as the attack declares it."""
    items = attacks.items() if isinstance(attacks, Mapping) else [(a, {}) for a in attacks]
    entries, used = [], set()
    for name, params in items:
        entry = {"name": name, **dict(params)}
        declared = {p.name for p in registry.attacks.params(name)}
        for axis, values in (grid or {}).items():
            for key in (f"{axis}s", axis):
                if key in declared and key not in params:
                    entry[key] = list(values)
                    used.add(axis)
                    break
        entries.append(entry)
    unused = sorted(set(grid or {}) - used)
    if unused:
        raise ConfigError(f"grid axis {unused[0]!r} is a parameter of none of the attacks {[e['name'] for e in entries]}",
                          file=SOURCE, key="grid")
    return entries


def evaluate(
    model: nn.Module,
    images: Any,
    labels: Any = None,
    *,
    normalize: tuple[Sequence[float], Sequence[float]] | None = None,
    explainers: Mapping[str, Any] | Sequence[str] = ("saliency",),
    attacks: Mapping[str, Mapping[str, Any]] | Sequence[str] = ("exiaa",),
    metrics: Sequence[Any] | None = None,
    grid: Mapping[str, Sequence[Any]] | None = None,
    device: str = "auto",
    seed: int = 0,
    out: str | Path | None = None,
    ids: Sequence[str] | None = None,
    model_name: str | None = None,
    name: str = "evaluate",
    n_classes: int | None = None,
    limit: int | None = None,
    pool_size: int | None = None,
    images_per_unit: int = 4,
    batch_size: int | str = "auto",
    precision: str = "fp32",
    progress: bool = True,
) -> Results:
    """Run the attacks and metrics on ``model`` × each explainer over ``images``.

    ``images``: a tensor ``N×C×H×W`` of pixels in [0, 1] (with ``labels``, ``N`` class ids,
    or None), a folder of class sub-folders, or a registered dataset's name. ``normalize``:
    ``(mean, std)`` the model expects, applied inside. ``explainers``: label → a registered
    name, a Captum attribution class or instance, a function ``(model, x01, target) ->
    attributions``, or ``(any of those, {parameters})``; a list of registered names works too.
    Originals are one image per class (``n_classes``, ``limit``), the attack-image pool is all
    images (``pool_size`` to sample). ``out``: keep the results there (resumable); default a
    temporary folder, removed with the returned ``Results`` unless you ``save`` it.
    """
    with _restored(model):
        suite = _suite(model, images, labels, ids, normalize, explainers, attacks, metrics, grid, model_name, {
            "name": name, "seed": seed, "device": device, "batch_size": batch_size,
            "images_per_unit": images_per_unit, "precision": precision,
        }, {k: v for k, v in (("n_classes", n_classes), ("limit", limit), ("pool_size", pool_size)) if v is not None})
        folder, temporary = (Path(out), False) if out is not None else (Path(tempfile.mkdtemp(prefix="xaibench-")), True)
        return execute(suite, folder, progress=progress, temporary=temporary)


def _suite(model: nn.Module, images: Any, labels: Any, ids: Any, normalize: Any, explainers: Any, attacks: Any,
           metrics: Any, grid: Any, model_name: str | None, head: dict[str, Any], sampling: dict[str, Any]) -> Any:
    """The objects as runtime plugins, and the suite that names them."""
    from ..runner.suite import parse_suite

    label = model_name or (model.name if isinstance(getattr(model, "name", None), str) else type(model).__name__)
    tensor = images if hasattr(images, "ndim") else None
    digest = inputs.weights_digest(model)  # hashing every weight once: a large model's cost
    classifier = inputs.as_classifier(model, tensor, normalize, label, digest)
    dataset, dataset_params = inputs.dataset_plugin(images, labels, ids)
    if not isinstance(explainers, Mapping):
        explainers = {str(e): str(e) for e in explainers}
    data: dict[str, Any] = {
        "suite": head,
        "dataset": {"name": dataset, **dataset_params, **sampling},
        "models": [{"name": inputs.model_plugin(classifier, label, digest), "label": label}],
        "explainers": [inputs.explainer_entry(str(k), v, classifier) for k, v in explainers.items()],
    }
    if attacks:
        data["attacks"] = _attack_entries(attacks, grid)
    if metrics is not None:
        data["metrics"] = list(metrics)
    return parse_suite(data, SOURCE, {})
