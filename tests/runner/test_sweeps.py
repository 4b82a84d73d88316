"""Hyperparameter sweeps, per-class sampling and per-metric explainer filters in a real run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from xaibench.datasets import load_dataset
from xaibench.errors import ConfigError
from xaibench.explainers import SmoothGradExplainer
from xaibench.metrics.ssim import ssim
from xaibench.models import load_model
from xaibench.runner import build_plan, run_plan, sensitivity_heatmap
from xaibench.runner.results import read_results
from xaibench.runner.suite import load_suite

SUITE = """
[suite]
name = "sweep"
device = "cpu"
batch_size = 16
images_per_unit = 4
seed = 3

[dataset]
name = "digits"
split = "test"
n_classes = 3
per_class = 2

[[models]]
name = "digits_cnn"

[[explainers]]
name = "saliency"
label = "VG"

[[sweeps]]
explainer = "smoothgrad"
label = "SG"
reference = { nt_samples = 4, stdevs = 0.15 }
stdevs = [0.05, 0.15, 0.3]
seed = [7]

[[metrics]]
name = "deletion"
steps = 8
explainers = ["SG", "SG stdevs=0.3"]

[[metrics]]
name = "mif_lif_area"
fractions = 4
"""


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "suite.toml"
    path.write_text(text)
    return str(path)


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    tmp = tmp_path_factory.mktemp("sweep")
    suite = load_suite(write(tmp, SUITE))
    out = tmp / "out"
    run_plan(build_plan(suite, out))
    return out, suite


def test_sweeps_expand_one_parameter_at_a_time_and_skip_the_reference_value(swept) -> None:
    _, suite = swept
    labels = [e.label for e in suite.explainers]
    # stdevs = 0.15 is the reference setting: not repeated; the seed varies on its own.
    assert labels == ["VG", "SG", "SG stdevs=0.05", "SG stdevs=0.3", "SG seed=7"]
    by_label = {e.label: e for e in suite.explainers}
    assert by_label["SG stdevs=0.3"].params == {"nt_samples": 4, "stdevs": 0.3}
    assert by_label["SG seed=7"].params == {"nt_samples": 4, "stdevs": 0.15, "seed": 7}
    assert by_label["SG"].sweep == {"sweep": "SG", "reference": {"nt_samples": 4, "stdevs": 0.15}, "param": None, "value": None}
    assert by_label["VG"].sweep is None


def test_per_class_draws_that_many_images_of_each_class_and_extends_one_per_class() -> None:
    dataset = load_dataset("digits", input_size=(32, 32), channels=1, split="test")
    one = dataset.sample_one_per_class(3, seed=3)
    two = dataset.sample_one_per_class(3, seed=3, per_class=2)
    five = dataset.sample_one_per_class(3, seed=3, per_class=5)
    assert len(two) == 6 and len(five) == 15 and len(set(five)) == 15
    labels = [int(dataset.labels[i]) for i in five]
    assert sorted(set(labels)) == sorted({int(dataset.labels[i]) for i in one})
    assert all(labels.count(c) == 5 for c in set(labels))
    # The first pick of each class is the one-per-class pick; more per class only adds images.
    assert set(one) <= set(two) <= set(five)
    with pytest.raises(ValueError, match="per_class"):
        dataset.sample_one_per_class(3, seed=3, per_class=0)


def test_metric_filters_score_only_the_named_explainers(swept) -> None:
    out, _ = swept
    rows = read_results(out, "sweep", table="faithfulness")
    deletion = rows[rows["metric"] == "deletion"]
    mif = rows[rows["metric"] == "mif_lif_area"]
    assert set(deletion["explainer"]) == {"SG", "SG stdevs=0.3"}  # the labels themselves, from the rows
    assert mif["explainer"].nunique() == 5
    assert len(mif) == 5 * 6


def test_sensitivity_rows_equal_an_independent_ssim_of_the_two_settings(swept) -> None:
    out, suite = swept
    rows = read_results(out, "sweep", table="sensitivity")
    assert len(rows) == 4 * 6  # the four SG settings × six images; VG is not swept
    reference = rows[rows["param"].isna()]
    assert np.allclose(reference["ssim_to_reference"], 1.0) and np.allclose(reference["rank_correlation_to_reference"], 1.0)
    assert set(rows["value"].dropna()) == {"0.05", "0.3", "7"}

    # Recompute one variant by hand: both SmoothGrads explained for the predicted class.
    classifier = load_model("digits_cnn")
    dataset = load_dataset("digits", input_size=(32, 32), channels=1, split="test")
    variant = rows[rows["value"] == "0.3"].sort_values("image_id")
    index = {image_id: i for i, image_id in enumerate(dataset.ids)}
    batch = dataset.load([index[i] for i in variant["image_id"]])
    with torch.no_grad():
        target = classifier(batch.pixels).argmax(dim=1)
    assert target.tolist() == variant["predicted_class"].tolist()
    # Both with the image's id as noise id: the runner compares settings on common random numbers.
    ids = list(batch.ids)
    ref = SmoothGradExplainer(classifier, nt_samples=4, stdevs=0.15, seed=3).explain(batch.pixels, target, noise_ids=ids)
    var = SmoothGradExplainer(classifier, nt_samples=4, stdevs=0.3, seed=3).explain(batch.pixels, target, noise_ids=ids)
    heat_ref = (ref.abs().sum(1, keepdim=True) / ref.abs().sum(1, keepdim=True).flatten(1).amax(1).view(-1, 1, 1, 1)).double()
    heat_var = (var.abs().sum(1, keepdim=True) / var.abs().sum(1, keepdim=True).flatten(1).amax(1).view(-1, 1, 1, 1)).double()
    np.testing.assert_allclose(variant["ssim_to_reference"], ssim(heat_ref, heat_var).numpy(), atol=1e-5)
    assert (variant["ssim_to_reference"] < 0.9999).all()  # a different setting is not identical
    params = json.loads(variant["reference_params"].iloc[0])
    assert params == {"nt_samples": 4, "stdevs": 0.15}


def test_sensitivity_heatmap_is_scaled_to_one_and_keeps_zero_maps() -> None:
    attributions = torch.tensor([[[[1.0, -3.0]], [[0.0, 1.0]]], [[[0.0, 0.0]], [[0.0, 0.0]]]])
    heat = sensitivity_heatmap(attributions)
    assert heat.shape == (2, 1, 1, 2)
    assert heat[0].flatten().tolist() == [0.25, 1.0] and heat[1].abs().sum() == 0


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ('[[sweeps]]\nexplainer = "smoothgrad"\nstdevz = [0.1]\n', ["no parameter 'stdevz'", "Did you mean 'stdevs'"]),
        ('[[sweeps]]\nexplainer = "smoothgrad"\n', ["at least one parameter"]),
        ('[[sweeps]]\nexplainer = "smoothgrad"\nstdevs = 0.1\n', ["non-empty array of values for 'stdevs'"]),
        ('[[sweeps]]\nexplainer = "smoothgradd"\nstdevs = [0.1]\n', ["smoothgrad"]),
        ('[[explainers]]\nname = "saliency"\n[[metrics]]\nname = "deletion"\nexplainers = ["SG"]\n', ["no explainer is labelled 'SG'"]),
    ],
)
def test_bad_sweeps_and_filters_are_config_errors(tmp_path: Path, body: str, words: list[str]) -> None:
    head = '[suite]\nname = "bad"\n[dataset]\nname = "digits"\n[[models]]\nname = "digits_cnn"\n'
    if "[[metrics]]" not in body:
        body += '[[metrics]]\nname = "deletion"\n'
    with pytest.raises(ConfigError) as error:
        load_suite(write(tmp_path, head + body))
    for word in words:
        assert word in str(error.value)


def test_the_printed_summary_shows_the_suites_own_labels(swept) -> None:
    from typer.testing import CliRunner

    from xaibench.cli import app

    out, _ = swept
    result = CliRunner().invoke(app, ["show", str(out)])
    assert result.exit_code == 0, result.output
    assert "SG stdevs=0.05" in result.output and "SG_stdevs_0.05" not in result.output


def test_reusing_the_reference_units_explanations_gives_the_recomputed_values(swept, tmp_path: Path) -> None:
    out, suite = swept
    plan = build_plan(suite, tmp_path / "recomputed")
    plan.resources().references.max_bytes = 0  # nothing kept: every variant unit recomputes its reference
    run_plan(plan)
    keys = ["model", "explainer", "image_id"]
    reused = read_results(out, "sweep", table="sensitivity").sort_values(keys).reset_index(drop=True)
    recomputed = read_results(tmp_path / "recomputed", "sweep", table="sensitivity").sort_values(keys).reset_index(drop=True)
    for column in ("ssim_to_reference", "rank_correlation_to_reference"):
        np.testing.assert_array_equal(reused[column].to_numpy(), recomputed[column].to_numpy())


def test_the_reference_cache_is_bounded_and_keeps_the_newest() -> None:
    from xaibench.runner import ReferenceExplanations

    cache = ReferenceExplanations(max_bytes=2 * 4 * 10)  # two 10-float tensors
    for name in ("a", "b", "c"):
        cache.put(name, torch.full((10,), float(ord(name))))
    assert cache.get("a") is None and cache.get("b") is not None and cache.get("c") is not None
    cache.put("huge", torch.zeros(100))
    assert cache.get("huge") is None and cache.get("c") is not None
