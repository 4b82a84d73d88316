"""Small classifiers for the explainer tests, built directly (no model zoo)."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402

from xaibench.types import Classifier  # noqa: E402

from .helpers import seeded, tiny_cnn, wrap  # noqa: E402


@pytest.fixture(scope="module")
def tiny() -> Classifier:
    return wrap(seeded(0, tiny_cnn), "tiny_cnn", 16, 5)


@pytest.fixture(scope="module")
def resnet18() -> Classifier:
    import timm

    model = seeded(1, lambda: timm.create_model("resnet18", pretrained=False, num_classes=10))
    return wrap(model, "resnet18", 32, 10, mean=0.45, std=0.25)


@pytest.fixture(scope="module")
def vit() -> Classifier:
    import timm

    model = seeded(
        2,
        lambda: timm.create_model(
            "vit_tiny_patch16_224", pretrained=False, img_size=32, num_classes=10
        ),
    )
    return wrap(model, "vit_tiny_patch16_32", 32, 10)


@pytest.fixture(scope="module")
def lite0() -> Classifier:
    import timm

    model = seeded(3, lambda: timm.create_model("tf_efficientnet_lite0", pretrained=False))
    return wrap(model, "tf_efficientnet_lite0", 224, 1000).use_channels_last()
