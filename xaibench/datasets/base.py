"""The ``Dataset`` base class and the shared ImageNet-eval preprocessing.

A dataset lists its items cheaply at construction (ids, labels) and decodes images only in
``load``. Every image leaves ``load`` in pixel space: float32, ``C×H×W``, values in ``[0, 1]``
(see ``xaibench.types``). An unreadable file is skipped with a warning and recorded in
``Dataset.skipped``; it never takes the other images of the batch down with it.
"""

from __future__ import annotations

import struct
import warnings
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import PurePath
from typing import Any, ClassVar

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from ..types import UNKNOWN_LABEL, ImageBatch

#: What decoding a broken, truncated or foreign file can raise. ``UnidentifiedImageError`` and
#: truncated-JPEG errors are ``OSError``s; PIL raises ``SyntaxError`` for some broken PNG
#: chunks and ``DecompressionBombError`` (an ``Exception``) for absurd sizes.
IMAGE_READ_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    ValueError,
    SyntaxError,
    EOFError,
    struct.error,
    zlib.error,
    Image.DecompressionBombError,
)

#: ImageNet evaluation resizes the short side to 256 for a 224 crop (timm's crop_pct 0.875).
RESIZE_RATIO = 256 / 224


class ImageReadError(Exception):
    """Raised by a dataset's reader for an item it cannot provide; the item is skipped."""


# --------------------------------------------------------------------------------------
# Preprocessing
# --------------------------------------------------------------------------------------


def _normalise_size(input_size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(input_size, int):
        size = (input_size, input_size)
    else:
        size = tuple(int(s) for s in input_size)
    if len(size) != 2 or min(size) <= 0:
        raise ValueError(f"input_size must be (height, width) with positive sides, got {input_size!r}")
    return size[0], size[1]


def _check_channels(channels: int) -> int:
    if int(channels) not in (1, 3):
        raise ValueError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels!r}")
    return int(channels)


def _resized_shape(height: int, width: int, input_size: tuple[int, int]) -> tuple[int, int]:
    """Short side to ``round(min(input_size) · 256/224)``, aspect ratio kept.

    The long side follows torchvision's ``Resize(int)`` (truncation), so the result equals
    timm's/torchvision's eval transform. If a non-square crop would not fit, the image is
    scaled up just enough to cover it.
    """
    short_target = round(min(input_size) * RESIZE_RATIO)
    short, long = min(height, width), max(height, width)
    new_short, new_long = short_target, int(short_target * long / short)
    new_h, new_w = (new_short, new_long) if height <= width else (new_long, new_short)
    crop_h, crop_w = input_size
    if new_h < crop_h or new_w < crop_w:
        scale = max(crop_h / height, crop_w / width)
        new_h, new_w = max(crop_h, round(height * scale)), max(crop_w, round(width * scale))
    return new_h, new_w


def _crop_box(height: int, width: int, input_size: tuple[int, int]) -> tuple[int, int, int, int]:
    """Centre crop with torchvision's ``CenterCrop`` rounding; PIL box (left, top, right, bottom)."""
    crop_h, crop_w = input_size
    top = int(round((height - crop_h) / 2.0))
    left = int(round((width - crop_w) / 2.0))
    return left, top, left + crop_w, top + crop_h


def _resize_crop(image: Image.Image, input_size: tuple[int, int]) -> Image.Image:
    new_h, new_w = _resized_shape(image.height, image.width, input_size)
    if (new_h, new_w) != (image.height, image.width):
        image = image.resize((new_w, new_h), Image.Resampling.BICUBIC)
    return image.crop(_crop_box(new_h, new_w, input_size))


def _as_float_channels(array: np.ndarray) -> np.ndarray:
    """Any non-uint8 array → float32 in [0, 1] (integers by their dtype's maximum)."""
    if array.dtype == np.bool_:
        return array.astype(np.float32)
    if np.issubdtype(array.dtype, np.integer):
        return np.clip(array.astype(np.float32) / np.iinfo(array.dtype).max, 0.0, 1.0)
    return np.clip(array.astype(np.float32), 0.0, 1.0)


def _pil_to_hwc(image: Image.Image) -> np.ndarray:
    """A PIL image as an ``H×W×C`` array (uint8, or float32 for 16-bit/float modes), C ∈ {1, 3}."""
    mode = image.mode
    if mode in ("RGB", "L"):
        pass
    elif mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit grayscale (PNG): keep the precision instead of PIL's clipping to 0..255.
        return (np.asarray(image, dtype=np.float64) / 65535.0).clip(0, 1)[..., None]
    elif mode == "F":
        return np.asarray(image, dtype=np.float32)[..., None]
    elif mode in ("1", "LA", "La"):
        image = image.convert("L")
    else:  # RGBA (alpha dropped), P, CMYK, YCbCr, …
        image = image.convert("RGB")
    array = np.asarray(image)
    return array[..., None] if array.ndim == 2 else array


def to_model_pixels(
    image: np.ndarray | Image.Image,
    input_size: int | Sequence[int],
    channels: int = 3,
) -> Tensor:
    """Standard ImageNet-eval preprocessing, in pixel space: ``C×H×W`` float32 in ``[0, 1]``.

    Resize the short side to ``round(min(input_size) · 256/224)`` with PIL bicubic, centre-crop
    to ``input_size`` (height, width), scale to ``[0, 1]``. Arrays are ``H×W`` or ``H×W×C``
    (uint8 as 0..255, other integers by their dtype's range, floats as ``[0, 1]``). Grayscale is
    repeated to 3 channels when ``channels == 3``; colour becomes the plain mean of R, G and B
    when ``channels == 1``; an alpha channel is dropped.
    """
    size = _normalise_size(input_size)
    channels = _check_channels(channels)
    array = _pil_to_hwc(image) if isinstance(image, Image.Image) else np.asarray(image)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[2] not in (1, 2, 3, 4) or min(array.shape[:2]) == 0:
        raise ValueError(f"expected an H×W or H×W×C image (C ≤ 4), got shape {array.shape}")
    # Drop alpha: gray+alpha → gray, RGBA → RGB.
    array = array[..., :1] if array.shape[2] == 2 else array[..., :3]

    if array.dtype == np.uint8:
        pil = Image.fromarray(array[..., 0] if array.shape[2] == 1 else array)
        out = np.asarray(_resize_crop(pil, size), dtype=np.float32) / 255.0
        out = out[..., None] if out.ndim == 2 else out
    else:
        # Float data: PIL's bicubic works on single-channel float ("F") images only, so each
        # channel is resized on its own; bicubic overshoot is clipped back to [0, 1].
        floats = _as_float_channels(array)
        planes = [
            np.asarray(_resize_crop(Image.fromarray(floats[..., c], mode="F"), size))
            for c in range(floats.shape[2])
        ]
        out = np.clip(np.stack(planes, axis=-1), 0.0, 1.0).astype(np.float32)

    tensor = torch.from_numpy(np.ascontiguousarray(out)).permute(2, 0, 1)
    if channels == 3 and tensor.shape[0] == 1:
        tensor = tensor.expand(3, -1, -1)
    elif channels == 1 and tensor.shape[0] == 3:
        tensor = tensor.mean(dim=0, keepdim=True)
    return tensor.contiguous()


# --------------------------------------------------------------------------------------
# Dataset
# --------------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


class Dataset:
    """Base class of image datasets: cheap listing at construction, decoding in ``load``.

    Subclasses fill ``ids``, ``labels`` (``-1`` = unknown) and ``label_names`` in ``__init__``
    and implement ``_read(index)``, returning a PIL image or an ``H×W[×C]`` array (raise
    ``ImageReadError`` or let PIL's errors through for an unreadable item). ``input_size`` and
    ``channels`` come from the model (registry runtime arguments); the other keyword
    parameters are suite parameters, recorded in ``params``.
    """

    name: ClassVar[str]
    #: Threads used to decode a batch; PIL releases the GIL while decoding and resizing.
    decode_threads: ClassVar[int] = 1

    def __init__(
        self,
        *,
        input_size: int | tuple[int, int] = (224, 224),
        channels: int = 3,
        **params: Any,
    ):
        self.input_size = _normalise_size(input_size)
        self.channels = _check_channels(channels)
        self.params: dict[str, Any] = {k: _jsonable(v) for k, v in params.items()}
        self.ids: list[str] = []
        self.labels: list[int] = []
        self.label_names: dict[int, str] = {}
        self.skipped: list[tuple[str, str]] = []

    # -- listing --------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({params}) with {len(self)} images"

    @property
    def num_classes(self) -> int:
        """Distinct known labels among the items (0 for an unlabelled dataset)."""
        return len({label for label in self.labels if label != UNKNOWN_LABEL})

    def source(self, index: int) -> str:
        """What a warning names for item ``index`` (a file path where there is one)."""
        return self.ids[index]

    def _check_indices(self, indices: Sequence[int]) -> list[int]:
        checked = []
        for i in indices:
            i = int(i)
            if not 0 <= i < len(self):
                raise IndexError(f"{self.name}: index {i} out of range for {len(self)} images")
            checked.append(i)
        return checked

    # -- loading --------------------------------------------------------------------------
    def _read(self, index: int) -> np.ndarray | Image.Image:  # pragma: no cover - abstract
        raise NotImplementedError

    def _load_one(self, index: int) -> Tensor | str:
        """The model-ready image, or the reason it could not be read."""
        try:
            image = self._read(index)
        except ImageReadError as exc:
            return str(exc)
        except IMAGE_READ_ERRORS as exc:
            return f"{type(exc).__name__}: {exc}"
        return to_model_pixels(image, self.input_size, self.channels)

    def _record_skip(self, index: int, reason: str) -> None:
        where = self.source(index)
        warnings.warn(
            f"xaibench: {self.name}: skipping unreadable image {where} ({reason})",
            RuntimeWarning,
            stacklevel=3,
        )
        if (where, reason) not in self.skipped:
            self.skipped.append((where, reason))

    def _empty_batch(self) -> ImageBatch:
        return ImageBatch(
            ids=[],
            pixels=torch.empty(0, self.channels, *self.input_size, dtype=torch.float32),
            labels=torch.empty(0, dtype=torch.long),
        )

    def load(self, indices: Sequence[int]) -> ImageBatch:
        """Decode and preprocess the items at ``indices``, in that order.

        Unreadable items are left out of the batch, with a warning naming the file and the
        reason, and recorded in ``skipped``.
        """
        indices = self._check_indices(indices)
        threads = min(self.decode_threads, len(indices))
        if threads > 1:
            with ThreadPoolExecutor(max_workers=threads) as pool:
                results = list(pool.map(self._load_one, indices))
        else:
            results = [self._load_one(i) for i in indices]
        kept, pixels = [], []
        for index, result in zip(indices, results, strict=True):
            # Warnings are raised here, in the calling thread, so filters and pytest see them.
            if isinstance(result, str):
                self._record_skip(index, result)
            else:
                kept.append(index)
                pixels.append(result)
        if not kept:
            return self._empty_batch()
        return ImageBatch(
            ids=[self.ids[i] for i in kept],
            pixels=torch.stack(pixels),
            labels=torch.tensor([self.labels[i] for i in kept], dtype=torch.long),
        )

    def load_all(self) -> ImageBatch:
        return self.load(range(len(self)))

    # -- sampling -------------------------------------------------------------------------
    def sample_one_per_class(self, n_classes: int | None, seed: int, per_class: int = 1) -> list[int]:
        """eXIAA's protocol: one random image from each of ``n_classes`` random classes.

        Classes are the labels present; an image with an unknown label is a class of its own.
        ``n_classes=None`` (or more than there are) takes every class. The draw depends only on
        the dataset's listing and ``seed``: a permutation of all classes and one member per
        class are drawn first, whatever ``n_classes`` is, so a larger ``n_classes`` extends a
        smaller one's sample. Indices come back sorted by class.

        ``per_class > 1`` (for suites that need more images, e.g. confidence intervals over
        100 digits) takes that many members of each chosen class (all of a smaller class): the
        one-per-class pick first, then the others in a seeded random order, so a larger
        ``per_class`` extends a smaller one's sample.
        """
        if n_classes is not None and int(n_classes) <= 0:
            raise ValueError(f"n_classes must be a positive number or None, got {n_classes!r}")
        if int(per_class) <= 0:
            raise ValueError(f"per_class must be a positive number, got {per_class!r}")
        groups: dict[tuple[int, int], list[int]] = {}
        for index, label in enumerate(self.labels):
            key = (1, index) if label == UNKNOWN_LABEL else (0, int(label))
            groups.setdefault(key, []).append(index)
        if not groups:
            return []
        classes = sorted(groups)
        generator = torch.Generator().manual_seed(int(seed))
        order = torch.randperm(len(classes), generator=generator)
        draws = torch.rand(len(classes), generator=generator, dtype=torch.float64)
        wanted = len(classes) if n_classes is None else min(int(n_classes), len(classes))
        chosen = sorted(order[:wanted].tolist())
        picks = []
        for c in chosen:
            members = groups[classes[c]]
            first = min(int(draws[c] * len(members)), len(members) - 1)
            picks.append(members[first])
            if per_class > 1:
                # A stream per class so a class's extra members do not depend on the others.
                rest = [m for i, m in enumerate(members) if i != first]
                extra = torch.Generator().manual_seed(int(seed) * 1_000_003 + c + 1)
                order = torch.randperm(len(rest), generator=extra).tolist()
                picks.extend(rest[i] for i in order[: int(per_class) - 1])
        return picks

    # -- provenance -----------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """JSON-able summary for manifests and result provenance."""
        return {
            "name": self.name,
            "params": dict(self.params),
            "size": len(self),
            "num_classes": self.num_classes,
            "input_size": list(self.input_size),
            "channels": self.channels,
            "skipped": [list(item) for item in self.skipped],
        }


__all__ = [
    "IMAGE_READ_ERRORS",
    "Dataset",
    "ImageReadError",
    "to_model_pixels",
]
