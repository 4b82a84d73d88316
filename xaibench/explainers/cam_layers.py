"""Target layers of the CAM explainers: which module, and how its output becomes a map.

Names are dotted module names relative to the classifier's network (``classifier.model``,
as in ``classifier.reused_modules``); ``"model."`` in front (relative to the classifier) is
accepted too. Without a name the layer is chosen automatically (docs/explainers.md):

1. a ViT-like network (``network.blocks[-1].norm1`` exists and returns tokens): that layer,
   ``blocks.<last>.norm1``, as pytorch-grad-cam recommends;
2. a network with ``forward_features`` (timm) that returns a 4-D map: the outermost module
   that returns that very tensor (timm ResNets: ``layer4``, EfficientNets: ``bn2``);
3. otherwise: the outermost module returning the last 4-D tensor larger than 1×1 of a
   forward pass at the classifier's input size (global pooling gives 1×1 and is skipped).

A 4-D output is read as N×C×h×w, or as N×h×w×C when its last axis (and not its second) has
the network's ``num_features`` channels (timm's Swin-style stages). A 3-D output is tokens
B×(P+h·w)×D: the ``num_prefix_tokens`` P (class / distillation / register tokens; 0 when the
network has no such attribute) are dropped and the rest is reshaped to B×D×h×w on the
patch grid (``patch_embed.grid_size``, else a square).
"""

from __future__ import annotations

import difflib
import math
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from ._common import model_device_dtype


@dataclass(frozen=True)
class TargetLayer:
    """A module of ``classifier.model`` and the layout of its output."""

    name: str
    layout: str  # "nchw", "nhwc" or "tokens"
    prefix_tokens: int = 0
    grid: tuple[int, int] | None = None  # tokens: the patch grid at the classifier's input size


_CACHE: weakref.WeakKeyDictionary[nn.Module, dict[str | None, TargetLayer | str]] = (
    weakref.WeakKeyDictionary()
)


def target_layer(classifier: nn.Module, name: str | None, owner: str) -> TargetLayer:
    """The layer ``name`` (``None``: the automatic choice), probed once per classifier."""
    found = cached_layer(classifier, name)
    if isinstance(found, str):
        raise ConfigError(f"{owner}: {found}")
    return found


def cached_layer(classifier: nn.Module, name: str | None) -> TargetLayer | str:
    """``target_layer`` without raising: the reason as a string when there is none."""
    known = _CACHE.setdefault(classifier, {})
    if name not in known:
        try:
            known[name] = default_layer(classifier) if name is None else describe(classifier, name)
        except ConfigError as exc:
            known[name] = str(exc)
    return known[name]


def find_module(network: nn.Module, name: str) -> tuple[str, nn.Module]:
    """``(name relative to network, module)``; a ``ConfigError`` listing close names."""
    names = [n for n, _ in network.named_modules() if n]
    if name.startswith("model.") and name not in names and name[len("model.") :] in names:
        name = name[len("model.") :]
    if name in names:
        return name, network.get_submodule(name)
    close = difflib.get_close_matches(name, names, n=5, cutoff=0.5)
    hint = f"; close names: {', '.join(close)}" if close else ""
    raise ConfigError(
        f"target_layer {name!r} is not a module of {type(network).__name__} (names are relative "
        f"to classifier.model, e.g. {names[-1]!r}){hint}"
    )


def _probe_input(classifier: nn.Module) -> Tensor:
    device, dtype = model_device_dtype(classifier)
    size = tuple(getattr(classifier, "input_size", (224, 224)))
    return torch.zeros(1, int(getattr(classifier, "in_channels", 3)), *size, device=device, dtype=dtype)


def _hooked_run(network: nn.Module, hooks: dict[nn.Module, Callable], run: Callable[[], Any]) -> Any:
    """``run()`` in eval mode without gradients, with forward ``hooks`` on some modules."""
    handles = [module.register_forward_hook(hook) for module, hook in hooks.items()]
    was_training = network.training
    network.eval()
    try:
        with torch.no_grad():
            return run()
    finally:
        network.train(was_training)
        for handle in handles:
            handle.remove()


def _record(network: nn.Module, run: Callable[[], Any]) -> tuple[list[tuple[str, Any]], Any]:
    """Every submodule's output in the order the calls return, and ``run()``'s result."""
    records: list[tuple[str, Any]] = []
    hooks = {
        module: (lambda _m, _i, out, name=name: records.append((name, out)))
        for name, module in network.named_modules()
        if name
    }
    return records, _hooked_run(network, hooks, run)


def _outermost(records: list[tuple[str, Any]], tensor: Tensor) -> str:
    return [name for name, out in records if out is tensor][-1]


def default_layer(classifier: nn.Module) -> TargetLayer:
    """The automatic target layer (module docstring); ``ConfigError`` when there is none."""
    network = classifier.model
    blocks = getattr(network, "blocks", None)
    if isinstance(blocks, nn.Sequential | nn.ModuleList) and len(blocks):
        if isinstance(getattr(blocks[-1], "norm1", None), nn.Module):
            try:
                layer = describe(classifier, f"blocks.{len(blocks) - 1}.norm1")
            except ConfigError:
                layer = None
            if layer is not None and layer.layout == "tokens":
                return layer
    return describe(classifier, _feature_map_name(classifier))


def _feature_map_name(classifier: nn.Module) -> str:
    """Rules 2 and 3 of the module docstring."""
    network = classifier.model
    x = _probe_input(classifier)
    features = getattr(network, "forward_features", None)
    if callable(features):
        records, out = _record(network, lambda: features((x - classifier.mean) / classifier.std))
        if isinstance(out, Tensor) and out.ndim == 4 and any(o is out for _, o in records):
            return _outermost(records, out)
    records, _ = _record(network, lambda: classifier(x))
    maps = [o for _, o in records if isinstance(o, Tensor) and o.ndim == 4 and o.shape[2] * o.shape[3] > 1]
    if not maps:
        raise ConfigError(
            f"no default target layer for {getattr(classifier, 'name', type(network).__name__)}: "
            "no module returns a 4-D feature map larger than 1×1; pass target_layer"
        )
    return _outermost(records, maps[-1])


def _outputs_of(classifier: nn.Module, name: str) -> list[Any]:
    """What module ``name`` returns, once per call, in a forward at the input size."""
    _, module = find_module(classifier.model, name)
    outputs: list[Any] = []
    hook = {module: lambda _m, _i, out: outputs.append(out)}
    _hooked_run(classifier.model, hook, lambda: classifier(_probe_input(classifier)))
    return outputs


def describe(classifier: nn.Module, name: str) -> TargetLayer:
    """Check that ``name`` is called once per forward and returns a map or tokens."""
    network = classifier.model
    name, _ = find_module(network, name)
    outputs = _outputs_of(classifier, name)
    if len(outputs) != 1:
        raise ConfigError(
            f"target_layer {name!r} is called {len(outputs)} times per forward pass; "
            "CAMs need a module called exactly once (choose its parent or a neighbour)"
        )
    out = outputs[0]
    if not isinstance(out, Tensor) or out.ndim not in (3, 4):
        shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ConfigError(
            f"target_layer {name!r} returns {shape}; CAMs need a 4-D feature map or 3-D tokens"
        )
    if out.ndim == 4:
        channels = getattr(network, "num_features", None)
        nhwc = channels is not None and out.shape[-1] == channels != out.shape[1]
        return TargetLayer(name, "nhwc" if nhwc else "nchw")
    prefix = int(getattr(network, "num_prefix_tokens", 0) or 0)
    grid = _token_grid(network, int(out.shape[1]) - prefix)
    if grid is None:
        raise ConfigError(
            f"target_layer {name!r} returns {tuple(out.shape)}: {out.shape[1]} tokens minus "
            f"{prefix} prefix tokens do not fill a patch grid"
        )
    return TargetLayer(name, "tokens", prefix, grid)


def _token_grid(network: nn.Module, n: int) -> tuple[int, int] | None:
    grid = getattr(getattr(network, "patch_embed", None), "grid_size", None)
    if grid is not None and len(grid) == 2 and int(grid[0]) * int(grid[1]) == n:
        return int(grid[0]), int(grid[1])
    side = math.isqrt(max(n, 0))
    return (side, side) if n > 0 and side * side == n else None


def as_map(tensor: Tensor, layer: TargetLayer, image_size: tuple[int, int], input_size: tuple[int, int]) -> Tensor:
    """The layer's output as N×C×h×w (tokens on their patch grid)."""
    if layer.layout == "nchw":
        return tensor
    if layer.layout == "nhwc":
        return tensor.permute(0, 3, 1, 2)
    tokens = tensor[:, layer.prefix_tokens :]
    h, w = layer.grid or (0, 0)
    if h * w != tokens.shape[1]:  # another image size than the probe's: same patch stride
        h = round(image_size[0] * h / input_size[0])
        w = round(image_size[1] * w / input_size[1])
    if h * w != tokens.shape[1]:
        raise ValueError(f"cannot lay {tokens.shape[1]} tokens of {layer.name!r} on a patch grid")
    return tokens.reshape(tokens.shape[0], h, w, tokens.shape[2]).permute(0, 3, 1, 2)


class Capture:
    """A forward hook on the target layer that keeps its output, as a gradient leaf or not.

    With ``leaf=True`` the layer's output is replaced by a clone of a fresh leaf ``A`` that
    requires grad: ``autograd.grad(score, A)`` then gives ``∂score/∂A`` without a graph
    through anything before the layer (the model stays frozen), and an in-place operation
    after the layer changes the clone, never ``A``.
    """

    def __init__(self, module: nn.Module, leaf: bool):
        self.module, self.leaf = module, leaf
        self.outputs: list[Tensor] = []

    def _hook(self, _module: nn.Module, _inputs: Any, output: Tensor) -> Tensor:
        kept = output.detach().requires_grad_(True) if self.leaf else output.detach().clone()
        self.outputs.append(kept)
        return kept.clone() if self.leaf else output

    def __enter__(self) -> Capture:
        self.handle = self.module.register_forward_hook(self._hook)
        return self

    def __exit__(self, *_: Any) -> None:
        self.handle.remove()

    @property
    def value(self) -> Tensor:
        if len(self.outputs) != 1:
            raise RuntimeError(f"the target layer ran {len(self.outputs)} times in one forward pass")
        return self.outputs[0]
