"""A notebook's objects as plugins: a model, images and explanation functions become runtime
plugins the runner resolves by name, so ``xaibench.evaluate`` runs the very same plan, units
and executors as ``xaibench run`` (and gives the same numbers on the same inputs).

Runtime plugins live in this process only (a Ray worker cannot import them: ``evaluate`` runs
locally). Their registered names carry a digest of what they are (the model's weights, the
images' bytes, the function's code), so two different models never share a name, and a results
folder reused across calls never resumes one model's units for another.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from .. import registry
from ..datasets.base import UNKNOWN_LABEL, Dataset
from ..errors import ConfigError
from ..function_explainer import function_explainer
from ..types import Classifier, ImageBatch

NAMESPACE = "evaluate"


def _digest(*parts: bytes) -> str:
    sha = hashlib.sha256()
    for part in parts:
        sha.update(part)
    return sha.hexdigest()[:12]


def _tensor_bytes(tensor: Tensor) -> bytes:
    return tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes()


def weights_digest(model: nn.Module) -> str:
    parts = [name.encode() + _tensor_bytes(value) for name, value in sorted(model.state_dict().items())
             if value.is_floating_point()]
    return _digest(type(model).__qualname__.encode(), *parts)


def _register(reg: registry.Registry[Any], name: str, plugin: Any) -> str:
    if name not in reg._plugins:  # the same object (same digest) registered by an earlier call
        reg.register(name, origin="runtime")(plugin)
    return name


# -- the model ----------------------------------------------------------------------------

def as_classifier(model: nn.Module, images: Tensor | None, normalize: Any, label: str, digest: str) -> Classifier:
    """``model`` as a ``Classifier`` (pixels in [0, 1] in, logits out; normalisation inside);
    ``digest``: its ``weights_digest``, recorded as where the weights came from."""
    if isinstance(model, Classifier):
        return model
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model must be a torch.nn.Module (or a xaibench Classifier), got {type(model).__name__}")
    if images is None:
        raise ConfigError("with a plain nn.Module, pass images as a tensor (their size gives the model's input size)")
    channels, height, width = images.shape[1:]
    mean, std = normalize if normalize is not None else ((0.0,) * channels, (1.0,) * channels)
    if len(mean) != channels or len(std) != channels:
        raise ConfigError(f"normalize has {len(mean)} means and {len(std)} stds for {channels}-channel images")
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    with torch.no_grad():
        probe = (images[:1].to(device) - torch.tensor(mean, device=device).view(1, -1, 1, 1)) / torch.tensor(
            std, device=device
        ).view(1, -1, 1, 1)
        logits = model.eval()(probe)
    if logits.ndim != 2:
        raise ConfigError(f"the model must return N×K logits; it returned shape {tuple(logits.shape)}")
    return Classifier(
        model, name=label, num_classes=logits.shape[1], input_size=(height, width), mean=mean, std=std,
        in_channels=channels, pretrained_source=f"user model {type(model).__name__} (weights {digest})",
    )


def model_plugin(classifier: Classifier, label: str, digest: str) -> str:
    """A registered factory that returns ``classifier``: one per distinct set of weights
    (``digest``, hashed once) and normalisation."""
    normalisation = _tensor_bytes(classifier.mean) + _tensor_bytes(classifier.std)
    name = f"{NAMESPACE}.{label}.{_digest(digest.encode(), normalisation)}"

    def factory() -> Classifier:
        return classifier

    factory.__name__ = f"user_model_{label}"
    return _register(registry.models, name, factory)


# -- the images ---------------------------------------------------------------------------

class _InMemory(Dataset):
    """Images given as a tensor (``N×C×H×W`` in [0, 1]); subclassed per call with the data."""

    pixels: ClassVar[Tensor]
    image_ids: ClassVar[list[str]]
    image_labels: ClassVar[list[int]]

    def __init__(self, *, input_size: Any = (224, 224), channels: int = 3):
        super().__init__(input_size=input_size, channels=channels)
        self.ids = list(self.image_ids)
        self.labels = list(self.image_labels)
        self.label_names = {label: str(label) for label in set(self.labels) if label != UNKNOWN_LABEL}

    def load(self, indices: Sequence[int]) -> ImageBatch:
        indices = self._check_indices(indices)
        if not indices:
            return self._empty_batch()
        pixels = self.pixels[indices]
        if tuple(pixels.shape[-2:]) != self.input_size:
            pixels = torch.nn.functional.interpolate(pixels, size=self.input_size, mode="bilinear", align_corners=False)
        return ImageBatch(
            ids=[self.ids[i] for i in indices], pixels=pixels.clamp(0.0, 1.0).contiguous(),
            labels=torch.tensor([self.labels[i] for i in indices], dtype=torch.long),
        )


def _check_images(images: Tensor) -> Tensor:
    if images.ndim != 4:
        raise ConfigError(f"images must be N×C×H×W, got shape {tuple(images.shape)}")
    images = images.detach().to("cpu", torch.float32)
    low, high = float(images.min()), float(images.max())
    if low < -1e-6 or high > 1 + 1e-6:
        raise ConfigError(
            f"images must be pixels in [0, 1] (normalisation happens inside, from normalize=); got values in "
            f"[{low:.3g}, {high:.3g}]"
        )
    return images


def _from_torch_dataset(dataset: Any, labels: Any) -> tuple[Tensor, Any]:
    """A map-style torch Dataset of images (or ``(image, label)`` pairs) as one tensor and labels."""
    items = [dataset[i] for i in range(len(dataset))]
    if not items:
        raise ConfigError("the dataset is empty")
    pairs = isinstance(items[0], tuple | list)
    pixels = torch.stack([torch.as_tensor(item[0] if pairs else item) for item in items])
    if pairs and labels is None:
        labels = [int(item[1]) for item in items]
    return pixels, labels


def dataset_plugin(images: Any, labels: Any = None, ids: Sequence[str] | None = None) -> tuple[str, dict[str, Any]]:
    """(registered dataset name, its suite parameters) for a tensor, a folder path or a name."""
    if isinstance(images, str | Path):
        if Path(images).is_dir():
            return "image_folder", {"root": str(images)}
        return str(images), {}  # a registered dataset's name
    if not isinstance(images, Tensor) and hasattr(images, "__getitem__") and hasattr(images, "__len__"):
        images, labels = _from_torch_dataset(images, labels)
    if not isinstance(images, Tensor):
        raise ConfigError(
            f"images must be a tensor N×C×H×W in [0, 1], a torch Dataset of (image, label), a folder path or a "
            f"dataset name; got {type(images).__name__}"
        )
    pixels = _check_images(images)
    count = pixels.shape[0]
    label_list = [UNKNOWN_LABEL] * count if labels is None else [int(v) for v in torch.as_tensor(labels).reshape(-1)]
    id_list = [f"image:{i}" for i in range(count)] if ids is None else [str(i) for i in ids]
    if len(label_list) != count or len(id_list) != count or len(set(id_list)) != count:
        raise ConfigError(f"{count} images need {count} labels and {count} distinct ids")
    digest = _digest(_tensor_bytes(pixels), repr(label_list).encode(), repr(id_list).encode())
    cls = type(f"InMemoryImages_{digest}", (_InMemory,), {
        "pixels": pixels, "image_ids": id_list, "image_labels": label_list, "__module__": __name__,
    })
    return _register(registry.datasets, f"{NAMESPACE}.images.{digest}", cls), {}


# -- explainers ---------------------------------------------------------------------------

def _captum_name(value: Any) -> str | None:
    cls = value if inspect.isclass(value) else type(value)
    return f"captum.{cls.__name__}" if cls.__module__.startswith("captum.") else None


def _layer_name(instance: Any, classifier: Classifier) -> dict[str, Any]:
    layer = getattr(instance, "layer", None)
    if layer is None:
        return {}
    for name, module in classifier.model.named_modules():
        if module is layer:
            return {"layer": name}
    raise ConfigError(f"{type(instance).__name__}: its layer is not a module of the model")


def explainer_entry(label: str, value: Any, classifier: Classifier) -> dict[str, Any]:
    """A suite's ``[[explainers]]`` entry for a registered name, a Captum class or instance,
    ``(name_or_class, {params})``, or a function ``(model, x01, target) -> attributions``."""
    params: dict[str, Any] = {}
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], dict):
        value, params = value
    if isinstance(value, str):
        return {"name": value, "label": label, **params}
    captum = _captum_name(value)
    if captum is not None:
        extra = {} if inspect.isclass(value) else _layer_name(value, classifier)
        return {"name": captum, "label": label, **extra, **params}
    if callable(value):
        return {"name": function_plugin(label, value), "label": label, **params}
    raise ConfigError(
        f"explainer {label!r}: expected a registered name, a Captum attribution class or instance, or a "
        f"function (model, x01, target) -> attributions; got {type(value).__name__}"
    )


def function_plugin(label: str, fn: Callable[..., Any]) -> str:
    try:
        code = inspect.getsource(fn).encode()
    except (OSError, TypeError):
        code = repr(fn).encode()
    name = f"{NAMESPACE}.{label}.{_digest(code, getattr(fn, '__qualname__', '').encode())}"
    if name not in registry.explainers._plugins:
        registry.explainers.register(name, origin="runtime")(function_explainer(fn, name=name, title=label))
    return name
