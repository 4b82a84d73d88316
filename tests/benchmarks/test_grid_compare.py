"""The runner-vs-naive output check: strict per row, except top-k boundary ties (bounded
per row, and the means over rows must still agree)."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # --import-mode=importlib does not add the rootdir
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.grid import compare_rows  # noqa: E402


def _rows(changes: list[float], drops: list[float]) -> list[dict]:
    return [
        {"image_id": "a", "alpha": 0.15, "topk": 0.01 * (i + 1), "attack_image_rank": 0, "attack_image_id": "p",
         "explanation_change_pct": c, "ssim": 0.9, "confidence_drop_pct": d}
        for i, (c, d) in enumerate(zip(changes, drops, strict=True))
    ]


def test_identical_rows_match_strictly() -> None:
    naive = _rows([10.0] * 20, [1.0] * 20)
    result = compare_rows(pd.DataFrame(naive), naive)
    assert result["match"] and result["boundary_tie_rows"] == 0


def test_one_boundary_tie_of_intel_size_matches_and_is_counted() -> None:
    naive = _rows([10.0] * 20, [1.0] * 20)
    runner = _rows([10.266] + [10.0] * 19, [1.0175] + [1.0] * 19)  # the Intel machine's figures
    result = compare_rows(pd.DataFrame(runner), naive)
    assert result["match"] and result["boundary_tie_rows"] == 1
    assert abs(result["max_abs_diff_explanation_change_pct"] - 0.266) < 1e-9


def test_a_row_beyond_the_boundary_bound_or_a_shifted_mean_differs() -> None:
    naive = _rows([10.0] * 20, [1.0] * 20)
    assert not compare_rows(pd.DataFrame(_rows([11.0] + [10.0] * 19, [1.0] * 20)), naive)["match"]
    shifted = _rows([10.2] * 20, [1.0] * 20)  # every row within the bound, the mean 0.2 pp off
    assert not compare_rows(pd.DataFrame(shifted), naive)["match"]
