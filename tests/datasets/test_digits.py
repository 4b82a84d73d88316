"""digits: scikit-learn's 8×8 digits, the shared split rule, upsampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

from xaibench.datasets import Digits, load_dataset
from xaibench.errors import ConfigError


def test_split_sizes_and_rule() -> None:
    test = Digits(split="test", input_size=16)
    train = Digits(split="train", input_size=16)
    everything = Digits(split="all", input_size=16)
    assert (len(test), len(train), len(everything)) == (360, 1437, 1797)
    assert test.ids[:3] == ["digits:0", "digits:5", "digits:10"]
    assert all(int(i.split(":")[1]) % 5 == 0 for i in test.ids)
    assert all(int(i.split(":")[1]) % 5 != 0 for i in train.ids)
    assert set(test.ids).isdisjoint(train.ids)
    assert sorted(test.ids + train.ids, key=lambda i: int(i.split(":")[1])) == everything.ids


def test_labels_are_the_digits() -> None:
    dataset = Digits(split="test", input_size=16)
    target = load_digits().target
    assert dataset.labels == [int(target[i]) for i in range(0, 1797, 5)]
    assert set(dataset.labels) == set(range(10))
    assert dataset.label_names == {d: str(d) for d in range(10)}
    assert dataset.num_classes == 10


@pytest.mark.parametrize("channels", [1, 3])
def test_pixels_are_bilinear_upsampled_from_the_8x8_digits(channels: int) -> None:
    dataset = load_dataset("digits", input_size=(28, 32), channels=channels, split="train")
    batch = dataset.load([0, 10, 1436])
    assert batch.pixels.shape == (3, channels, 28, 32)
    assert batch.pixels.dtype == torch.float32
    assert float(batch.pixels.min()) >= 0.0 and float(batch.pixels.max()) <= 1.0
    assert batch.ids == [dataset.ids[i] for i in (0, 10, 1436)]
    source = [int(i.split(":")[1]) for i in batch.ids]
    raw = torch.from_numpy(load_digits().images[source].astype(np.float32) / 16.0)[:, None]
    expected = F.interpolate(raw, size=(28, 32), mode="bilinear", align_corners=False)
    assert torch.allclose(batch.pixels, expected.expand(-1, channels, -1, -1))
    assert batch.labels.tolist() == [dataset.labels[i] for i in (0, 10, 1436)]


def test_bad_split_and_bad_index() -> None:
    with pytest.raises(ConfigError, match="train, test, all"):
        Digits(split="validation")
    with pytest.raises(IndexError):
        Digits(input_size=8).load([360])
    assert len(Digits(input_size=8).load([])) == 0
