"""digits: scikit-learn's 8×8 digits, the shared split rule, upsampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

from xaibench.datasets import Digits, load_dataset
from xaibench.datasets.digits import split_tensors
from xaibench.errors import ConfigError
from xaibench.models import digits_arrays


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


# -- split_tensors: whole splits as tensors, for training the digits CNN --------------------


def test_split_rule_every_fifth_image_is_test() -> None:
    bunch = load_digits()
    test_x, test_y = split_tensors("test", 8)
    train_x, train_y = split_tensors("train", 8)
    index = np.arange(len(bunch.target))
    assert len(test_y) == 360 and len(train_y) == 1437
    np.testing.assert_array_equal(test_y.numpy(), bunch.target[index % 5 == 0])
    np.testing.assert_array_equal(train_y.numpy(), bunch.target[index % 5 != 0])
    # At native size the pixels are exactly the raw values / 16.
    np.testing.assert_allclose(test_x[:, 0].numpy(), bunch.images[index % 5 == 0] / 16.0, atol=1e-7)
    assert train_x.shape == (1437, 1, 8, 8)


def test_upsampled_pixels_are_float_in_unit_range() -> None:
    pixels, labels = split_tensors("all", 32)
    assert pixels.shape == (1797, 1, 32, 32) and pixels.dtype == torch.float32
    assert labels.dtype == torch.int64
    assert float(pixels.min()) >= 0.0 and float(pixels.max()) <= 1.0
    native, _ = split_tensors("all", 8)
    # Bilinear upsampling (no corner alignment) keeps each image's mean brightness closely.
    assert torch.allclose(pixels.mean(dim=(1, 2, 3)), native.mean(dim=(1, 2, 3)), atol=0.02)


def test_unknown_split_is_rejected() -> None:
    with pytest.raises(ValueError, match="split"):
        split_tensors("validation", 32)


def test_split_tensors_match_the_dataset_and_are_the_models_digits_arrays() -> None:
    assert digits_arrays is split_tensors
    pixels, labels = split_tensors("train", 16)
    batch = Digits(split="train", input_size=16, channels=1).load([0, 7, 1436])
    assert torch.equal(pixels[[0, 7, 1436]], batch.pixels)
    assert torch.equal(labels[[0, 7, 1436]], batch.labels)
    # The tensors own their memory: writing to them cannot corrupt the cached arrays.
    pixels.zero_()
    assert float(split_tensors("train", 16)[0].max()) > 0
