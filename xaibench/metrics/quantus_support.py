"""What the Quantus adapters need around a Quantus call (``quantus_metrics``).

The model as a module Quantus accepts, per-image normalisation, Quantus's global state
(numpy's RNG, ``np.trapz``, warnings) around one call, and the two perturbations that replace
Quantus 0.6 ones failing on images of more than one channel. Nothing here imports Quantus at
import time.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn


class ForwardModule(nn.Module):
    """The model Quantus wraps: ``forward`` as an eval-mode module that moves each input to
    the images' device, forwards it in chunks of ``chunk_size`` and counts the images."""

    def __init__(self, forward: Callable[[Tensor], Tensor], chunk_size: int, device: torch.device):
        super().__init__()
        self.__dict__["fn"] = forward  # never a registered submodule
        self.chunk = max(int(chunk_size), 1)
        self.device = device
        self.images = 0
        self.eval()

    def forward(self, x: Tensor) -> Tensor:
        self.images += int(x.shape[0])
        return torch.cat([self.fn(part.to(self.device)).float() for part in x.split(self.chunk)])

    def release(self) -> None:
        """Drop ``forward``: Quantus's ``lru_cache`` on its model wrapper keeps every wrapper."""
        self.__dict__["fn"] = None


def normalise_by_max(a: np.ndarray) -> np.ndarray:
    """Quantus's ``normalise_by_max`` applied to each image alone (an all-zero map stays)."""
    out = a.copy()
    for i, image in enumerate(a):
        if not np.all(image == 0.0):
            out[i] = image / np.max(np.abs(image))
    return out


@contextlib.contextmanager
def quantus_state(seed: int | None) -> Iterator[None]:
    """Around one Quantus call: the global numpy RNG seeded from ``seed`` (all 64 bits) and
    restored afterwards, ``np.trapz`` provided on numpy 2 (Quantus 0.6 still calls it), and
    Quantus's warnings silenced ("perturbation caused no change" on black pixels, …)."""
    state = np.random.get_state()
    added = not hasattr(np, "trapz")
    if added:
        np.trapz = np.trapezoid  # type: ignore[attr-defined]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if seed is not None:
                value = int(seed) % 2**64
                np.random.seed([value & 0xFFFFFFFF, value >> 32])
            yield
    finally:
        np.random.set_state(state)
        if added:
            del np.trapz  # type: ignore[attr-defined]


def broadcast_mask(arr: np.ndarray, mask: np.ndarray, **kwargs: Any) -> np.ndarray:
    """Quantus's ``baseline_replacement_by_mask`` with the mask broadcast to the image's shape
    (IROF's one-channel superpixel mask on a C-channel image; the same for one channel)."""
    from quantus.functions.perturb_func import baseline_replacement_by_mask

    return baseline_replacement_by_mask(arr=arr, mask=np.broadcast_to(mask, arr.shape), **kwargs)


def pixel_indices(arr: np.ndarray, indices: np.ndarray, **kwargs: Any) -> np.ndarray:
    """ROAD's noisy linear imputation of the pixels that have a channel entry among ``indices``
    (in rank order): ROAD ranks the C·H·W entries, the imputation indexes the H·W pixels."""
    from quantus.functions.perturb_func import noisy_linear_imputation

    pixels = np.asarray(indices).reshape(-1) % (arr.shape[-2] * arr.shape[-1])
    _, first = np.unique(pixels, return_index=True)
    return noisy_linear_imputation(arr=arr, indices=pixels[np.sort(first)], **kwargs)


PERTURB_FIXES: dict[str, Callable[..., np.ndarray]] = {
    "broadcast_mask": broadcast_mask, "pixel_indices": pixel_indices,
}


def snake(name: str) -> str:
    return name.lower() if name.isupper() else re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
