"""Faithfulness metrics in a run: clean rows, attacked rows at the reference point, curves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from xaibench.runner import build_plan, run_plan
from xaibench.runner.results import read_results
from xaibench.runner.suite import load_suite
from xaibench.summary import summarize_faithfulness

SUITE = """
metrics = ["explanation_change_pct", "ssim",
           {{ name = "deletion", steps = 16 }},
           {{ name = "insertion", steps = 16, canvas = "zeros" }},
           {{ name = "infidelity", n_perturb_samples = 8 }},
           {{ name = "mif_lif_area", fractions = 8 }}]

[suite]
name = "faith"
device = "cpu"
batch_size = 16
images_per_unit = 3
seed = 2
reference = {{ alpha = 0.15, topk = 0.5 }}
faithfulness_on_attacked = "{on_attacked}"

[dataset]
name = "digits"
n_classes = 3

[[models]]
name = "digits_cnn"

[[explainers]]
name = "saliency"
abs = false

[[explainers]]
name = "integrated_gradients"
n_steps = 8

[[attacks]]
name = "exiaa"
alphas = [0.05, 0.15]
topks = [0.1, 0.5]
n_attack_images = 2
"""


def run(tmp_path: Path, on_attacked: str) -> Path:
    path = tmp_path / f"suite-{on_attacked}.toml"
    path.write_text(SUITE.format(on_attacked=on_attacked))
    out = tmp_path / on_attacked
    run_plan(build_plan(load_suite(str(path)), out))
    return out


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return run(tmp_path_factory.mktemp("faith"), "reference")


def test_clean_and_attacked_rows(reference_run: Path) -> None:
    frame = read_results(reference_run, table="faithfulness")
    metrics = {"deletion", "insertion", "infidelity", "mif_lif_area"}
    assert set(frame["metric"]) == metrics
    clean = frame[frame["on"] == "clean"]
    attacked = frame[frame["on"] == "attacked"]
    # 3 images × 2 explainers × 4 metrics, clean; attacked only at the reference point, rank 0
    assert len(clean) == 3 * 2 * 4
    assert len(attacked) == 3 * 2 * 4
    assert set(attacked["alpha"]) == {0.15} and set(attacked["topk"]) == {0.5}
    assert clean["attack"].isna().all()
    assert attacked["attack_image_id"].notna().all()
    deletion = frame[frame["metric"] == "deletion"]
    assert deletion["curve"].map(len).eq(17).all()  # steps + the unperturbed point
    assert not deletion["higher_is_better"].any()
    mif = frame[frame["metric"] == "mif_lif_area"]
    assert (mif["curve_name"] == "mif").all() and (mif["curve2_name"] == "lif").all()
    # the AUC stored as the score is the area under the stored curve
    for _, row in deletion.iterrows():
        np.testing.assert_allclose(row["score"], np.trapezoid(row["curve"], row["curve_x"]), rtol=1e-5)


def test_summary_ranks_explainers_per_metric(reference_run: Path) -> None:
    summary = summarize_faithfulness(read_results(reference_run, table="faithfulness"))
    for (_, _, _), group in summary.groupby(["model", "on", "metric"]):
        assert sorted(group["rank"].tolist()) == [1.0, 2.0]
        best = group.loc[group["rank"] == 1, "score_mean"].item()
        other = group.loc[group["rank"] == 2, "score_mean"].item()
        if group["higher_is_better"].iloc[0]:
            assert best >= other
        else:
            assert best <= other


def test_none_and_all(tmp_path: Path, reference_run: Path) -> None:
    none = read_results(run(tmp_path, "none"), table="faithfulness")
    assert set(none["on"]) == {"clean"}
    reference = read_results(reference_run, table="faithfulness")
    clean_a = none.sort_values(["explainer", "metric", "image_id"]).reset_index(drop=True)
    clean_b = reference[reference["on"] == "clean"].sort_values(["explainer", "metric", "image_id"]).reset_index(drop=True)
    np.testing.assert_allclose(clean_a["score"], clean_b["score"], rtol=1e-6)
