"""The wheel installs like a library: every subpackage and the built-in suites are in it, and
the command line runs from the installed wheel, not from the checkout."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("build")
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(ROOT)],
        check=True, capture_output=True, text=True,
    )
    (found,) = out.glob("xaibench-*.whl")
    return found


def test_the_wheel_holds_every_package_and_the_suites(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    packages = {str(p.parent.relative_to(ROOT)) for p in (ROOT / "xaibench").rglob("__init__.py")}
    for package in packages:
        assert f"{package}/__init__.py" in names, package
    suites = {p.name for p in (ROOT / "xaibench" / "suites").glob("*.toml")}
    assert suites and {f"xaibench/suites/{s}" for s in suites} <= names


def test_the_installed_wheel_runs_without_the_checkout(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, text=True)
    env = dict(os.environ, PYTHONPATH=str(target), HF_HUB_OFFLINE="1")
    code = "import xaibench, sys; print(xaibench.__file__); print(xaibench.list_plugins('suites'))"
    shown = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    assert str(target) in shown.stdout and "quickstart" in shown.stdout
    listed = subprocess.run([sys.executable, "-m", "xaibench.cli", "list", "suites"], cwd=tmp_path, env=env,
                            capture_output=True, text=True)
    assert listed.returncode == 0 and "digits-fragility" in listed.stdout, listed.stderr
    suite = tmp_path / "tiny.toml"  # a whole run from the installed wheel (its suites, its CLI)
    suite.write_text(
        "[suite]\nname = 'tiny'\ndevice = 'cpu'\n[dataset]\nname = 'digits'\nlimit = 1\n[[models]]\n"
        "name = 'digits_cnn'\n[[explainers]]\nname = 'saliency'\n[[attacks]]\nname = 'exiaa'\n"
        "alphas = [0.1]\ntopks = [0.2]\nn_attack_images = 1\n"
    )
    ran = subprocess.run([sys.executable, "-m", "xaibench.cli", "run", "--suite", str(suite), "--out", "out"],
                         cwd=tmp_path, env=env, capture_output=True, text=True)
    assert ran.returncode == 0 and "1 units computed" in ran.stdout, ran.stdout + ran.stderr
