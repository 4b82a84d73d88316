"""The digits ViT model that trains on first use (seconds, on the CPU), then loads from the cache.

Registers ``digits_vit``: the timm Vision Transformer of ``xaibench.models.digits_vit``
trained on scikit-learn's digits by the one training loop (``training.loop.fit``), seeded and
single-threaded like the digits CNN (``training.digits``), whose cache helpers it shares.
Weights are cached at ``cache_dir()/models/digits_vit-<key>.pt`` with a JSON sidecar.

Training: AdamW (lr ``LEARNING_RATE``, weight decay ``WEIGHT_DECAY``), batch ``BATCH_SIZE``,
a linear warm-up over the first epoch then a cosine decay to 0, stepped per batch. During
training timm's attention runs its unfused path (``fused_attn = False``), about twice as fast
as the fused CPU kernel at this size; the switch is restored afterwards, and the test
accuracy is measured on the model as returned.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from timm.layers import Attention
from torch import Tensor, nn

from ..errors import ConfigError
from ..hashing import stable_hash
from ..models.cache import cache_dir
from ..models.digits_cnn import digits_arrays, wrap_digits_cnn
from ..models.digits_vit import (
    NUM_HEADS,
    PATCH_SIZE,
    digits_vit_network,
    load_digits_vit,
)
from ..registry import models
from ..types import Classifier
from .digits import digits_accuracy, load_or_train, one_thread, save_cached
from .loop import fit, seeded_build

#: Bump when training or the architecture changes so stale cached weights are not reused.
FORMAT_VERSION = 1
EPOCHS = 15
WIDTH = 64
DEPTH = 4
BATCH_SIZE = 64
LEARNING_RATE = 3e-3
WEIGHT_DECAY = 0.05


def _config(epochs: int, width: int, depth: int, image_size: int, seed: int) -> dict[str, Any]:
    return {
        "format": FORMAT_VERSION,
        "epochs": int(epochs),
        "width": int(width),
        "depth": int(depth),
        "image_size": int(image_size),
        "patch_size": PATCH_SIZE,
        "seed": int(seed),
    }


def digits_vit_cache_path(
    epochs: int = EPOCHS, width: int = WIDTH, depth: int = DEPTH, image_size: int = 32, seed: int = 0
) -> Path:
    """The weights file for one training configuration (a JSON sidecar sits next to it)."""
    key = stable_hash(_config(epochs, width, depth, image_size, seed))
    return cache_dir() / "models" / f"digits_vit-{key}.pt"


@contextmanager
def unfused_attention(network: nn.Module) -> Iterator[None]:
    """timm's unfused attention in every ``Attention`` block of ``network``, restored on exit."""
    blocks = [m for m in network.modules() if isinstance(m, Attention)]
    saved = [block.fused_attn for block in blocks]
    try:
        for block in blocks:
            block.fused_attn = False
        yield
    finally:
        for block, fused in zip(blocks, saved, strict=True):
            block.fused_attn = fused


def _warmup_cosine(
    optimizer: torch.optim.Optimizer, steps: int, warmup: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-step factor: linear from ``1/warmup`` to 1 over ``warmup`` steps, then cosine to 0."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def train_digits_vit(
    epochs: int = EPOCHS, width: int = WIDTH, depth: int = DEPTH, image_size: int = 32, seed: int = 0
) -> tuple[dict[str, Tensor], float]:
    """Train from scratch (seeded, deterministic, one thread); state dict and test accuracy."""
    with one_thread():
        pixels, labels = digits_arrays("train", image_size)
        network = seeded_build(seed, lambda: digits_vit_network(width, depth, image_size))
        classifier = wrap_digits_cnn(network, image_size, name="digits_vit")
        optimizer = torch.optim.AdamW(
            classifier.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY
        )
        steps_per_epoch = math.ceil(len(labels) / BATCH_SIZE)
        schedule = _warmup_cosine(optimizer, epochs * steps_per_epoch, steps_per_epoch)
        with unfused_attention(network):
            fit(
                classifier, len(labels), lambda batch: (pixels[batch], labels[batch]),
                epochs=epochs, batch_size=BATCH_SIZE, optimizer=optimizer, seed=seed,
                schedule=schedule,
            )
        accuracy = digits_accuracy(classifier, image_size)
    state = {key: value.detach().clone() for key, value in network.state_dict().items()}
    return state, accuracy


def _train_and_cache(
    path: Path, config: dict[str, Any], epochs: int, width: int, depth: int, image_size: int, seed: int
) -> tuple[dict[str, Tensor], dict[str, Any], float]:
    started = time.perf_counter()
    state, accuracy = train_digits_vit(epochs, width, depth, image_size, seed)
    seconds = time.perf_counter() - started
    meta: dict[str, Any] = {
        "config": config,
        "test_accuracy": accuracy,
        "n_train": len(digits_arrays("train", 8)[1]),
        "train_seconds": round(seconds, 2),
        "torch": torch.__version__,
    }
    save_cached(path, state, meta)
    return state, meta, seconds


def _check(epochs: int, width: int, depth: int, image_size: int) -> None:
    if epochs < 1 or depth < 1 or width < NUM_HEADS or width % NUM_HEADS:
        raise ConfigError(
            f"digits_vit needs epochs ≥ 1, depth ≥ 1 and width a positive multiple of {NUM_HEADS}; "
            f"got epochs={epochs}, depth={depth}, width={width}"
        )
    if image_size < 2 * PATCH_SIZE or image_size % PATCH_SIZE:
        raise ConfigError(
            f"digits_vit needs image_size a multiple of its patch size {PATCH_SIZE}, at least "
            f"{2 * PATCH_SIZE}; got image_size={image_size}"
        )


@models.register("digits_vit")
def digits_vit(
    epochs: int = EPOCHS, width: int = WIDTH, depth: int = DEPTH, image_size: int = 32, seed: int = 0
) -> Classifier:
    """Small timm ViT on scikit-learn digits (1 channel, 10 classes); trained once, then cached.

    ``width`` is the embedding dimension (4 heads), ``depth`` the number of blocks; patches
    are 8×8 pixels (docs/training.md).
    """
    _check(epochs, width, depth, image_size)
    name = "digits_vit"
    config = _config(epochs, width, depth, image_size, seed)
    path = digits_vit_cache_path(epochs, width, depth, image_size, seed)
    state, meta, notes, cached = load_or_train(
        name, path, config, lambda: _train_and_cache(path, config, epochs, width, depth, image_size, seed)
    )
    source = (
        f"ViT (patch {PATCH_SIZE}, width {width}, depth {depth}, {NUM_HEADS} heads) trained on "
        f"scikit-learn digits (train split: {meta['n_train']} images, {epochs} epochs, seed {seed}, "
        f"test accuracy {meta['test_accuracy']:.3f}), cached at {path}"
    )
    classifier = load_digits_vit(
        state, width=width, depth=depth, image_size=image_size, name=name, source=source, notes=notes
    )
    classifier.test_accuracy = float(meta["test_accuracy"])
    classifier.training_info = {
        "model": name,
        "augmentation": "none",
        "adversarial": "none",
        "params": {},
        "epochs": int(epochs),
        "width": int(width),
        "depth": int(depth),
        "seed": int(seed),
        "test_accuracy": float(meta["test_accuracy"]),
        "train_seconds": meta.get("train_seconds"),
        "cache_path": str(path),
        "cached": cached,
    }
    return classifier


__all__ = [
    "BATCH_SIZE",
    "DEPTH",
    "EPOCHS",
    "FORMAT_VERSION",
    "LEARNING_RATE",
    "WEIGHT_DECAY",
    "WIDTH",
    "digits_vit",
    "digits_vit_cache_path",
    "train_digits_vit",
    "unfused_attention",
]
