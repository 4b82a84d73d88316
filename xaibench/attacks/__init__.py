"""Built-in attacks. Importing this package registers them in ``xaibench.registry.attacks``."""

from __future__ import annotations

from . import exiaa, gaussian_noise  # noqa: F401  (registration side effects)
from .attack_images import (
    ATTACK_IMAGE_SOURCES,
    AttackImages,
    attack_image_attributions,
    running_up_classes,
    select_attack_images,
)
from .exiaa import ROW_COLUMNS, ExIAA, InjectionGridAttack
from .gaussian_noise import GaussianNoise
from .injection import (
    PAPER_ALPHAS,
    PAPER_N_ATTACK_IMAGES,
    PAPER_TOPKS,
    descending_ranks,
    inject_grid,
    positive_counts,
    topk_entry_counts,
    validate_count,
    validate_fractions,
)

__all__ = [
    "ATTACK_IMAGE_SOURCES",
    "PAPER_ALPHAS",
    "PAPER_N_ATTACK_IMAGES",
    "PAPER_TOPKS",
    "ROW_COLUMNS",
    "AttackImages",
    "ExIAA",
    "GaussianNoise",
    "InjectionGridAttack",
    "attack_image_attributions",
    "descending_ranks",
    "inject_grid",
    "positive_counts",
    "running_up_classes",
    "select_attack_images",
    "topk_entry_counts",
    "validate_count",
    "validate_fractions",
]
