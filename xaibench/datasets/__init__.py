"""Datasets: image sources that load as ``ImageBatch`` (pixel space, labels or ``-1``).

Built-in datasets: ``samples`` (offline photos), ``digits`` (scikit-learn digits),
``image_folder`` (``<root>/<class>/<image>``) and ``imagenet`` (a WordNet-id val folder).
"""

from __future__ import annotations

from typing import Any

from ..registry import datasets
from .base import IMAGE_READ_ERRORS, Dataset, ImageReadError, to_model_pixels
from .digits import Digits
from .folder import ImageFolder
from .imagenet import ImageNet
from .samples import Samples


def load_dataset(
    name: str,
    *,
    input_size: int | tuple[int, int] = (224, 224),
    channels: int = 3,
    **params: Any,
) -> Dataset:
    """The dataset registered as ``name``, built for a model's ``input_size`` and ``channels``.

    ``params`` are the suite parameters; unknown or missing ones raise ``ConfigError``.
    """
    datasets.validate_params(name, params)
    factory = datasets.get(name)
    return factory(input_size=input_size, channels=channels, **params)


__all__ = [
    "IMAGE_READ_ERRORS",
    "Dataset",
    "Digits",
    "ImageFolder",
    "ImageNet",
    "ImageReadError",
    "Samples",
    "load_dataset",
    "to_model_pixels",
]
