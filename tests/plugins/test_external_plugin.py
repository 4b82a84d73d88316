"""Round trip of a third-party plugin: a throw-away package registers an attack through the
``xaibench.attacks`` entry point, is installed (into a private folder), and a suite names it.
A second entry point that fails to import is reported while everything else still works."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PACKAGE = '''
"""A demo attack: brighten the original by `delta` (no oracle calls beyond the contract)."""
import torch
from xaibench.registry import attacks
from xaibench.types import Attack, AttackOutput


@attacks.register("brighten")
class Brighten(Attack):
    black_box = True

    def __init__(self, deltas: tuple = (0.01, 0.05)):
        self.deltas = [float(d) for d in deltas]

    def grid(self):
        return [{"delta": d} for d in self.deltas]

    def perturb(self, x01, oracle, context):
        images = torch.cat([(x01 + d).clamp(0, 1) for d in self.deltas])
        origin = torch.arange(x01.shape[0]).repeat(len(self.deltas))
        deltas = [d for d in self.deltas for _ in range(x01.shape[0])]
        return AttackOutput(images=images, origin=origin, columns={"delta": deltas})
'''

PYPROJECT = """
[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"

[project]
name = "xaibench-demo-plugin"
version = "0.0.1"

[project.entry-points."xaibench.attacks"]
brighten = "xaibench_demo_plugin"
broken = "xaibench_demo_plugin.missing:Nope"
"""

SUITE = """
[suite]
name = "plugin-demo"
device = "cpu"

[dataset]
name = "digits"
limit = 2

[[models]]
name = "digits_cnn"
epochs = 3

[[explainers]]
name = "saliency"

[[attacks]]
name = "brighten"
deltas = [0.02, 0.1]
"""


@pytest.fixture(scope="module")
def installed_plugin(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("plugin")
    source = root / "src"
    (source / "xaibench_demo_plugin").mkdir(parents=True)
    (source / "xaibench_demo_plugin" / "__init__.py").write_text(textwrap.dedent(PACKAGE))
    (source / "pyproject.toml").write_text(PYPROJECT)
    site = root / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(site), str(source)],
        check=True,
        capture_output=True,
        text=True,
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    env["HF_HUB_OFFLINE"] = "1"
    return {"root": str(root), **env}


def xaibench(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in env.items() if k != "root"}
    return subprocess.run(
        [sys.executable, "-m", "xaibench.cli", *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=600,
    )


def test_list_shows_the_external_attack_and_the_broken_one(installed_plugin: dict[str, str]) -> None:
    result = xaibench(installed_plugin, "list", "attacks")
    assert result.returncode == 0, result.stderr
    assert "brighten" in result.stdout
    assert "xaibench-demo-plugin" in result.stdout  # where it came from
    assert "deltas" in result.stdout
    assert "exiaa" in result.stdout  # the built-ins still load
    assert "broken" in result.stdout and "failed to import" in result.stdout


def test_a_suite_naming_the_external_attack_runs(installed_plugin: dict[str, str]) -> None:
    root = Path(installed_plugin["root"])
    suite = root / "suite.toml"
    suite.write_text(SUITE)
    out = root / "out"
    result = xaibench(installed_plugin, "run", "--suite", str(suite), "--out", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    import pandas as pd

    from xaibench.runner.results import read_results

    frame = read_results(out)
    assert set(frame["attack"]) == {"brighten"}
    assert sorted(frame["delta"].unique()) == pytest.approx([0.02, 0.1])
    assert len(frame) == 2 * 2  # 2 images × 2 deltas
    assert pd.api.types.is_float_dtype(frame["explanation_change_pct"])
