"""The ViT-vs-CNN suite runs offline from the CLI, fills the completeness gap for ViT rows, runs
the attention explainers on the ViT only (with the reason for the CNN), and renders.

The built-in suite is shrunk to one grid point and one attack image (everything else as
shipped) and run on 2 originals; both digits models train on first use into the tests' cache.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path

import pytest
from typer.testing import CliRunner

from xaibench.cli import app
from xaibench.runner.results import read_results

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _shrunk(tmp_path: Path) -> Path:
    text = (resources.files("xaibench") / "suites" / "vit-vs-cnn.toml").read_text(encoding="utf-8")
    text = re.sub(r"(?m)^alphas = .*$", "alphas = [0.15]", text)
    text = re.sub(r"(?m)^topks = .*$", "topks = [0.2]", text)
    text = re.sub(r"(?m)^n_attack_images = .*$", "n_attack_images = 1", text)
    path = tmp_path / "vit-vs-cnn-small.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("vit-vs-cnn")
    suite = _shrunk(folder)
    result = CliRunner().invoke(app, ["run", "--suite", str(suite), "--out", str(folder / "out"), "--limit", "2"])
    assert result.exit_code == 0, result.output
    assert "skipped digits_cnn × attention_rollout" in result.output
    return folder


@pytest.mark.slow
def test_both_models_every_explainer_and_the_vit_gap(run_folder: Path) -> None:
    rows = read_results(run_folder / "out", "vit-vs-cnn", table="robustness")
    pairs = set(zip(rows["model"], rows["explainer"], strict=True))
    common = {"saliency", "integrated_gradients", "smoothgrad", "deeplift_shap"}
    assert {(m, e) for m in ("digits_cnn", "digits_vit") for e in common} <= pairs
    assert {("digits_vit", "attention_rollout"), ("digits_vit", "chefer_attention")} <= pairs
    assert not {e for m, e in pairs if m == "digits_cnn"} & {"attention_rollout", "chefer_attention"}
    vit_dls = rows[(rows["model"] == "digits_vit") & (rows["explainer"] == "deeplift_shap")]
    assert vit_dls["completeness_gap"].notna().all() and (vit_dls["completeness_gap"] < 1e-3).all()
    assert rows[rows["explainer"] == "attention_rollout"]["completeness_gap"].isna().all()


@pytest.mark.slow
def test_the_attention_explainers_appear_on_the_leaderboard(run_folder: Path) -> None:
    site = run_folder / "site"
    result = CliRunner().invoke(app, ["leaderboard", str(run_folder / "out"), "--out", str(site)])
    assert result.exit_code == 0, result.output
    html = (site / "index.html").read_text(encoding="utf-8")
    assert "Attention Rollout" in html and "Chefer" in html and "digits_vit" in html
    manifest = json.loads((run_folder / "out" / "manifest.json").read_text(encoding="utf-8"))
    skipped = {(u["model"], u["explainer"]): u["reason"] for u in manifest["units"] if u["state"] == "incompatible"}
    assert set(skipped) == {("digits_cnn", "attention_rollout"), ("digits_cnn", "chefer_attention")}
    assert all("needs a Vision Transformer" in reason for reason in skipped.values())
