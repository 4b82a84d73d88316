"""timm factories: shapes, normalisation from the pretrained cfg, offline errors, cached weights."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
import timm
import torch

from xaibench.errors import ConfigError, ResourceUnavailableError, UnknownPluginError
from xaibench.models import load_model
from xaibench.registry import models


def _fake_hub_cache(cache: Path, repo_id: str, filename: str, state: dict) -> None:
    """Lay files out the way huggingface_hub's cache does (refs/main → snapshot)."""
    from safetensors.torch import save_file

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo_dir = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo_dir / "snapshots" / commit
    snapshot.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(snapshot / filename))
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text(commit)


def test_registered_names_and_params() -> None:
    assert {"timm", "resnet18", "vit_b16", "efficientnet_lite0", "digits_cnn"} <= set(models.names())
    assert [p.name for p in models.params("timm")] == ["arch", "pretrained", "img_size", "num_classes"]
    assert [p.name for p in models.params("vit_b16")] == ["pretrained"]


def test_random_resnet18_logits_and_cfg_normalisation() -> None:
    classifier = load_model("resnet18", pretrained=False)
    cfg = timm.models.get_pretrained_cfg("resnet18.tv_in1k")
    assert classifier.input_size == (224, 224) and classifier.num_classes == 1000
    assert torch.allclose(classifier.mean.flatten(), torch.tensor(cfg.mean))
    assert torch.allclose(classifier.std.flatten(), torch.tensor(cfg.std))
    assert classifier.pretrained_source == "random initialisation (timm:resnet18.tv_in1k)"
    assert classifier.class_names[285] == "Egyptian cat"
    with torch.no_grad():
        logits = classifier(torch.rand(2, 3, 64, 64))
    assert logits.shape == (2, 1000) and torch.isfinite(logits).all()


def test_vit_tiny_at_32_pixels_via_timm_fallback() -> None:
    classifier = load_model("vit_tiny_patch16_224", pretrained=False, img_size=32)
    assert classifier.name == "vit_tiny_patch16_224"
    assert classifier.input_size == (32, 32)
    assert classifier.channels_last is False
    assert classifier.model.patch_embed.img_size == (32, 32)
    with torch.no_grad():
        assert classifier(torch.rand(3, 3, 32, 32)).shape == (3, 1000)


def test_num_classes_override_gives_plain_class_names() -> None:
    classifier = load_model("timm", arch="resnet18", pretrained=False, num_classes=7)
    assert classifier.num_classes == 7 and classifier.class_names == [str(i) for i in range(7)]
    with torch.no_grad():
        assert classifier(torch.rand(1, 3, 32, 32)).shape == (1, 7)


@pytest.mark.parametrize(
    ("name", "hub_id"),
    [("resnet18", "timm/resnet18.tv_in1k"), ("vit_b16", "timm/vit_base_patch16_224")],
)
def test_offline_missing_weights_fail_fast_with_a_way_out(
    name: str, hub_id: str, empty_hf_cache: Path
) -> None:
    started = time.perf_counter()
    with pytest.raises(ResourceUnavailableError) as caught:
        load_model(name)
    assert time.perf_counter() - started < 5  # it must not have waited on the network
    message = str(caught.value)
    assert repr(name) in message and hub_id in message
    assert "xaibench run --suite quickstart" in message
    assert "HF_HUB_OFFLINE" in message and "pretrained=false" in message


def test_unreachable_hub_becomes_resource_error(
    empty_hf_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import constants

    # A port nobody listens on: the connection is refused at once, whatever the network.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(
        constants,
        "HUGGINGFACE_CO_URL_TEMPLATE",
        f"http://127.0.0.1:{port}/{{repo_id}}/resolve/{{revision}}/{{filename}}",
    )
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{port}")
    with pytest.raises(ResourceUnavailableError, match="cannot reach the hub") as caught:
        load_model("resnet18")
    assert caught.value.__cause__ is not None
    assert "quickstart" in str(caught.value)


def test_cached_hub_weights_load_offline(empty_hf_cache: Path) -> None:
    torch.manual_seed(0)
    reference = timm.create_model("test_resnet", pretrained=False)
    with torch.no_grad():
        for parameter in reference.parameters():
            parameter.add_(0.5)  # make them differ from any fresh initialisation
    hub_id = timm.models.get_pretrained_cfg("test_resnet").hf_hub_id
    _fake_hub_cache(empty_hf_cache, hub_id, "model.safetensors", reference.state_dict())
    classifier = load_model("test_resnet")
    assert classifier.pretrained_source == f"timm:test_resnet ({hub_id})"
    assert classifier.input_size == (160, 160)
    for key, value in reference.state_dict().items():
        assert torch.equal(classifier.model.state_dict()[key], value), key


def test_unknown_model_lists_names_and_suggests() -> None:
    with pytest.raises(UnknownPluginError) as caught:
        load_model("resnet81")
    message = str(caught.value)
    assert "Did you mean 'resnet18'?" in message
    assert "efficientnet_lite0" in message and "digits_cnn" in message


def test_unknown_timm_arch_and_bad_params_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="resnet18"):
        load_model("timm", arch="resnet81", pretrained=False)
    with pytest.raises(ConfigError, match="Did you mean 'pretrained'"):
        load_model("resnet18", pretrain=False)
    with pytest.raises(ConfigError, match="arch"):
        load_model("resnet34", arch="resnet18")
