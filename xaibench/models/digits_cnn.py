"""A small CNN trained on scikit-learn's digits in seconds, cached on disk.

It is the fast real model for tests and for FPA-style training experiments: real data,
real accuracy, no download. The architecture is DeepLIFT-friendly on purpose: one
activation module per call site, nothing in place, no max-pooling (strides and average
pooling only), so Captum's DeepLIFT rules apply exactly.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from ..registry import models
from ..types import Classifier
from .cache import atomic_write_bytes, cache_dir

#: Bump when training or the architecture changes so stale cached weights are not reused.
FORMAT_VERSION = 1
DIGITS_MEAN = (0.5,)
DIGITS_STD = (0.5,)
_BATCH_SIZE = 128
_LEARNING_RATE = 5e-3


@lru_cache(maxsize=1)
def _raw_digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.images.astype(np.float32), bunch.target.astype(np.int64)


def digits_arrays(split: str, image_size: int = 32) -> tuple[Tensor, Tensor]:
    """Digits of one split as ``N×1×S×S`` float32 pixels in ``[0, 1]`` and int64 labels.

    Split rule (shared with the datasets layer, keep it): index ``i`` is test when
    ``i % 5 == 0``, train otherwise; ``"all"`` keeps every image in the original order.
    Pixels are ``value / 16`` upsampled bilinearly (``align_corners=False``) and clamped.
    """
    if split not in ("train", "test", "all"):
        raise ValueError(f"digits split must be 'train', 'test' or 'all', got {split!r}")
    if image_size < 1:
        raise ValueError(f"image_size must be positive, got {image_size}")
    images, targets = _raw_digits()
    index = np.arange(len(targets))
    if split == "test":
        index = index[index % 5 == 0]
    elif split == "train":
        index = index[index % 5 != 0]
    pixels = torch.from_numpy(images[index] / 16.0).unsqueeze(1)
    if image_size != pixels.shape[-1]:
        pixels = F.interpolate(
            pixels, size=(image_size, image_size), mode="bilinear", align_corners=False
        )
    return pixels.clamp(0.0, 1.0).contiguous(), torch.from_numpy(targets[index])


class DigitsCNN(nn.Module):
    """conv-ReLU ×3 (the first two stride 2), 4×4 average pool, linear head; 10 logits."""

    def __init__(self, width: int = 16, num_classes: int = 10):
        super().__init__()
        # Striding the first conv quarters the training cost; the upsampled 8×8 digits carry
        # no detail at full resolution that a stride-2 3×3 conv would miss.
        self.conv1 = nn.Conv2d(1, width, 3, stride=2, padding=1)
        self.act1 = nn.ReLU()
        self.conv2 = nn.Conv2d(width, 2 * width, 3, stride=2, padding=1)
        self.act2 = nn.ReLU()
        self.conv3 = nn.Conv2d(2 * width, 2 * width, 3, padding=1)
        self.act3 = nn.ReLU()
        # A 4×4 grid rather than global pooling keeps where the strokes are, which digits need.
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(2 * width * 16, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.act1(self.conv1(x))
        x = self.act2(self.conv2(x))
        x = self.act3(self.conv3(x))
        return self.fc(self.flatten(self.pool(x)))


def _config(epochs: int, width: int, image_size: int, seed: int) -> dict[str, int]:
    return {
        "format": FORMAT_VERSION,
        "epochs": int(epochs),
        "width": int(width),
        "image_size": int(image_size),
        "seed": int(seed),
    }


def digits_cache_path(epochs: int = 20, width: int = 16, image_size: int = 32, seed: int = 0) -> Path:
    """The weights file for one training configuration (a JSON sidecar sits next to it)."""
    config = _config(epochs, width, image_size, seed)
    key = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]
    return cache_dir() / "models" / f"digits_cnn-{key}.pt"


def _wrap(network: DigitsCNN, image_size: int, source: str, notes: list[str]) -> Classifier:
    return Classifier(
        network,
        name="digits_cnn",
        num_classes=10,
        input_size=(image_size, image_size),
        mean=DIGITS_MEAN,
        std=DIGITS_STD,
        in_channels=1,
        class_names=[str(d) for d in range(10)],
        pretrained_source=source,
        notes=notes,
    )


@torch.no_grad()
def digits_accuracy(classifier: nn.Module, image_size: int) -> float:
    """Top-1 accuracy of ``classifier`` on the digits test split."""
    pixels, labels = digits_arrays("test", image_size)
    was_training = classifier.training
    classifier.eval()
    predictions = torch.cat([classifier(chunk).argmax(1) for chunk in pixels.split(256)])
    classifier.train(was_training)
    return float((predictions == labels).float().mean())


def train_digits_cnn(
    epochs: int = 20, width: int = 16, image_size: int = 32, seed: int = 0
) -> tuple[dict[str, Tensor], float]:
    """Train from scratch (seeded, deterministic); state dict and test accuracy."""
    threads = torch.get_num_threads()
    # One thread: the reduction order (so the weights) does not depend on the machine's
    # core count, and OpenMP threads cannot stall spinning on shared cores (seen: 6 s on
    # one thread vs up to 60 s on two). The network is too small to gain from more.
    torch.set_num_threads(1)
    try:
        return _train(epochs, width, image_size, seed)
    finally:
        torch.set_num_threads(threads)


def _train(epochs: int, width: int, image_size: int, seed: int) -> tuple[dict[str, Tensor], float]:
    pixels, labels = digits_arrays("train", image_size)
    # fork_rng: seeding the initialisation must not disturb the caller's global RNG.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        network = DigitsCNN(width)
    classifier = _wrap(network, image_size, "", [])
    classifier.train()
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(classifier.parameters(), lr=_LEARNING_RATE)
    for _ in range(epochs):
        order = torch.randperm(len(labels), generator=generator)
        for batch in order.split(_BATCH_SIZE):
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(classifier(pixels[batch]), labels[batch])
            loss.backward()
            optimizer.step()
    classifier.eval()
    accuracy = digits_accuracy(classifier, image_size)
    state = {key: value.detach().clone() for key, value in network.state_dict().items()}
    return state, accuracy


def _load_cached(path: Path, sidecar: Path, config: dict[str, int]) -> tuple[dict[str, Tensor], dict] | None:
    if not (path.is_file() and sidecar.is_file()):
        return None
    try:
        meta = json.loads(sidecar.read_text())
        if meta.get("config") != config:
            return None
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # any damaged cache entry is retrained, never fatal
        return None
    return state, meta


@models.register("digits_cnn", aliases=("digits",))
def digits_cnn(epochs: int = 20, width: int = 16, image_size: int = 32, seed: int = 0) -> Classifier:
    """Small CNN on scikit-learn digits (1 channel, 10 classes); trained once, then cached."""
    if epochs < 1 or width < 1 or image_size < 8:
        raise ConfigError(
            f"digits_cnn needs epochs ≥ 1, width ≥ 1 and image_size ≥ 8; "
            f"got epochs={epochs}, width={width}, image_size={image_size}"
        )
    config = _config(epochs, width, image_size, seed)
    path = digits_cache_path(epochs, width, image_size, seed)
    sidecar = path.with_suffix(".json")
    n_train = len(digits_arrays("train", 8)[1])
    cached = _load_cached(path, sidecar, config)
    if cached is not None:
        state, meta = cached
        notes = [f"digits_cnn weights loaded from cache {path}"]
    else:
        started = time.perf_counter()
        state, accuracy = train_digits_cnn(epochs, width, image_size, seed)
        seconds = time.perf_counter() - started
        meta = {
            "config": config,
            "test_accuracy": accuracy,
            "n_train": n_train,
            "train_seconds": round(seconds, 2),
            "torch": torch.__version__,
        }
        buffer = io.BytesIO()
        torch.save(state, buffer)
        atomic_write_bytes(path, buffer.getvalue())
        atomic_write_bytes(sidecar, json.dumps(meta, indent=2, sort_keys=True).encode())
        notes = [f"digits_cnn trained now in {seconds:.1f} s and cached at {path}"]
    network = DigitsCNN(width)
    network.load_state_dict(state)
    source = (
        f"trained on scikit-learn digits (train split: {meta['n_train']} images, "
        f"test accuracy {meta['test_accuracy']:.3f}), cached at {path}"
    )
    classifier = _wrap(network, image_size, source, notes)
    classifier.test_accuracy = float(meta["test_accuracy"])
    return classifier
