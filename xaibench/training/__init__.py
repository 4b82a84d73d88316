"""Training classifiers for the benchmark: FPA / Rectangle augmentation, PGD adversarial training.

Layering: this package sits above ``xaibench.models`` (architectures, weight loading,
``Classifier`` wrapping) and ``xaibench.datasets``; neither imports it.

* ``augment``: FPA and Rectangle on pixel-space mini-batches; ``adversarial``: PGD.
* ``loop``: the one training loop (``fit``) and the seed streams (``derived_seed``).
* ``digits``: the digits CNN models that train on first use (registers ``digits_cnn``,
  ``digits_cnn_fpa``, ``digits_cnn_rect``, ``digits_cnn_pgd``).
* ``digits_vit``: the small timm ViT on digits that trains on first use (registers
  ``digits_vit``).
* ``train``: any timm architecture on any dataset (``train_classifier``) and the ``trained``
  model that loads the result (registered here).
* ``runs``: several models in one call (``train_models``), what ``xaibench train`` runs.

``xaibench.load_builtins`` imports this package, which registers those models.
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
from .digits import DigitsTraining, build_digits_cnn, digits_cache_path, train_digits_cnn
from .digits_vit import digits_vit_cache_path, train_digits_vit
from .loop import derived_seed, fit, seeded_build
from .runs import TrainedModel, TrainJob, TrainPlan, plan_training, train_models
from .train import TrainConfig, TrainResult, load_trained, make_config, train_classifier

__all__ = [
    "ADVERSARIAL",
    "AUGMENTATIONS",
    "FPA_CIFAR10",
    "FPA_IMAGENET",
    "PGD",
    "DigitsTraining",
    "FeaturePerturbation",
    "RandomRectangle",
    "TrainConfig",
    "TrainJob",
    "TrainPlan",
    "TrainResult",
    "TrainedModel",
    "accuracy_under_attack",
    "build_adversarial",
    "build_augmentation",
    "build_digits_cnn",
    "derived_seed",
    "digits_cache_path",
    "digits_vit_cache_path",
    "fit",
    "load_trained",
    "make_config",
    "plan_training",
    "seeded_build",
    "train_classifier",
    "train_digits_cnn",
    "train_digits_vit",
    "train_models",
]
