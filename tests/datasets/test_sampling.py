"""sample_one_per_class: eXIAA's "one random image from each of N random classes"."""

from __future__ import annotations

from collections import Counter

import pytest

from xaibench.datasets import Dataset, Digits, load_dataset
from xaibench.errors import ConfigError
from xaibench.registry import datasets


class _Listing(Dataset):
    """A dataset that only lists: enough for sampling."""

    name = "listing"

    def __init__(self, labels: list[int]):
        super().__init__()
        self.labels = list(labels)
        self.ids = [f"item:{i}" for i in range(len(labels))]


@pytest.fixture(scope="module")
def digits() -> Digits:
    return Digits(split="all", input_size=8)


def test_deterministic_for_a_seed_and_different_for_another(digits: Digits) -> None:
    first = digits.sample_one_per_class(6, seed=7)
    assert digits.sample_one_per_class(6, seed=7) == first
    # A fresh instance gives the same draw: nothing but the listing and the seed matters.
    assert Digits(split="all", input_size=8).sample_one_per_class(6, seed=7) == first
    assert digits.sample_one_per_class(6, seed=8) != first


@pytest.mark.parametrize("n_classes", [1, 4, 10])
def test_one_image_from_each_of_n_distinct_classes(digits: Digits, n_classes: int) -> None:
    picks = digits.sample_one_per_class(n_classes, seed=0)
    classes = [digits.labels[i] for i in picks]
    assert len(picks) == n_classes
    assert len(set(classes)) == n_classes  # exactly one image per chosen class
    assert classes == sorted(classes)  # returned in class order


def test_all_classes_when_n_is_none_or_too_large(digits: Digits) -> None:
    for n_classes in (None, 10, 50):
        picks = digits.sample_one_per_class(n_classes, seed=1)
        assert [digits.labels[i] for i in picks] == list(range(10))


def test_classes_and_images_are_drawn_at_random(digits: Digits) -> None:
    class_sets = Counter(
        frozenset(digits.labels[i] for i in digits.sample_one_per_class(3, seed=s)) for s in range(40)
    )
    assert len(class_sets) > 10
    # Within one class (0, first in class order) the image changes with the seed too.
    chosen = [digits.sample_one_per_class(None, seed=s)[0] for s in range(20)]
    assert len(set(chosen)) > 5


def test_larger_n_extends_a_smaller_sample(digits: Digits) -> None:
    small = set(digits.sample_one_per_class(3, seed=5))
    large = set(digits.sample_one_per_class(7, seed=5))
    assert small <= large


def test_unlabelled_images_are_each_a_class() -> None:
    dataset = _Listing([-1] * 6 + [3, 3, 3])
    picks = dataset.sample_one_per_class(None, seed=0)
    assert len(picks) == 7
    assert set(range(6)) <= set(picks)
    assert len([i for i in picks if dataset.labels[i] == 3]) == 1
    assert len(_Listing([-1] * 6).sample_one_per_class(4, seed=2)) == 4


def test_empty_and_invalid() -> None:
    assert _Listing([]).sample_one_per_class(3, seed=0) == []
    with pytest.raises(ValueError):
        _Listing([0, 1]).sample_one_per_class(0, seed=0)


def test_registry_and_load_dataset() -> None:
    assert {"samples", "imagenet", "image_folder", "digits"} <= set(datasets.names())
    assert [p.name for p in datasets.params("digits")] == ["split"]
    assert [p.name for p in datasets.params("imagenet")] == ["root", "labels"]
    assert [p.name for p in datasets.params("samples")] == ["names"]
    dataset = load_dataset("digits", input_size=(12, 12), channels=1, split="test")
    description = dataset.describe()
    assert isinstance(dataset, Digits)
    assert description["name"] == "digits" and description["size"] == 360
    assert description["params"] == {"split": "test"}
    with pytest.raises(ConfigError, match="split"):
        load_dataset("digits", input_size=(12, 12), channels=1, splits="test")
