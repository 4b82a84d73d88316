"""A Captum method, the CAM family and Quantus metrics that xaibench does not implement itself
run in a suite beside the built-ins and reach the leaderboard like them."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from xaibench.cli import app
from xaibench.leaderboard import build_leaderboard, render_markdown
from xaibench.runner.results import read_results


def test_ecosystem_suite_runs_and_ranks_them(tmp_path: Path) -> None:
    out = tmp_path / "eco"
    result = CliRunner().invoke(app, ["run", "--suite", "ecosystem-digits", "--out", str(out), "--limit", "3"])
    assert result.exit_code == 0, result.output
    robustness = read_results(out)
    assert {"saliency", "guided backprop", "grad_cam", "grad_cam_plus_plus", "score_cam"} == set(robustness["explainer"])
    faithfulness = read_results(out, table="faithfulness")
    assert {"quantus.Sparseness", "quantus.PixelFlipping", "deletion"} <= set(faithfulness["metric"])
    scored = faithfulness[faithfulness["metric"] == "quantus.Sparseness"]
    assert scored["score"].notna().any()
    markdown = render_markdown(build_leaderboard([out], resamples=20))
    for shown in ("GuidedBackprop", "Grad-CAM++", "Score-CAM", "Sparseness", "PixelFlipping"):
        assert shown in markdown, shown
