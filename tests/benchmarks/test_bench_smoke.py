"""Smoke test of the performance benchmarks' quick mode (digits CNN, seconds).

Only that the benchmarks run and that both sides of every comparison compute the same
values; timings are never asserted here (they are measured by ``make bench``).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # --import-mode=importlib does not add the rootdir
    sys.path.insert(0, str(REPO_ROOT))

pytest.importorskip("quantus")

from benchmarks import run as bench  # noqa: E402


@pytest.fixture(scope="module")
def outcome() -> dict:
    return bench.run(["grid", "metrics"], quick=True, device="cpu", report=lambda _line: None)


def test_quick_benchmarks_run_and_outputs_match(outcome: dict) -> None:
    names = [figure.name for figure in outcome["headlines"]]
    assert names[:2] == ["runner vs naive loop", "runner overhead (wall / bare passes)"]
    assert names[2].startswith("metrics vs Quantus/Captum")
    for figure in outcome["headlines"]:
        assert math.isfinite(figure.ratio) and figure.ratio > 0, figure.name
        assert figure.outputs_match is not False, (figure.name, figure.measurements)
    grid = outcome["headlines"][0].measurements
    assert grid["rows"] == 2 * 2 * 3 * 2 and grid["unmatched_rows"] == 0 and grid["same_attack_images"]
    per_metric = outcome["details"]["metrics"]
    assert len(per_metric) == 4 and all(figure.outputs_match for figure in per_metric)
    for figure in per_metric[:3]:  # insertion/deletion/MIF-LIF: the same forwards as Quantus, ±1 per image
        m = figure.measurements
        assert abs(m["forward_images_xaibench"] - m["forward_images_reference"]) <= 4, figure.name


def test_results_section_replaces_only_its_markers(outcome: dict, tmp_path: Path) -> None:
    page = tmp_path / "performance.md"
    page.write_text(f"# Performance\n\nintro\n\n{bench.BEGIN}\nold\n{bench.END}\n\n## GPU\n\nkept\n")
    info = {
        "date": "today", "command": "python -m benchmarks.run --quick", "cpu": "cpu", "cores": 2,
        "torch_threads": 2, "device": "cpu", "torch": "x", "python": "3.11",
        "load_average_start": (1.0, 1.0, 1.0), "load_average_end": None, "wall_s": 5.0,
    }
    bench.update_docs(page, bench.results_markdown(outcome, info))
    text = page.read_text()
    assert "intro" in text and "## GPU\n\nkept" in text and "\nold\n" not in text
    assert "| runner vs naive loop |" in text and text.count(bench.BEGIN) == 1
