"""The digits CNN: accuracy, caching, determinism, DeepLIFT-friendliness.

The split rule and preprocessing of its data are tested with the dataset
(tests/datasets/test_digits.py); its training loop is ``xaibench.training``'s.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from captum.attr import DeepLift

from xaibench.models import digits_arrays, load_model
from xaibench.models.digits_cnn import DigitsCNN, load_digits_cnn
from xaibench.training.digits import digits_cache_path, train_digits_cnn
from xaibench.types import Classifier

TINY = {"epochs": 1, "width": 4, "image_size": 16, "seed": 3}


def test_trained_model_reaches_90_percent(digits_classifier: Classifier) -> None:
    pixels, labels = digits_arrays("test", 32)
    with torch.no_grad():
        accuracy = float((digits_classifier(pixels).argmax(1) == labels).float().mean())
    assert accuracy >= 0.9
    assert accuracy == pytest.approx(digits_classifier.test_accuracy, abs=1e-6)
    assert f"test accuracy {accuracy:.3f}" in digits_classifier.pretrained_source
    assert "train split: 1437 images" in digits_classifier.pretrained_source
    assert digits_classifier.input_size == (32, 32) and digits_classifier.in_channels == 1


def test_loaded_model_is_ready_for_attribution(digits_classifier: Classifier) -> None:
    assert not digits_classifier.training
    assert not any(p.requires_grad for p in digits_classifier.parameters())
    assert digits_classifier.reused_modules == []


def test_second_load_hits_the_cache(digits_classifier: Classifier, xaibench_cache: Path) -> None:
    path = digits_cache_path()
    assert path.is_relative_to(xaibench_cache) and path.is_file()
    assert str(path) in digits_classifier.pretrained_source
    mtime = path.stat().st_mtime_ns
    again = load_model("digits_cnn")
    assert path.stat().st_mtime_ns == mtime
    assert any("loaded from cache" in note for note in again.notes)
    for (key, a), (_, b) in zip(
        digits_classifier.state_dict().items(), again.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), key
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["test_accuracy"] == pytest.approx(again.test_accuracy)


def test_other_config_gets_its_own_file(xaibench_cache: Path) -> None:
    default = digits_cache_path()
    tiny = digits_cache_path(**TINY)
    assert tiny != default
    assert digits_cache_path(**{**TINY, "seed": 4}) != tiny
    classifier = load_model("digits_cnn", **TINY)
    assert tiny.is_file() and str(tiny) in classifier.pretrained_source
    assert classifier.input_size == (16, 16)
    assert classifier(torch.rand(2, 1, 16, 16)).shape == (2, 10)


def test_damaged_cache_entry_is_retrained(xaibench_cache: Path) -> None:
    config = {**TINY, "seed": 11}
    first = load_model("digits_cnn", **config)
    path = digits_cache_path(**config)
    path.write_bytes(b"not a torch file")
    second = load_model("digits_cnn", **config)
    assert any("trained now" in note for note in second.notes)
    assert torch.equal(first.model.fc.weight, second.model.fc.weight)


def test_training_is_deterministic() -> None:
    state_a, accuracy_a = train_digits_cnn(**TINY)
    state_b, accuracy_b = train_digits_cnn(**TINY)
    state_c, _ = train_digits_cnn(**{**TINY, "seed": 4})
    assert accuracy_a == accuracy_b
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)
    assert not torch.equal(state_a["fc.weight"], state_c["fc.weight"])


def test_training_leaves_the_global_rng_alone() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    train_digits_cnn(**TINY)
    assert torch.equal(torch.rand(3), expected)


def test_deeplift_is_complete_on_the_digits_cnn(digits_classifier: Classifier) -> None:
    # Every non-linearity is a hooked nn.ReLU, so DeepLIFT's rescale rule must satisfy
    # completeness: Σ attributions = f(x) − f(baseline), up to float error.
    pixels, labels = digits_arrays("test", 32)
    x, target = pixels[:6], labels[:6]
    attributions, delta = DeepLift(digits_classifier).attribute(
        x, baselines=torch.zeros_like(x), target=target, return_convergence_delta=True
    )
    with torch.no_grad():
        gap = digits_classifier(x) - digits_classifier(torch.zeros_like(x))
    change = gap.gather(1, target[:, None]).squeeze(1)
    assert torch.allclose(attributions.sum(dim=(1, 2, 3)), change, atol=1e-3, rtol=1e-4)
    assert float(delta.abs().max()) < 1e-3


def test_load_digits_cnn_wraps_the_weights(digits_classifier: Classifier) -> None:
    state = digits_classifier.model.state_dict()
    again = load_digits_cnn(state, width=16, image_size=32, name="mine", source="here", notes=["n"])
    assert isinstance(again.model, DigitsCNN)
    assert again.name == "mine" and again.pretrained_source == "here" and again.notes == ["n"]
    assert again.in_channels == 1 and again.input_size == (32, 32) and again.class_names[3] == "3"
    x = digits_arrays("test", 32)[0][:4]
    with torch.no_grad():
        assert torch.equal(again(x), digits_classifier(x))
