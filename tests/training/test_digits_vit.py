"""The digits ViT (``digits_vit``): trains on first use, accurate, deterministic, cached, timm inside.

The models train into the session's private cache (tests/conftest.py), or into a test's own
``tmp_path`` where two caches must not share an entry. ``TINY`` trains in about 5 s on one
thread and reaches 0.950 test accuracy (seed 0; measured, docs/training.md).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from timm.layers import Attention, use_fused_attn
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from xaibench.errors import ConfigError
from xaibench.explainers.attention_routing import routed_attention
from xaibench.models import digits_arrays, load_model
from xaibench.training import digits_vit as vit_module
from xaibench.training.digits_vit import digits_vit_cache_path

TINY = {"epochs": 15, "width": 48, "depth": 1}
#: For determinism only (accuracy does not matter): about a second to train.
MINI = {"epochs": 2, "width": 16, "depth": 1}


@pytest.fixture(scope="module")
def tiny():
    return load_model("digits_vit", **TINY)


def test_trains_accurately_and_records_how(tiny) -> None:
    pixels, labels = digits_arrays("test", 32)
    with torch.no_grad():
        accuracy = float((tiny(pixels).argmax(1) == labels).float().mean())
    assert accuracy >= 0.85
    assert accuracy == pytest.approx(tiny.test_accuracy, abs=1e-6)
    assert tiny.name == "digits_vit"
    source = "ViT (patch 8, width 48, depth 1, 4 heads) trained on scikit-learn digits"
    assert source in tiny.pretrained_source
    info = tiny.training_info
    path = Path(info["cache_path"])
    assert path == digits_vit_cache_path(**TINY) and path.name.startswith("digits_vit-")
    assert path.parent == Path(vit_module.cache_dir()) / "models" and path.is_file()
    assert info["epochs"] == 15 and info["width"] == 48 and info["depth"] == 1 and info["seed"] == 0
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["test_accuracy"] == pytest.approx(tiny.test_accuracy)
    assert sidecar["n_train"] == 1437 and sidecar["train_seconds"] > 0
    assert sidecar["torch"] == torch.__version__
    assert sidecar["config"]["depth"] == 1 and sidecar["config"]["patch_size"] == 8


def test_second_load_comes_from_the_cache(tiny, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args, **kwargs):
        raise AssertionError("retrained although the model is cached")

    monkeypatch.setattr(vit_module, "train_digits_vit", fail)
    again = load_model("digits_vit", **TINY)
    assert any("loaded from cache" in note for note in again.notes)
    assert again.training_info["cached"] is True and tiny.training_info["cached"] is False
    assert again.test_accuracy == tiny.test_accuracy
    for (key, a), (_, b) in zip(tiny.state_dict().items(), again.state_dict().items(), strict=True):
        assert torch.equal(a, b), key


def test_same_seed_gives_identical_weights_in_separate_caches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    states = {}
    for run, seed in (("a", 0), ("b", 0), ("c", 1)):
        monkeypatch.setenv("XAIBENCH_CACHE", str(tmp_path / run))
        model = load_model("digits_vit", **MINI, seed=seed)
        assert model.training_info["cached"] is False
        assert Path(model.training_info["cache_path"]).is_relative_to(tmp_path / run)
        states[run] = model.state_dict()
    assert states["a"].keys() == states["b"].keys()
    assert all(torch.equal(states["a"][k], states["b"][k]) for k in states["a"])
    assert not torch.equal(states["a"]["model.head.weight"], states["c"]["model.head.weight"])


def test_is_a_timm_vit_with_timm_attention_and_ten_logits(tiny) -> None:
    network = tiny.model
    assert isinstance(network, VisionTransformer)
    blocks = [m for m in tiny.modules() if isinstance(m, Attention)]
    assert len(blocks) == TINY["depth"]
    # Training switches timm's fused attention off; the returned model has timm's default back.
    assert all(b.fused_attn == use_fused_attn() for b in blocks)
    assert any(isinstance(m, nn.LayerNorm) for m in tiny.modules())
    assert any(isinstance(m, nn.GELU) for m in tiny.modules())
    assert all(m.p == 0 for m in tiny.modules() if isinstance(m, nn.Dropout))
    assert tiny.in_channels == 1 and tiny.input_size == (32, 32) and tiny.num_classes == 10
    assert tiny.mean.flatten().tolist() == [0.5] and tiny.std.flatten().tolist() == [0.5]
    x = torch.rand(3, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = tiny(x)
        with routed_attention(tiny) as routed:
            assert len(routed) == TINY["depth"]
            routed_logits = tiny(x)
    assert logits.shape == (3, 10) and torch.isfinite(logits).all()
    torch.testing.assert_close(routed_logits, logits, rtol=1e-5, atol=1e-5)


def test_cache_key_and_bad_values() -> None:
    paths = {
        digits_vit_cache_path(),
        digits_vit_cache_path(epochs=5),
        digits_vit_cache_path(width=32),
        digits_vit_cache_path(depth=2),
        digits_vit_cache_path(image_size=16),
        digits_vit_cache_path(seed=1),
    }
    assert len(paths) == 6
    for bad, match in [
        ({"width": 30}, "multiple of 4"),
        ({"depth": 0}, "depth ≥ 1"),
        ({"epochs": 0}, "epochs ≥ 1"),
        ({"image_size": 20}, "patch size 8"),
        ({"image_size": 8}, "at least 16"),
    ]:
        with pytest.raises(ConfigError, match=match):
            load_model("digits_vit", **bad)


@pytest.mark.slow
def test_default_configuration_is_accurate() -> None:
    model = load_model("digits_vit")
    assert model.test_accuracy >= 0.95
    assert model.training_info["epochs"] == vit_module.EPOCHS
