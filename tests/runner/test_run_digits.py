"""End to end on the digits suite: rows, columns, resume, batch invariance, show."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from xaibench.runner import build_plan, run_plan
from xaibench.runner.results import part_files, read_results, unit_marker
from xaibench.runner.suite import load_suite

ALPHAS = [0.03, 0.15]
TOPKS = [0.1, 0.5]


def digits_suite(tmp_path: Path, *, batch_size: int = 16, images_per_unit: int = 2, extra: str = "") -> Path:
    text = f"""
[suite]
name = "digits-test"
seed = 3
device = "cpu"
batch_size = {batch_size}
images_per_unit = {images_per_unit}

[dataset]
name = "digits"
n_classes = 3

[[models]]
name = "digits_cnn"

[[explainers]]
name = "saliency"

[[explainers]]
name = "integrated_gradients"
n_steps = 8

[[attacks]]
name = "exiaa"
alphas = {ALPHAS}
topks = {TOPKS}
n_attack_images = 2

[[attacks]]
name = "gaussian_noise"
alphas = {ALPHAS}
topks = {TOPKS}
n_attack_images = 2
{extra}
"""
    path = tmp_path / f"suite-{batch_size}-{images_per_unit}.toml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("digits-run")
    suite = load_suite(str(digits_suite(tmp)))
    out = tmp / "out"
    report = run_plan(build_plan(suite, out))
    return tmp, out, report


def test_rows_and_columns(first_run) -> None:
    _, out, report = first_run
    frame = read_results(out)
    expected_rows = 3 * 2 * 2 * len(ALPHAS) * len(TOPKS) * 2  # images × attacks × attack images × grid × explainers
    assert report.rows_written == expected_rows == len(frame)
    for column in (
        "explanation_change_pct", "ssim", "confidence_drop_pct", "prediction_flipped",
        "topk_intersection", "rank_correlation", "alpha", "topk", "attack_image_id",
        "running_up_class", "k_entries", "run_id", "seed", "unit_id", "pretrained_source",
        "torch_version", "unit_wall_s", "explainer_params", "suite", "model", "explainer",
        "completeness_gap",
    ):
        assert column in frame.columns, column
    assert set(frame["suite"]) == {"digits-test"}
    assert set(frame["attack"]) == {"exiaa", "gaussian_noise"}
    # the grid is complete for every image × attack × explainer
    counts = frame.groupby(["explainer", "attack", "image_id"]).size()
    assert (counts == 2 * len(ALPHAS) * len(TOPKS)).all()
    assert frame["ssim"].between(-1, 1).all()
    # IG has a completeness gap, saliency does not
    assert frame.loc[frame.explainer == "integrated_gradients", "completeness_gap"].notna().all()
    assert frame.loc[frame.explainer == "saliency", "completeness_gap"].isna().all()
    manifest = json.loads((out / "manifest.json").read_text())
    assert {u["state"] for u in manifest["units"]} == {"done"}
    assert all(unit_marker(out, u["unit_id"]).is_file() for u in manifest["units"])
    assert frame["explainer_images_per_s"].gt(0).all()
    # two examples per model × explainer (the first two originals), one per attack
    examples = read_results(out, table="examples")
    assert len(examples) == 2 * 2 * 2
    assert examples["original_png"].map(lambda b: b[:4] == b"\x89PNG").all()
    assert (examples["heatmap_height"] * examples["heatmap_width"] == examples["heatmap_original"].map(len)).all()
    assert manifest["environment"]["torch"]


def test_rerun_skips_finished_units_and_writes_no_duplicates(first_run) -> None:
    tmp, out, _ = first_run
    before = sorted(p.name for p in part_files(out))
    report = run_plan(build_plan(load_suite(str(digits_suite(tmp))), out))
    assert report.units_done == 0 and report.rows_written == 0
    assert report.units_existing == len(before)
    assert sorted(p.name for p in part_files(out)) == before
    frame = read_results(out)
    key = ["explainer", "attack", "image_id", "attack_image_id", "alpha", "topk"]
    assert not frame.duplicated(key).any()


def test_a_unit_without_its_marker_is_recomputed_with_same_values_and_no_duplicates(first_run) -> None:
    """A crash after writing a part but before the unit's marker: the unit runs again."""
    tmp, out, _ = first_run
    victim = part_files(out)[0]
    original = pq.read_table(victim).to_pandas()
    unit_id = original["unit_id"].iloc[0]
    unit_marker(out, unit_id).unlink()
    report = run_plan(build_plan(load_suite(str(digits_suite(tmp))), out))
    assert report.units_done == 1
    again = pq.read_table(victim).to_pandas()
    numeric = ["explanation_change_pct", "ssim", "confidence_drop_pct", "rank_correlation"]
    np.testing.assert_allclose(again[numeric].to_numpy(), original[numeric].to_numpy(), rtol=1e-5, atol=1e-6)
    frame = read_results(out)
    key = ["explainer", "attack", "image_id", "attack_image_id", "alpha", "topk"]
    assert not frame.duplicated(key).any()


def test_batch_size_does_not_change_values(first_run, tmp_path: Path) -> None:
    """Chunks of 1 image (one at a time) give the values of chunks of 16."""
    _, out, _ = first_run
    single = load_suite(str(digits_suite(tmp_path, batch_size=1, images_per_unit=1)))
    out_single = tmp_path / "single"
    run_plan(build_plan(single, out_single))
    key = ["explainer", "attack", "image_id", "attack_image_id", "alpha", "topk"]
    a = read_results(out).sort_values(key).reset_index(drop=True)
    b = read_results(out_single).sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(a[key], b[key])
    for column in ("explanation_change_pct", "ssim", "confidence_drop_pct", "rank_correlation", "topk_intersection"):
        np.testing.assert_allclose(b[column], a[column], rtol=1e-4, atol=1e-4, err_msg=column)


def test_planner_skips_deeplift_on_a_model_with_reused_modules_and_says_why(tmp_path: Path) -> None:
    from torch import nn

    from xaibench.registry import models
    from xaibench.types import Classifier

    class Reuses(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
            self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
            self.act = nn.ReLU()
            self.head = nn.Linear(4, 10)

        def forward(self, x):  # the same ReLU at two call sites
            x = self.act(self.conv2(self.act(self.conv1(x))))
            return self.head(x.mean(dim=(2, 3)))

    @models.register("reusing_cnn_for_test")
    def reusing_cnn_for_test() -> Classifier:
        return Classifier(Reuses(), name="reusing_cnn_for_test", num_classes=10,
                          input_size=(32, 32), mean=[0.5], std=[0.5], in_channels=1)

    path = tmp_path / "suite.toml"
    path.write_text(
        "[suite]\nname='reuse'\ndevice='cpu'\n[dataset]\nname='digits'\nlimit=2\n"
        "[[models]]\nname='reusing_cnn_for_test'\n[[explainers]]\nname='deeplift_shap'\n"
        "[[explainers]]\nname='saliency'\n"
        "[[attacks]]\nname='exiaa'\nalphas=[0.1]\ntopks=[0.2]\nn_attack_images=1\n"
    )
    report = run_plan(build_plan(load_suite(str(path)), tmp_path / "out"))
    units = {u["explainer"]: u for u in report.manifest["units"]}
    assert units["deeplift_shap"]["state"] == "incompatible"
    assert "act" in units["deeplift_shap"]["reason"]
    assert units["saliency"]["state"] == "done"


def test_corrupt_images_are_skipped_named_and_counted_in_the_manifest(tmp_path: Path) -> None:
    from PIL import Image

    from xaibench.models.digits_cnn import digits_arrays

    pixels, labels = digits_arrays("test", image_size=32)
    root = tmp_path / "folder"
    for label in (0, 1):
        (root / f"class{label}").mkdir(parents=True)
        rows = (labels == label).nonzero().flatten()[:3].tolist()
        for i in rows:
            array = (pixels[i, 0].numpy() * 255).astype("uint8")
            Image.fromarray(array).save(root / f"class{label}" / f"img{i}.png")
    broken = root / "class1" / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")
    path = tmp_path / "suite.toml"
    path.write_text(
        f"[suite]\nname='corrupt'\ndevice='cpu'\n[dataset]\nname='image_folder'\nroot='{root}'\n"
        "[[models]]\nname='digits_cnn'\n[[explainers]]\nname='saliency'\n"
        "[[attacks]]\nname='exiaa'\nalphas=[0.1]\ntopks=[0.2]\nn_attack_images=1\n"
    )
    with pytest.warns(RuntimeWarning, match="broken.png"):
        report = run_plan(build_plan(load_suite(str(path)), tmp_path / "out"))
    skipped = report.manifest["skipped_images"]
    assert len(skipped) == 1 and "broken.png" in skipped[0]["item"]
    frame = read_results(tmp_path / "out")
    assert len(frame) > 0
    assert not frame["image_id"].str.contains("broken").any()
    assert not frame["attack_image_id"].str.contains("broken").any()
