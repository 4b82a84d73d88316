"""Training classifiers for the benchmark: FPA / Rectangle augmentation, PGD adversarial training.

``augment`` and ``adversarial`` depend on torch only, so the models layer (the digits CNN)
can use them; ``train`` (generic timm × dataset training and the ``trained`` model factory)
sits above models and datasets and is imported by ``xaibench.load_builtins``.
"""

from __future__ import annotations

from .adversarial import ADVERSARIAL, PGD, accuracy_under_attack, build_adversarial
from .augment import (
    AUGMENTATIONS,
    FPA_CIFAR10,
    FPA_IMAGENET,
    FeaturePerturbation,
    RandomRectangle,
    build_augmentation,
)

__all__ = [
    "ADVERSARIAL",
    "AUGMENTATIONS",
    "FPA_CIFAR10",
    "FPA_IMAGENET",
    "PGD",
    "FeaturePerturbation",
    "RandomRectangle",
    "accuracy_under_attack",
    "build_adversarial",
    "build_augmentation",
]
