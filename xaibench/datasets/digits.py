"""``digits``: scikit-learn's 1,797 real 8×8 handwritten digits, upsampled to the model's size.

The train/test rule is shared with the training layer, which trains its small digits CNN on
the same split (``split_tensors``): index ``i`` is a test image when ``i % 5 == 0``, a
training image otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import ConfigError
from ..registry import datasets
from ..types import ImageBatch
from .base import Dataset

SPLITS = ("train", "test", "all")
TEST_EVERY = 5


def is_test_index(index: int) -> bool:
    """The split rule (shared with the training layer): every fifth image is a test image."""
    return index % TEST_EVERY == 0


def split_indices(split: str, total: int) -> list[int]:
    """Indices into ``load_digits()`` of ``split`` ("train", "test" or "all")."""
    if split not in SPLITS:
        raise ConfigError(f"dataset 'digits': split must be one of {', '.join(SPLITS)}, got {split!r}")
    if split == "all":
        return list(range(total))
    return [i for i in range(total) if is_test_index(i) == (split == "test")]


@lru_cache(maxsize=1)
def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """``(images 1797×8×8 float32 in [0, 1], targets int64)``, loaded once per process."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = (bunch.images.astype(np.float32) / 16.0).clip(0.0, 1.0)
    images.flags.writeable = False
    targets = bunch.target.astype(np.int64)
    targets.flags.writeable = False
    return images, targets


def split_tensors(split: str, image_size: int = 32) -> tuple[Tensor, Tensor]:
    """One split as ``N×1×S×S`` float32 pixels in ``[0, 1]`` and int64 labels, in index order.

    The whole split at once, for training and evaluating the digits CNN (also re-exported as
    ``xaibench.models.digits_arrays``). Pixels are ``value / 16``, upsampled bilinearly
    (``align_corners=False``) unless ``image_size`` is the native 8, then clamped.
    """
    if split not in SPLITS:
        raise ValueError(f"digits split must be 'train', 'test' or 'all', got {split!r}")
    if image_size < 1:
        raise ValueError(f"image_size must be positive, got {image_size}")
    images, targets = digits_arrays()
    # Fancy indexing copies, so the tensors never share the read-only cached arrays.
    rows = np.asarray(split_indices(split, len(targets)), dtype=np.int64)
    pixels = torch.from_numpy(images[rows]).unsqueeze(1)
    if image_size != pixels.shape[-1]:
        pixels = F.interpolate(
            pixels, size=(image_size, image_size), mode="bilinear", align_corners=False
        )
    return pixels.clamp(0.0, 1.0).contiguous(), torch.from_numpy(targets[rows])


def upsample(images: Tensor, input_size: tuple[int, int], channels: int) -> Tensor:
    """``N×8×8`` in [0, 1] → ``N×channels×H×W`` by bilinear interpolation."""
    pixels = F.interpolate(images[:, None], size=input_size, mode="bilinear", align_corners=False)
    pixels = pixels.clamp_(0.0, 1.0)
    return pixels.expand(-1, channels, -1, -1).contiguous() if channels != 1 else pixels


@datasets.register("digits")
class Digits(Dataset):
    """scikit-learn ``load_digits``: labels 0–9, ids ``digits:<index in load_digits>``."""

    name: ClassVar[str] = "digits"

    def __init__(
        self,
        split: str = "test",
        *,
        input_size: int | tuple[int, int] = (224, 224),
        channels: int = 3,
    ):
        super().__init__(input_size=input_size, channels=channels, split=split)
        images, targets = digits_arrays()
        self.split = split
        self.source_indices = split_indices(split, len(images))
        self.ids = [f"digits:{i}" for i in self.source_indices]
        self.labels = [int(targets[i]) for i in self.source_indices]
        self.label_names = {d: str(d) for d in range(10)}

    def load(self, indices: Sequence[int]) -> ImageBatch:
        """One vectorised interpolation for the whole batch (these images cannot be corrupt)."""
        indices = self._check_indices(indices)
        if not indices:
            return self._empty_batch()
        images, _ = digits_arrays()
        rows = [self.source_indices[i] for i in indices]
        pixels = upsample(torch.from_numpy(images[rows]), self.input_size, self.channels)
        return ImageBatch(
            ids=[self.ids[i] for i in indices],
            pixels=pixels,
            labels=torch.tensor([self.labels[i] for i in indices], dtype=torch.long),
        )
