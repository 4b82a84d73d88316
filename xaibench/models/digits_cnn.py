"""The digits CNN: a small architecture for scikit-learn's digits, its wrapping and weight loading.

It is the fast real model for tests and for FPA-style training experiments: real data,
real accuracy, no download. The architecture is DeepLIFT-friendly on purpose: one
activation module per call site, nothing in place, no max-pooling (strides and average
pooling only), so Captum's DeepLIFT rules apply exactly.

This module is the architecture only. The registered models that train it on first use
(``digits_cnn``, ``digits_cnn_fpa``, ``digits_cnn_rect``, ``digits_cnn_pgd``), its training
and its weight cache are in ``xaibench.training.digits`` (docs/training.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from torch import Tensor, nn

from ..datasets.digits import split_tensors as digits_arrays
from ..types import Classifier

DIGITS_MEAN = (0.5,)
DIGITS_STD = (0.5,)
NUM_CLASSES = 10


class DigitsCNN(nn.Module):
    """conv-ReLU ×3 (the first two stride 2), 4×4 average pool, linear head; 10 logits."""

    def __init__(self, width: int = 16, num_classes: int = NUM_CLASSES):
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


def wrap_digits_cnn(
    network: nn.Module,
    image_size: int,
    *,
    name: str = "digits_cnn",
    source: str = "",
    notes: Sequence[str] = (),
) -> Classifier:
    """``network`` (the digits CNN, or any 1-channel, 10-logit digits network such as the
    digits ViT) as a ``Classifier``: 1 channel of ``image_size²`` pixels in ``[0, 1]``, 10 digits."""
    return Classifier(
        network,
        name=name,
        num_classes=NUM_CLASSES,
        input_size=(image_size, image_size),
        mean=DIGITS_MEAN,
        std=DIGITS_STD,
        in_channels=1,
        class_names=[str(d) for d in range(NUM_CLASSES)],
        pretrained_source=source,
        notes=list(notes),
    )


def load_digits_cnn(
    state: Mapping[str, Tensor],
    *,
    width: int,
    image_size: int,
    name: str = "digits_cnn",
    source: str = "",
    notes: Sequence[str] = (),
) -> Classifier:
    """A ``Classifier`` around a ``DigitsCNN(width)`` holding the weights ``state``."""
    network = DigitsCNN(width)
    network.load_state_dict(state)
    return wrap_digits_cnn(network, image_size, name=name, source=source, notes=notes)


__all__ = [
    "DIGITS_MEAN",
    "DIGITS_STD",
    "DigitsCNN",
    "digits_arrays",
    "load_digits_cnn",
    "wrap_digits_cnn",
]
