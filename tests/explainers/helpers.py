"""Model and image builders shared by the explainer tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch
from torch import nn

from xaibench.types import Classifier

T = TypeVar("T")


def tiny_cnn(inplace: bool = False) -> nn.Sequential:
    """3×16×16 → 5 logits; element-wise activations Captum does not know, no max-pool."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU6(inplace=inplace),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.GELU(),
        nn.Conv2d(8, 8, 3, stride=2, padding=1),
        nn.SiLU(inplace=inplace),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 5),
    )


def wrap(model: nn.Module, name: str, size: int, num_classes: int, mean: float = 0.5, std: float = 0.5) -> Classifier:
    return Classifier(
        model,
        name=name,
        num_classes=num_classes,
        input_size=(size, size),
        mean=(mean,) * 3,
        std=(std,) * 3,
    )


def seeded(seed: int, build: Callable[[], T]) -> T:
    """Build a module from a fixed seed without disturbing the global RNG of other tests."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return build()


def images(n: int, size: int, seed: int = 0) -> torch.Tensor:
    return torch.rand((n, 3, size, size), generator=torch.Generator().manual_seed(seed))


def predicted(classifier: Classifier, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return classifier(x).argmax(1)
