"""Layers by name in, image-shaped maps out; square-patch feature masks.

``layer = "layer4"`` in a suite names a module of the wrapped network; a layer method's
attributions (``N×K×h×w``, or ``N×L×D`` tokens of a transformer block) become an
input-shaped map: summed over the layer's channels, upsampled bilinearly with Captum's
``LayerAttribution.interpolate`` and repeated over the image channels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from ..registry import closest


def resolve_layer(classifier: nn.Module, layer: str, owner: str) -> nn.Module:
    """The module named ``layer`` (dotted), looked up on the wrapped network first
    (``"layer4"``, ``"blocks.11.norm1"``), then on the classifier (``"model.layer4"``)."""
    roots = [getattr(classifier, "model", None), classifier]
    for root in (r for r in roots if isinstance(r, nn.Module)):
        try:
            return root.get_submodule(layer)
        except AttributeError:
            continue
    network = roots[0] if isinstance(roots[0], nn.Module) else classifier
    names = [name for name, _ in network.named_modules() if name]
    close = closest(layer, names)
    hint = f" Did you mean {close!r}?" if close else ""
    shown = [name for name, _ in network.named_children()]
    model = getattr(classifier, "name", type(network).__name__)
    raise ConfigError(
        f"{owner}: the model {model!r} has no layer {layer!r}.{hint} "
        f"Its top-level layers: {', '.join(shown) or '(none)'} (dotted names reach deeper ones)."
    )


def _token_grid(attributions: Tensor, network: nn.Module | None) -> Tensor:
    """``N×L×D`` token attributions (a ViT block) as ``N×1×h×w`` over the patch grid."""
    n, length, _ = attributions.shape
    grid = getattr(getattr(network, "patch_embed", None), "grid_size", None)
    if grid is not None:
        h, w = int(grid[0]), int(grid[1])
    else:
        side = math.isqrt(length)
        h = w = side
    prefix = length - h * w
    if h * w == 0 or not 0 <= prefix <= 16:
        raise ValueError(
            f"layer attributions of shape {tuple(attributions.shape)} are not a map of image "
            "patches; choose a convolutional layer or a transformer block"
        )
    tokens = attributions[:, prefix:].sum(dim=2)
    return tokens.reshape(n, 1, h, w)


def layer_map_to_image(attributions: Tensor | tuple, like: Tensor, network: nn.Module | None) -> Tensor:
    """A layer's attributions as an input-shaped map: summed over the layer's channels,
    upsampled to the image (Captum's ``LayerAttribution.interpolate``, bilinear) and
    repeated over the image channels."""
    from captum.attr import LayerAttribution

    if isinstance(attributions, tuple | list):
        if len(attributions) != 1:
            raise ValueError("the layer has several inputs; attribute to its output instead")
        attributions = attributions[0]
    if attributions.ndim == 4:
        heat = attributions.sum(dim=1, keepdim=True)
    elif attributions.ndim == 3:
        heat = _token_grid(attributions, network)
    else:
        raise ValueError(
            f"layer attributions of shape {tuple(attributions.shape)} have no spatial map; "
            "choose a convolutional layer (N×C×h×w output)"
        )
    heat = LayerAttribution.interpolate(heat.float(), tuple(like.shape[2:]), interpolate_mode="bilinear")
    return heat.expand(-1, like.shape[1], -1, -1)


def patch_mask(like: Tensor, patch_size: int) -> Tensor:
    """Captum's ``feature_mask`` for square patches: ``1×1×H×W`` feature ids, shared by
    all images and channels."""
    h, w = like.shape[2:]
    rows = torch.arange(h, device=like.device) // patch_size
    cols = torch.arange(w, device=like.device) // patch_size
    per_row = math.ceil(w / patch_size)
    return (rows[:, None] * per_row + cols[None, :]).view(1, 1, h, w)


@dataclass(frozen=True)
class FeatureCount:
    """How many features a perturbation method varies for one image."""

    channels: int
    height: int
    width: int

    def count(self, patch_size: int | None) -> int:
        if patch_size is None:
            return self.channels * self.height * self.width
        return math.ceil(self.height / patch_size) * math.ceil(self.width / patch_size)
