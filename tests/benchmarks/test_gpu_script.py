"""``benchmarks/gpu.sh`` dry-runs on the CPU (``--device cpu --quick``) so it cannot rot
between the rare sessions that are lent a GPU: every step runs, the summary has every section,
and the headline comes last."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
pytest.importorskip("quantus")


@pytest.mark.slow
def test_the_gpu_script_dry_runs_on_the_cpu(tmp_path: Path) -> None:
    out = tmp_path / "out"
    env = {**os.environ, "PYTHON": sys.executable, "XAIBENCH_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "2"}
    done = subprocess.run(
        ["bash", "benchmarks/gpu.sh", "--device", "cpu", "--quick", "--out", str(out)],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert {p.name for p in out.iterdir()} == {"summary.json", "bench.json", "logs.tar.gz"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["device"] == "cpu" and "skipped" in summary["tests"]  # the CUDA tests skip on a CPU
    names = [figure["name"] for figure in summary["bench"]]
    assert "runner vs naive loop" in names and all(f["outputs_match"] is not False for f in summary["bench"])
    pairs = summary["real_data"]
    assert pairs and all(p["units_done"] == p["units_planned"] and p["images_per_s"] > 0 for p in pairs)
    assert all(p["estimate_over_actual"] > 0 for p in pairs)
    lines = done.stdout.strip().splitlines()
    headline = lines[lines.index(next(line for line in lines if line.startswith("== headline"))) + 1 :]
    assert headline[0] == "device: cpu" and lines[-1] == headline[-1] and " × " in lines[-1]
