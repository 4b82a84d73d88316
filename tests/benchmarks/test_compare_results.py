"""The script that proves a refactor changed no number (benchmarks/compare_results.py) must
itself tell equal results from different ones, and older folder-named labels from exact ones."""

from __future__ import annotations

import sys
from pathlib import Path

import pyarrow as pa

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # --import-mode=importlib does not add the rootdir
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.compare_results import compare  # noqa: E402
from xaibench.runner import results  # noqa: E402


def write(out: Path, change: list[float], *, labels_in_file: bool = True, explainer: str = "SG s=1") -> Path:
    columns = {
        "image_id": ["a", "a", "b", "b"],
        "attack": ["exiaa"] * 4,
        "alpha": [0.1, 0.2, 0.1, 0.2],
        "explanation_change_pct": change,
        "unit_wall_s": [1.0, 2.0, 3.0, 4.0],  # provenance that differs between runs by design
    }
    if labels_in_file:
        columns |= {"suite": ["s"] * 4, "model": ["m"] * 4, "explainer": [explainer] * 4}
    results.write_part(results.part_path(out, "robustness", "s", "m", explainer, "u1"), pa.table(columns))
    return out


def test_equal_values_in_another_row_order_and_other_wall_times_are_the_same(tmp_path: Path) -> None:
    old = write(tmp_path / "old", [1.0, 2.0, 3.0, 4.0])
    new = write(tmp_path / "new", [1.0, 2.0, 3.0, 4.0 + 1e-12])
    assert compare(old, new) == []


def test_a_changed_value_or_a_lost_row_is_reported(tmp_path: Path) -> None:
    old = write(tmp_path / "old", [1.0, 2.0, 3.0, 4.0])
    changed = write(tmp_path / "changed", [1.0, 2.0, 3.0, 4.001])
    assert any("explanation_change_pct" in p and "1 values differ" in p for p in compare(old, changed))


def test_labels_from_folder_names_are_compared_with_labels_from_the_rows(tmp_path: Path) -> None:
    import json

    old = write(tmp_path / "old", [1.0, 2.0, 3.0, 4.0], labels_in_file=False)
    # An older run: the label only in the manifest, the folder holding its folder-safe form.
    manifest = {"run_id": "r1", "suite": {"suite": {"name": "s"}, "explainers": [{"label": "SG s=1"}], "models": [{"label": "m"}]}}
    (old / "manifest.json").write_text(json.dumps(manifest))
    new = write(tmp_path / "new", [1.0, 2.0, 3.0, 4.0])
    assert compare(old, new) == []
