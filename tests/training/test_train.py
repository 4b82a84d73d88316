"""Training with FPA / Rectangle / PGD: caching, determinism, the robustness the methods claim,
generic timm training, the ``trained`` factory's missing-cache error, and ``xaibench train``.

The digits models train into the session's private cache (tests/conftest.py), seconds each.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from xaibench import cli
from xaibench.errors import ConfigError
from xaibench.models import digits_arrays, load_model
from xaibench.training import PGD, accuracy_under_attack
from xaibench.training import digits as digits_module
from xaibench.training.digits import DigitsTraining, digits_cache_path, train_digits_cnn
from xaibench.training.train import make_config, train_classifier

TINY = {"epochs": 2, "width": 4, "image_size": 16}
TIMM_TINY = {"epochs": 1, "img_size": 32, "limit": 128, "batch_size": 64}


@pytest.fixture(scope="module")
def plain():
    return load_model("digits_cnn")


@pytest.fixture(scope="module")
def fpa():
    return load_model("digits_cnn_fpa")


@pytest.fixture(scope="module")
def test_split() -> tuple[torch.Tensor, torch.Tensor]:
    return digits_arrays("test", 32)


# --------------------------------------------------------------------------------------
# Digits models: cache, determinism, names
# --------------------------------------------------------------------------------------


def test_default_digits_cache_key_is_unchanged() -> None:
    # Adding training options must not orphan the default model's cached weights.
    old_config = {"format": digits_module.FORMAT_VERSION, "epochs": 20, "width": 16, "image_size": 32, "seed": 0}
    key = hashlib.sha256(json.dumps(old_config, sort_keys=True).encode()).hexdigest()[:16]
    assert digits_cache_path().name == f"digits_cnn-{key}.pt"
    assert digits_cache_path(training=DigitsTraining()) == digits_cache_path()
    assert digits_cache_path(training=DigitsTraining("fpa")) != digits_cache_path()
    assert digits_cache_path(training=DigitsTraining("fpa", fpa_p2=0.05)) != digits_cache_path(
        training=DigitsTraining("fpa")
    )


def test_fpa_model_trains_is_accurate_and_records_how(fpa, test_split) -> None:
    pixels, labels = test_split
    with torch.no_grad():
        accuracy = float((fpa(pixels).argmax(1) == labels).float().mean())
    assert accuracy > 0.8
    assert accuracy == pytest.approx(fpa.test_accuracy, abs=1e-6)
    assert fpa.name == "digits_cnn_fpa"
    assert "FPA augmentation (p=0.5, p1_max=0.25, p2=0.1, s_max=3)" in fpa.pretrained_source
    info = fpa.training_info
    assert info["augmentation"] == "fpa" and info["adversarial"] == "none"
    assert info["params"] == {"fpa": {"p": 0.5, "p1_max": 0.25, "p2": 0.1, "s_max": 3}}
    sidecar = json.loads(Path(info["cache_path"]).with_suffix(".json").read_text())
    assert sidecar["test_accuracy"] == pytest.approx(fpa.test_accuracy)
    assert sidecar["training"]["params"] == info["params"]
    assert sidecar["train_seconds"] > 0


def test_second_load_does_not_retrain(fpa, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args, **kwargs):
        raise AssertionError("retrained although the model is cached")

    monkeypatch.setattr(digits_module, "train_digits_cnn", fail)
    again = load_model("digits_cnn_fpa")
    assert again.training_info["cached"] is True
    assert again.training_info["cache_path"] == fpa.training_info["cache_path"]
    for (key, a), (_, b) in zip(fpa.state_dict().items(), again.state_dict().items(), strict=True):
        assert torch.equal(a, b), key
    # The same configuration through digits_cnn(augmentation="fpa") is the same cache entry.
    same = load_model("digits_cnn", augmentation="fpa")
    assert same.training_info["cache_path"] == fpa.training_info["cache_path"]
    assert same.name == "digits_cnn"


@pytest.mark.parametrize("augmentation", ["fpa", "rectangle"])
def test_augmented_training_is_deterministic_and_differs_from_plain(augmentation: str) -> None:
    training = DigitsTraining(augmentation)
    state_a, accuracy_a = train_digits_cnn(**TINY, seed=1, training=training)
    state_b, accuracy_b = train_digits_cnn(**TINY, seed=1, training=training)
    state_c, _ = train_digits_cnn(**TINY, seed=2, training=training)
    plain_state, _ = train_digits_cnn(**TINY, seed=1)
    assert accuracy_a == accuracy_b
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)
    assert not torch.equal(state_a["fc.weight"], state_c["fc.weight"])
    assert not torch.equal(state_a["fc.weight"], plain_state["fc.weight"])


def test_rect_and_pgd_factories_name_themselves() -> None:
    rect = load_model("digits_cnn_rect", **TINY)
    assert rect.name == "digits_cnn_rect" and "Rectangle" in rect.pretrained_source
    assert rect.training_info["augmentation"] == "rectangle"
    pgd = load_model("digits_cnn_pgd", epochs=1, width=4, image_size=16)
    assert pgd.name == "digits_cnn_pgd" and "PGD adversarial training" in pgd.pretrained_source
    assert pgd.training_info["params"]["pgd"]["step_size"] == pytest.approx(2.5 * 0.1 / 5)
    assert 0.0 <= pgd.training_info["pgd_test_accuracy"] <= 1.0


def test_method_parameters_without_their_method_are_rejected() -> None:
    with pytest.raises(ConfigError, match="fpa_p=0.3 applies only with augmentation='fpa'"):
        load_model("digits_cnn", fpa_p=0.3)
    with pytest.raises(ConfigError, match="pgd_epsilon"):
        load_model("digits_cnn_fpa", pgd_epsilon=0.2)
    with pytest.raises(ConfigError, match="s_max < min"):
        load_model("digits_cnn_fpa", image_size=8, fpa_s_max=8)
    with pytest.raises(ConfigError, match="unknown augmentation"):
        load_model("digits_cnn", augmentation="cutout")


# --------------------------------------------------------------------------------------
# The properties the methods are for
# --------------------------------------------------------------------------------------


def _relative_logit_drop(classifier, pixels, labels, fraction: float, seed: int) -> tuple[float, float]:
    """Mean relative drop of the true-class logit, and accuracy, with ``fraction`` of the
    pixels (all channels) set to 0 at random — the perturbation MIF/LIF applies."""
    gen = torch.Generator().manual_seed(seed)
    mask = torch.rand(pixels.shape[0], 1, *pixels.shape[2:], generator=gen) < fraction
    with torch.no_grad():
        clean = classifier(pixels).gather(1, labels[:, None]).squeeze(1)
        perturbed_logits = classifier(pixels.masked_fill(mask, 0.0))
    perturbed = perturbed_logits.gather(1, labels[:, None]).squeeze(1)
    keep = clean > 0  # a relative drop means nothing for a non-positive logit
    drop = float(((clean - perturbed) / clean)[keep].mean())
    accuracy = float((perturbed_logits.argmax(1) == labels).float().mean())
    return drop, accuracy


def test_fpa_model_is_more_robust_to_random_pixel_zeroing(plain, fpa, test_split) -> None:
    # The FPA paper's claim: trained with the perturbation, the model's logits fall far less
    # when pixels are removed at random (no information about the class is targeted).
    pixels, labels = test_split
    plain_drop, plain_accuracy = _relative_logit_drop(plain, pixels, labels, 0.3, seed=0)
    fpa_drop, fpa_accuracy = _relative_logit_drop(fpa, pixels, labels, 0.3, seed=0)
    # Measured: plain 0.52, FPA 0.08 (docs/training.md).
    assert fpa_drop < 0.5 * plain_drop
    assert fpa_accuracy > plain_accuracy


@pytest.mark.slow
def test_pgd_model_resists_pgd_better_than_the_plain_model(plain, test_split) -> None:
    pixels, labels = test_split
    robust = load_model("digits_cnn_pgd")  # ~15 s to train on 2 cores
    attack = PGD(epsilon=0.1, steps=10)  # stronger than the 5-step training attack
    plain_accuracy = accuracy_under_attack(plain, pixels, labels, attack, seed=1)
    robust_accuracy = accuracy_under_attack(robust, pixels, labels, attack, seed=1)
    # Measured: plain 0.30, PGD-trained 0.74 (docs/training.md).
    assert robust_accuracy > plain_accuracy + 0.2
    assert robust.test_accuracy > 0.9


def test_pgd_attack_stays_in_the_ball_and_the_pixel_range(plain, test_split) -> None:
    pixels, labels = test_split
    x, y = pixels[:32], labels[:32]
    adv = PGD(epsilon=0.1, steps=3).attack(plain, x, y, torch.Generator().manual_seed(0))
    assert float((adv - x).abs().max()) <= 0.1 + 1e-6
    assert float(adv.min()) >= 0.0 and float(adv.max()) <= 1.0
    with torch.no_grad():
        clean_loss = torch.nn.functional.cross_entropy(plain(x), y)
        adv_loss = torch.nn.functional.cross_entropy(plain(adv), y)
    assert adv_loss > clean_loss


# --------------------------------------------------------------------------------------
# Generic timm training and the ``trained`` factory
# --------------------------------------------------------------------------------------


def test_train_classifier_trains_a_tiny_timm_model_and_trained_loads_it() -> None:
    result = train_classifier("test_resnet", "digits", augmentation="fpa", device="cpu", **TIMM_TINY)
    assert result.cached is False
    info = result.info
    assert info["arch"] == "test_resnet" and info["augmentation"] == "fpa"
    assert Path(info["cache_path"]).name.startswith("trained-") and Path(info["cache_path"]).is_file()
    sidecar = json.loads(Path(info["cache_path"]).with_suffix(".json").read_text())
    assert sidecar["n_train"] == 128 and sidecar["n_eval"] == 360  # the digits test split
    assert sidecar["evaluated_on"] == "the dataset's test split"

    loaded = load_model("trained", arch="test_resnet", augmentation="fpa", **TIMM_TINY)
    assert loaded.in_channels == 1 and loaded.num_classes == 10 and loaded.input_size == (32, 32)
    assert loaded.test_accuracy == pytest.approx(info["test_accuracy"])
    for (key, a), (_, b) in zip(result.classifier.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), key
    pixels, labels = digits_arrays("test", 32)
    with torch.no_grad():
        accuracy = float((loaded(pixels).argmax(1) == labels).float().mean())
    assert accuracy == pytest.approx(info["test_accuracy"])

    again = train_classifier("test_resnet", "digits", augmentation="fpa", device="cpu", **TIMM_TINY)
    assert again.cached is True and again.info["cache_path"] == info["cache_path"]


def test_generic_training_is_deterministic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = train_classifier("test_resnet", "digits", seed=5, device="cpu", **TIMM_TINY)
    second = train_classifier("test_resnet", "digits", seed=5, device="cpu", force=True, **TIMM_TINY)
    assert second.cached is False
    for (key, a), (_, b) in zip(first.classifier.state_dict().items(), second.classifier.state_dict().items(), strict=True):
        assert torch.equal(a, b), key


def test_missing_trained_model_names_the_command_that_trains_it() -> None:
    params = {"arch": "test_resnet", "augmentation": "rectangle", "epochs": 1, "img_size": 32, "limit": 64}
    with pytest.raises(ConfigError) as caught:
        load_model("trained", **params)
    message = str(caught.value)
    command = (
        "xaibench train --model test_resnet --dataset digits --augmentation rectangle "
        "--epochs 1 --img-size 32 --limit 64"
    )
    assert command in message
    # Running exactly that command makes the model loadable.
    result = CliRunner().invoke(cli.app, shlex.split(command)[1:] + ["--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "test accuracy" in result.output
    loaded = load_model("trained", **params)
    assert loaded.training_info["augmentation"] == "rectangle"


def test_holdout_split_for_a_dataset_without_a_test_split(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        (tmp_path / label).mkdir()
        for i in range(10):
            array = (rng.random((12, 12, 3)) * 255).astype(np.uint8)
            Image.fromarray(array).save(tmp_path / label / f"{i}.png")
    result = train_classifier(
        "test_resnet", "image_folder", dataset_params={"root": str(tmp_path)}, epochs=1, img_size=16,
        holdout=0.2, device="cpu",
    )
    sidecar = json.loads(Path(result.info["cache_path"]).with_suffix(".json").read_text())
    assert sidecar["n_eval"] == 4 and sidecar["n_train"] == 16
    assert sidecar["evaluated_on"].startswith("a seeded held-out 20%")
    assert result.classifier.in_channels == 3 and result.classifier.num_classes == 2
    assert f"--data {tmp_path}" in make_config(
        "test_resnet", "image_folder", dataset_params={"root": str(tmp_path)}, epochs=1, img_size=16, holdout=0.2
    ).train_command()


def test_bad_training_values_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="timm has no architecture"):
        make_config("resnet_does_not_exist")
    with pytest.raises(ConfigError, match="holdout"):
        make_config("test_resnet", holdout=1.5)
    with pytest.raises(ConfigError, match="applies only with augmentation='fpa'"):
        make_config("test_resnet", fpa_p2=0.2)
    with pytest.raises(ConfigError, match="unknown augmentation"):
        make_config("test_resnet", augmentation="mixup")


# --------------------------------------------------------------------------------------
# xaibench train
# --------------------------------------------------------------------------------------


def test_cli_trains_digits_fpa_then_hits_the_cache() -> None:
    args = ["train", "--augmentation", "fpa", "--epochs", "2", "--width", "4", "--img-size", "16"]
    first = CliRunner().invoke(cli.app, args)
    assert first.exit_code == 0, first.output
    assert "digits_cnn_fpa" in first.output and "trained in" in first.output
    assert '{name = "digits_cnn_fpa", epochs = 2, image_size = 16, width = 4}' in first.output
    assert "test accuracy:" in first.output and "cache:" in first.output
    second = CliRunner().invoke(cli.app, args)
    assert second.exit_code == 0 and "already trained" in second.output


def test_cli_all_trains_the_three_augmentations() -> None:
    result = CliRunner().invoke(cli.app, ["train", "-a", "all", "--epochs", "1", "--width", "4", "--img-size", "16"])
    assert result.exit_code == 0, result.output
    for name in ("digits_cnn ", "digits_cnn_fpa", "digits_cnn_rect"):
        assert name in result.output


def test_cli_rejects_an_unknown_augmentation_with_exit_2() -> None:
    result = CliRunner().invoke(cli.app, ["train", "--augmentation", "cutout"])
    assert result.exit_code == 2
    assert "cutout" in result.output


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["train", "-a", "fpa", "--fpa-p", "1.5"], "p must be a probability"),
        (["train", "--fpa-p2", "0.2"], "--fpa-p2 applies only with --augmentation fpa"),
        (["train", "--model", "test_resnet", "--width", "4"], "--width applies to digits_cnn only"),
        (["train", "--model", "resnet_does_not_exist"], "timm has no architecture"),
        (["train", "--lr", "0.1"], "--lr apply to timm architectures"),
    ],
)
def test_cli_bad_values_exit_2_with_a_message(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    old = sys.argv
    sys.argv = ["xaibench", *argv]
    try:
        with pytest.raises(SystemExit) as caught:
            cli.main()
    finally:
        sys.argv = old
    assert caught.value.code == 2
    assert expected in capsys.readouterr().err


def test_trained_with_digits_cnn_builds_the_digits_models() -> None:
    model = load_model("trained", arch="digits_cnn", augmentation="rectangle", epochs=2, width=4, img_size=16)
    assert model.name == "digits_cnn_rect"
    assert model.training_info["epochs"] == 2 and model.input_size == (16, 16)
    with pytest.raises(ConfigError, match="lr apply to timm architectures"):
        load_model("trained", arch="digits_cnn", lr=0.1)
    with pytest.raises(ConfigError, match="digits"):
        load_model("trained", arch="digits_cnn", dataset="samples")


def test_mask_value_reaches_the_augmentation_changes_the_cache_key_and_needs_an_augmentation() -> None:
    grey = DigitsTraining("fpa", mask_value=0.5)
    black = DigitsTraining("fpa")
    augmenter = grey.augmenter()
    assert augmenter is not None and augmenter.value == 0.5
    rectangle = DigitsTraining("rectangle", mask_value=0.5).augmenter()
    assert rectangle is not None and rectangle.value == 0.5
    # Grey-masked training is another model: another cache entry; black keeps its old key.
    assert grey.config_entries() != black.config_entries()
    assert "value" not in json.dumps(black.config_entries())
    with pytest.raises(ConfigError, match="mask_value"):
        DigitsTraining("none", mask_value=0.5)


# --------------------------------------------------------------------------------------
# The Python API behind ``xaibench train``
# --------------------------------------------------------------------------------------


def test_plan_training_checks_everything_and_trains_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    from xaibench.training import plan_training

    def fail(*args, **kwargs):
        raise AssertionError("planning must not train")

    monkeypatch.setattr(digits_module, "train_digits_cnn", fail)
    plan = plan_training(augmentations="all", epochs=2, width=4, img_size=16, fpa_p2=0.05, device="cuda")
    assert [job.model for job in plan.jobs] == ["digits_cnn", "digits_cnn_fpa", "digits_cnn_rect"]
    assert plan.jobs[1].params == {"epochs": 2, "image_size": 16, "width": 4, "fpa_p2": 0.05}
    assert "fpa_p2" not in plan.jobs[2].params  # an FPA option goes to the FPA run only
    assert plan.notes and "device cuda is ignored" in plan.notes[0]
    timm_plan = plan_training("test_resnet", augmentations=["rectangle"], **TIMM_TINY)
    assert timm_plan.jobs[0].model == "trained" and not timm_plan.jobs[0].is_digits
    # Messages name options by their keywords (the CLI spells them as flags).
    with pytest.raises(ConfigError, match="fpa_p2 applies only with augmentation fpa"):
        plan_training(fpa_p2=0.2)
    with pytest.raises(ConfigError, match="lr apply to timm architectures"):
        plan_training(lr=0.1)
    with pytest.raises(ConfigError, match="width applies to digits_cnn only"):
        plan_training("test_resnet", width=4)
    with pytest.raises(ConfigError, match="unknown augmentation 'cutout'"):
        plan_training(augmentations=["cutout"])
    with pytest.raises(ConfigError, match="unknown training option"):
        plan_training(learning_rate=0.1)
    with pytest.raises(ConfigError, match="p must be a probability"):
        plan_training(augmentations=["none", "fpa"], fpa_p=1.5)


def test_train_models_returns_what_the_cli_prints() -> None:
    from xaibench.training import train_models

    first = train_models(augmentations=["fpa"], epochs=2, width=4, img_size=16, seed=9)
    assert len(first) == 1 and first[0].name == "digits_cnn_fpa" and not first[0].cached
    assert first[0].suite_entry == '{name = "digits_cnn_fpa", epochs = 2, seed = 9, image_size = 16, width = 4}'
    lines = first[0].report()
    assert lines[0] == f"  suite model:   {first[0].suite_entry}"
    assert any(line.startswith("  test accuracy: ") for line in lines)
    assert lines[-1] == f"  cache:         {first[0].info['cache_path']}"
    again = train_models(augmentations="fpa", epochs=2, width=4, img_size=16, seed=9)
    assert again[0].cached
    assert torch.equal(again[0].classifier.model.fc.weight, first[0].classifier.model.fc.weight)
    forced = train_models(augmentations="fpa", epochs=2, width=4, img_size=16, seed=9, force=True)
    assert not forced[0].cached
    assert torch.equal(forced[0].classifier.model.fc.weight, first[0].classifier.model.fc.weight)


def test_the_loop_keeps_its_random_streams_apart() -> None:
    from xaibench.hashing import seed63
    from xaibench.training import derived_seed

    # The bytes hashed are the ones the cached models were trained with: do not change them.
    assert derived_seed(0, "augment") == seed63(b"0:augment")
    assert len({derived_seed(0, salt) for salt in ("augment", "pgd", "hflip", "holdout", "limit")}) == 5
    assert derived_seed(1, "pgd") != derived_seed(0, "pgd")
