"""SIGKILL at any moment, then resume: no lost rows, no duplicates, the same values.
Two runs writing into one folder at once never corrupt each other's files."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from xaibench.runner.results import TABLES, part_files, read_results

SUITE = """
[suite]
name = "crash"
device = "cpu"
batch_size = 8
images_per_unit = 1
seed = 11

[dataset]
name = "digits"
n_classes = 4

[[models]]
name = "digits_cnn"

[[explainers]]
name = "saliency"

[[explainers]]
name = "integrated_gradients"
n_steps = 8

[[attacks]]
name = "exiaa"
alphas = [0.05, 0.15]
topks = [0.1, 0.5]
n_attack_images = 2
"""
KEY = ["explainer", "attack", "image_id", "attack_image_id", "alpha", "topk"]
UNITS = 8  # 4 images × 2 explainers, one image per unit


def start(suite: Path, out: Path) -> subprocess.Popen[str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    return subprocess.Popen(
        [sys.executable, "-m", "xaibench.cli", "run", "--suite", str(suite), "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )


def markers(out: Path) -> int:
    folder = out / "_units"
    return len(list(folder.glob("*.json"))) if folder.is_dir() else 0


def sorted_rows(out: Path) -> pd.DataFrame:
    return read_results(out).sort_values(KEY).reset_index(drop=True)


@pytest.fixture(scope="module")
def suite_and_reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    root = tmp_path_factory.mktemp("crash")
    suite = root / "suite.toml"
    suite.write_text(SUITE)
    process = start(suite, root / "reference")
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 0, output
    return suite, sorted_rows(root / "reference")


def assert_same_as_reference(out: Path, reference: pd.DataFrame) -> None:
    rows = sorted_rows(out)
    assert not rows.duplicated(KEY).any()
    assert len(rows) == len(reference)
    pd.testing.assert_frame_equal(rows[KEY], reference[KEY])
    for column in ("explanation_change_pct", "ssim", "confidence_drop_pct", "rank_correlation"):
        np.testing.assert_allclose(rows[column], reference[column], rtol=1e-5, atol=1e-6, err_msg=column)
    for table in TABLES:  # every committed file is a whole Parquet file
        for path in part_files(out, table):
            pq.read_metadata(path)


@pytest.mark.parametrize("kill_after_units", [0, 1, 4])
def test_sigkill_then_resume_loses_nothing_and_duplicates_nothing(
    suite_and_reference: tuple[Path, pd.DataFrame], tmp_path: Path, kill_after_units: int
) -> None:
    suite, reference = suite_and_reference
    out = tmp_path / "out"
    process = start(suite, out)
    deadline = time.monotonic() + 300
    # 0: kill as soon as the run has created its folder (model loading / first unit);
    # otherwise kill right after the k-th unit committed, i.e. in the middle of the next one.
    while time.monotonic() < deadline and process.poll() is None:
        if (kill_after_units == 0 and (out / "manifest.json").exists()) or (
            kill_after_units and markers(out) >= kill_after_units
        ):
            break
        time.sleep(0.02)
    assert process.poll() is None, "the run finished before it could be killed; use a larger suite"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert markers(out) < UNITS
    resumed = start(suite, out)
    output, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, output
    assert markers(out) == UNITS
    assert_same_as_reference(out, reference)


def test_two_runs_into_one_folder_at_once(suite_and_reference: tuple[Path, pd.DataFrame], tmp_path: Path) -> None:
    suite, reference = suite_and_reference
    out = tmp_path / "shared"
    first, second = start(suite, out), start(suite, out)
    computed = 0
    for process in (first, second):
        output, _ = process.communicate(timeout=600)
        assert process.returncode == 0, output
        computed += int(re.search(r"(\d+) units computed", output).group(1))
    # Leases: a unit in progress in one run is skipped by the other, so none is computed twice.
    assert computed == UNITS
    assert markers(out) == UNITS
    assert not list((out / "_leases").glob("*.lock")), "every lease is released"
    assert_same_as_reference(out, reference)
    assert not [p for p in out.rglob(".*.tmp")], "no temporary files are left behind"


def test_ctrl_c_exits_130_says_how_to_resume_and_resume_completes(tmp_path: Path) -> None:
    # Slower integrated-gradients units (they come after the four saliency units), so the
    # interrupt lands in the middle of one rather than after the run ended.
    suite = tmp_path / "suite.toml"
    suite.write_text(SUITE.replace("n_steps = 8", "n_steps = 64"))
    out = tmp_path / "out"
    process = start(suite, out)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None and markers(out) < 4:
        time.sleep(0.02)
    assert process.poll() is None, "the run finished before it could be interrupted"
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 130, output
    assert "interrupted" in output and "re-run the same command to resume" in output, output
    assert "Traceback" not in output and "Aborted" not in output
    kept = markers(out)
    assert 4 <= kept < UNITS
    resumed = start(suite, out)
    output, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, output
    assert f"{kept} resumed" in output
    rows = read_results(out)
    assert markers(out) == UNITS and len(rows) == len(rows.drop_duplicates(KEY)) == 64
