"""samples: the offline photos shipped by scikit-image, matplotlib and scikit-learn."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from xaibench.datasets import Samples, load_dataset
from xaibench.datasets import samples as samples_module
from xaibench.errors import ConfigError, ResourceUnavailableError


@pytest.fixture(scope="module")
def photos() -> Samples:
    return Samples(input_size=(64, 64))


def test_at_least_eight_real_photos_load_offline(photos: Samples) -> None:
    assert len(photos) >= 8
    for expected in ("skimage:chelsea", "skimage:coffee", "skimage:astronaut", "matplotlib:grace_hopper", "sklearn:china", "sklearn:flower"):
        assert expected in photos.ids
    assert len(set(photos.ids)) == len(photos.ids)
    assert all(label == -1 for label in photos.labels)
    batch = photos.load_all()
    assert batch.pixels.shape == (len(photos), 3, 64, 64)
    assert batch.pixels.dtype == torch.float32
    assert float(batch.pixels.min()) >= 0.0 and float(batch.pixels.max()) <= 1.0
    assert batch.labels.tolist() == [-1] * len(photos)
    # Real photos, not blank frames: every image has texture.
    assert bool((batch.pixels.flatten(1).std(dim=1) > 0.02).all())


def test_chelsea_matches_an_independent_pil_resize_and_crop() -> None:
    import skimage.data

    dataset = load_dataset("samples", input_size=(64, 64), names=["skimage:chelsea"])
    pixels = dataset.load([0]).pixels[0]
    # Independently: 451×300 → short side round(64·256/224) = 73 → 109×73, centre 64×64.
    image = Image.fromarray(skimage.data.chelsea()).resize((109, 73), Image.Resampling.BICUBIC)
    left, top = round((109 - 64) / 2), round((73 - 64) / 2)
    expected = np.asarray(image.crop((left, top, left + 64, top + 64)), dtype=np.float32) / 255
    assert torch.equal(pixels, torch.from_numpy(expected).permute(2, 0, 1))


def test_names_pick_a_subset_in_the_order_given() -> None:
    dataset = Samples(names=["coffee", "skimage:chelsea", "grace_hopper", "coffee"], input_size=32)
    assert dataset.ids == ["skimage:coffee", "skimage:chelsea", "matplotlib:grace_hopper"]
    assert dataset.params["names"] == ["coffee", "skimage:chelsea", "grace_hopper", "coffee"]
    assert dataset.describe()["ids"] == dataset.ids


def test_unknown_names_list_the_available_ones() -> None:
    with pytest.raises(ConfigError, match="at least one"):
        Samples(names=[])
    with pytest.raises(ConfigError) as excinfo:
        Samples(names=["chelsa"])
    message = str(excinfo.value)
    assert "chelsa" in message and "skimage:chelsea" in message and "sklearn:china" in message


def test_photos_are_decoded_once_per_process(photos: Samples) -> None:
    first = samples_module.photo("skimage:coffee")
    assert samples_module.photo("skimage:coffee") is first
    assert not first.flags.writeable
    with pytest.raises(ValueError):
        first[0, 0, 0] = 0


def test_grayscale_model_gets_one_channel() -> None:
    batch = Samples(names=["astronaut"], input_size=(48, 40), channels=1).load([0])
    assert batch.pixels.shape == (1, 1, 48, 40)


def test_each_photo_is_its_own_class(photos: Samples) -> None:
    picks = photos.sample_one_per_class(5, seed=3)
    assert len(picks) == 5 and len(set(picks)) == 5
    assert photos.sample_one_per_class(None, seed=3) == list(range(len(photos)))


def test_a_photo_that_needs_the_network_is_skipped_with_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    def offline() -> np.ndarray:
        raise ConnectionError("no network")

    monkeypatch.setitem(samples_module.CATALOGUE, "skimage:far_away", offline)
    monkeypatch.setattr(samples_module, "_UNAVAILABLE", {})
    with pytest.warns(RuntimeWarning, match="skimage:far_away"):
        dataset = Samples(names=["far_away", "chelsea"], input_size=16)
    assert dataset.ids == ["skimage:chelsea"]
    assert dataset.skipped[0][0] == "skimage:far_away" and "no network" in dataset.skipped[0][1]
    # Tried once per process: a second dataset records it without retrying or re-warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = Samples(names=["far_away", "chelsea"], input_size=16)
    assert again.skipped == dataset.skipped
    with pytest.raises(ResourceUnavailableError, match="far_away"):
        Samples(names=["far_away"])
