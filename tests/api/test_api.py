"""The Python API: the same numbers as the command line, any nn.Module and any explanation
function in one call, results that ``xaibench show`` and ``xaibench leaderboard`` read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

import xaibench
from xaibench.datasets import load_dataset
from xaibench.errors import ConfigError, XaibenchError
from xaibench.models import load_model

SUITE = """
metrics = ["explanation_change_pct", "ssim", "confidence_drop_pct", "deletion"]

[suite]
name = "api"
seed = 0
device = "cpu"
batch_size = 8

[dataset]
name = "digits"
limit = 3

[[models]]
name = "digits_cnn"

[[explainers]]
name = "saliency"

[[explainers]]
name = "input_x_gradient"

[[attacks]]
name = "exiaa"
alphas = [0.1]
topks = [0.2, 0.5]
n_attack_images = 2
"""
KEY = ["explainer", "image_id", "attack_image_id", "alpha", "topk"]
VALUES = ["explanation_change_pct", "ssim", "confidence_drop_pct"]


@pytest.fixture(scope="module")
def digits() -> tuple[object, object]:
    classifier = load_model("digits_cnn")
    dataset = load_dataset("digits", input_size=classifier.input_size, channels=classifier.in_channels)
    return classifier, dataset.load(list(range(len(dataset))))


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory: pytest.TempPathFactory) -> xaibench.Results:
    root = tmp_path_factory.mktemp("api")
    (root / "suite.toml").write_text(SUITE)
    return xaibench.run(root / "suite.toml", out=root / "out", progress=False)


def grad_times_input(model, x01, target):  # noqa: ANN001, ANN201
    """Gradient × input, written by a user."""
    x = x01.clone().requires_grad_(True)
    model(x).gather(1, target[:, None]).sum().backward()
    return (x.grad * x).detach()


@pytest.fixture(scope="module")
def evaluated(digits: tuple[object, object]) -> xaibench.Results:
    classifier, batch = digits
    mean, std = classifier.mean.flatten().tolist(), classifier.std.flatten().tolist()
    return xaibench.evaluate(
        classifier.model, batch.pixels, batch.labels, ids=batch.ids, normalize=(mean, std),
        explainers={"saliency": "saliency", "mine": grad_times_input}, attacks={"exiaa": {"n_attack_images": 2}},
        grid={"alpha": [0.1], "topk": [0.2, 0.5]}, metrics=["explanation_change_pct", "ssim", "confidence_drop_pct", "deletion"],
        limit=3, device="cpu", batch_size=8, progress=False, name="api",
    )


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(KEY).reset_index(drop=True)


def test_evaluate_gives_the_numbers_of_the_command_line(evaluated: xaibench.Results, cli_run: xaibench.Results) -> None:
    ours = _sorted(evaluated.rows[evaluated.rows["explainer"] == "saliency"])
    theirs = _sorted(cli_run.rows[cli_run.rows["explainer"] == "saliency"])
    assert len(ours) == len(theirs) > 0
    assert ours["image_id"].tolist() == theirs["image_id"].tolist()
    for column in VALUES:  # the same model, images, batches and code: equal up to float noise
        np.testing.assert_allclose(ours[column], theirs[column], rtol=1e-6, atol=1e-9)


def test_a_users_function_ranks_like_the_builtin_it_reimplements(
    evaluated: xaibench.Results, cli_run: xaibench.Results
) -> None:
    mine = _sorted(evaluated.rows[evaluated.rows["explainer"] == "mine"].assign(explainer="x"))
    builtin = _sorted(cli_run.rows[cli_run.rows["explainer"] == "input_x_gradient"].assign(explainer="x"))
    assert len(mine) == len(builtin) > 0
    for column in VALUES:
        np.testing.assert_allclose(mine[column], builtin[column], rtol=1e-5, atol=1e-7)
    summary = evaluated.summary("faithfulness")
    assert {"mine", "saliency"} <= set(summary["explainer"]) and "rank" in summary.columns


def test_results_save_load_show_and_leaderboard(
    evaluated: xaibench.Results, tmp_path: Path, xaibench_cli: Any
) -> None:
    saved = evaluated.save(tmp_path / "saved")
    loaded = xaibench.load(tmp_path / "saved")
    pd.testing.assert_frame_equal(_sorted(loaded.rows), _sorted(evaluated.rows))
    assert saved.manifest["suite"]["suite"]["name"] == "api"
    code, out, err = xaibench_cli(["show", str(tmp_path / "saved")])
    assert code == 0, err
    assert "mine" in out and "saliency" in out
    index = loaded.leaderboard(tmp_path / "site", resamples=20)
    assert "mine" in index.read_text()
    with pytest.raises(XaibenchError, match="not an empty folder"):
        evaluated.save(tmp_path / "saved")


def test_the_users_model_is_given_back_as_it_was(digits: tuple[object, object]) -> None:
    classifier, batch = digits
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                                torch.nn.Flatten(), torch.nn.Linear(4, 10))
    model.train()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    result = xaibench.evaluate(model, batch.pixels[:40], batch.labels[:40], attacks=["exiaa"],
                               grid={"alpha": [0.1], "topk": [0.2]}, limit=2, device="cpu", progress=False)
    assert len(result.rows) > 0
    assert model.training and all(p.requires_grad for p in model.parameters())
    assert all(torch.equal(before[n], p) for n, p in model.named_parameters())


def test_bad_inputs_are_named(digits: tuple[object, object]) -> None:
    classifier, batch = digits
    with pytest.raises(ConfigError, match=r"pixels in \[0, 1\]"):
        xaibench.evaluate(classifier, batch.pixels * 255, progress=False)
    with pytest.raises(ConfigError, match="grid axis 'sigma'"):
        xaibench.evaluate(classifier, batch.pixels, grid={"sigma": [1.0]}, progress=False)
    with pytest.raises(ConfigError, match="expected a registered name"):
        xaibench.evaluate(classifier, batch.pixels, explainers={"x": 3}, progress=False)


def test_list_plugins_mirrors_list() -> None:
    assert {"integrated_gradients", "smoothgrad"} <= set(xaibench.list_plugins("explainers", "*g*", providers=False))
    assert "quickstart" in xaibench.list_plugins("suites")
    everything = xaibench.list_plugins(providers=False)
    assert {"models", "datasets", "explainers", "attacks", "metrics", "suites"} <= set(everything)
    with pytest.raises(XaibenchError, match="Did you mean 'explainers'"):
        xaibench.list_plugins("explainer_s")


def test_a_captum_class_or_instance_is_the_captum_plugin_of_that_name(digits: tuple[object, object]) -> None:
    from captum.attr import InputXGradient, LayerGradCam

    classifier, batch = digits
    layer = [n for n, m in classifier.model.named_modules() if isinstance(m, torch.nn.Conv2d)][-1]
    result = xaibench.evaluate(
        classifier, batch.pixels, batch.labels, ids=batch.ids,
        explainers={"ixg": InputXGradient, "cam": LayerGradCam(classifier.model, classifier.model.get_submodule(layer))},
        attacks={"exiaa": {"n_attack_images": 1}}, grid={"alpha": [0.1], "topk": [0.2]}, limit=2, device="cpu",
        progress=False,
    )
    plugins = result.manifest["plugins"]["explainers"]
    assert plugins["ixg"]["name"] == "captum.InputXGradient"
    assert plugins["cam"]["name"] == "captum.LayerGradCam" and plugins["cam"]["params"]["layer"] == layer
    assert set(result.rows["explainer"]) == {"ixg", "cam"}


def test_a_torch_dataset_gives_the_rows_of_its_tensor(digits: tuple[object, object]) -> None:
    classifier, batch = digits
    pairs = torch.utils.data.TensorDataset(batch.pixels[:30], batch.labels[:30])
    options = {"attacks": {"exiaa": {"n_attack_images": 1}}, "grid": {"alpha": [0.1], "topk": [0.2]}, "limit": 2,
               "device": "cpu", "batch_size": 8, "progress": False}
    from_dataset = xaibench.evaluate(classifier, pairs, **options)
    from_tensor = xaibench.evaluate(classifier, batch.pixels[:30], batch.labels[:30], **options)
    pd.testing.assert_frame_equal(
        _sorted(from_dataset.rows)[VALUES + ["image_id"]], _sorted(from_tensor.rows)[VALUES + ["image_id"]]
    )
