"""The built-in study suites of issue 7 run offline from the CLI and render in the leaderboard.

Each runs with ``--limit`` (fewer originals) so the whole file stays within a couple of
minutes; the models train on first use into the tests' private cache.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from xaibench.cli import app
from xaibench.runner.results import read_results
from xaibench.runner.suite import builtin_suites, load_suite

STUDIES = {
    "fpa-fidelity": ("models-side-by-side", 3),
    "fpa-fidelity-gray": ("models-side-by-side", 3),
    "hyperparameter-sensitivity": ("sensitivity", 2),
    "runner-up-ablation": ("ablation-source-class", 2),
}


def test_every_builtin_suite_parses() -> None:
    names = builtin_suites()
    assert set(STUDIES) | {"runner-up-ablation-photos"} <= set(names)
    for name in names:
        load_suite(name)  # raises on any invalid key, plugin or parameter


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    runner = CliRunner()
    out = {}
    for name, (_, limit) in STUDIES.items():
        folder = tmp_path_factory.mktemp(name)
        result = runner.invoke(app, ["run", "--suite", name, "--out", str(folder), "--limit", str(limit)])
        assert result.exit_code == 0, result.output
        out[name] = folder
    return out


@pytest.mark.slow
def test_study_suites_write_their_tables(runs: dict[str, Path]) -> None:
    fpa = read_results(runs["fpa-fidelity"], "fpa-fidelity", table="faithfulness")
    # Three models × (6 explainers scored with A_abs + 4 with A_sum) × 3 images.
    assert len(fpa) == 3 * 10 * 3
    assert set(fpa["model"]) == {"digits_cnn", "digits_cnn_fpa", "digits_cnn_rect"}
    assert fpa["model_test_accuracy"].between(0.9, 1.0).all()
    sensitivity = read_results(runs["hyperparameter-sensitivity"], "hyperparameter-sensitivity", table="sensitivity")
    assert set(sensitivity["sweep"]) == {"SG", "IG", "AttEXplore"}
    assert set(sensitivity["model"]) == {"digits_cnn", "digits_cnn_pgd"}
    assert sensitivity["ssim_to_reference"].between(-1.0, 1.0 + 1e-9).all()
    ablation = read_results(runs["runner-up-ablation"], "runner-up-ablation", table="robustness")
    ranks = ablation[ablation["attack"] == "exiaa_by_class_rank"]["source_class_rank"]
    assert sorted(ranks.unique()) == list(range(1, 10))
    low = ablation[ablation["attack"] == "exiaa_images_11_20"]["attack_image_rank"]
    assert low.min() == 10 and low.max() == 19


@pytest.mark.slow
def test_study_suites_render_in_the_leaderboard(runs: dict[str, Path], tmp_path: Path) -> None:
    site = tmp_path / "site"
    result = CliRunner().invoke(app, ["leaderboard", *map(str, runs.values()), "--out", str(site)])
    assert result.exit_code == 0, result.output
    html = (site / "index.html").read_text(encoding="utf-8")
    for table_id, _ in STUDIES.values():
        assert table_id in html
    assert "Ablation: most confident vs lower-ranked attack images" in html
    figures = {p.name for p in (site / "assets").iterdir()}
    assert any("class-rank" in name for name in figures)
    assert any("sensitivity" in name for name in figures)
    markdown = CliRunner().invoke(app, ["leaderboard", str(runs["fpa-fidelity"]), "--format", "markdown"])
    assert "digits_cnn_fpa (acc." in markdown.output and "SQ-SG · A_sum" in markdown.output
