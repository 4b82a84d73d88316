"""The digits ViT: a small timm Vision Transformer for scikit-learn's digits, its wrapping and loading.

The attention counterpart of the digits CNN (``xaibench.models.digits_cnn``): real data, real
accuracy, no download, trained in seconds on the CPU. It is a plain
``timm.models.vision_transformer.VisionTransformer``, so its blocks are timm's ``Attention``,
``LayerNorm`` and ``GELU`` modules, the ones the attention explainers and the attention
routing (``xaibench.explainers.attention_routing``) look for.

Patches are 8×8 pixels: at the default 32×32 input that is a 4×4 grid of 16 tokens plus the
class token, each patch covering 2×2 of the native 8×8 digit pixels. 4×4-pixel patches (an
8×8 grid) cost about five times as much per epoch on the CPU and need more epochs to reach
the same accuracy (docs/training.md). No dropout, no stochastic depth.

It is wrapped as a ``Classifier`` by the digits CNN's ``wrap_digits_cnn`` (same input, same
classes). This module is the architecture only. The registered model that trains it on first use
(``digits_vit``), its training and its weight cache are in ``xaibench.training.digits_vit``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from timm.models.vision_transformer import VisionTransformer
from torch import Tensor

from ..types import Classifier
from .digits_cnn import NUM_CLASSES, wrap_digits_cnn

PATCH_SIZE = 8
NUM_HEADS = 4
MLP_RATIO = 2.0


def digits_vit_network(
    width: int = 64, depth: int = 4, image_size: int = 32, num_classes: int = NUM_CLASSES
) -> VisionTransformer:
    """A 1-channel ViT: ``PATCH_SIZE`` patches, ``depth`` blocks of ``width`` dims, ``NUM_HEADS`` heads.

    Class token pooling (``global_pool='token'``), pre-norm blocks, MLP ratio ``MLP_RATIO``,
    no dropout of any kind. ``image_size`` must be a multiple of ``PATCH_SIZE`` and ``width``
    of ``NUM_HEADS``.
    """
    if image_size % PATCH_SIZE or width % NUM_HEADS:
        raise ValueError(
            f"digits ViT needs image_size a multiple of {PATCH_SIZE} and width a multiple of "
            f"{NUM_HEADS}; got image_size={image_size}, width={width}"
        )
    return VisionTransformer(
        img_size=image_size,
        patch_size=PATCH_SIZE,
        in_chans=1,
        num_classes=num_classes,
        embed_dim=width,
        depth=depth,
        num_heads=NUM_HEADS,
        mlp_ratio=MLP_RATIO,
        class_token=True,
        global_pool="token",
        drop_rate=0.0,
        pos_drop_rate=0.0,
        proj_drop_rate=0.0,
        attn_drop_rate=0.0,
        drop_path_rate=0.0,
    )


def load_digits_vit(
    state: Mapping[str, Tensor],
    *,
    width: int,
    depth: int,
    image_size: int,
    name: str = "digits_vit",
    source: str = "",
    notes: Sequence[str] = (),
) -> Classifier:
    """A ``Classifier`` around ``digits_vit_network(width, depth, image_size)`` holding ``state``."""
    network = digits_vit_network(width, depth, image_size)
    network.load_state_dict(state)
    return wrap_digits_cnn(network, image_size, name=name, source=source, notes=notes)


__all__ = [
    "MLP_RATIO",
    "NUM_HEADS",
    "PATCH_SIZE",
    "digits_vit_network",
    "load_digits_vit",
]
