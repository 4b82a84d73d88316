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
from xaibench.registry import attacks, explainers, metrics
from xaibench.types import Attack, AttackOutput, Metric


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


@attacks.register("patches")
class Patches(Attack):
    """Grey square patches at random places: a grid of its own (patch size × number of patches)."""

    title = "Random patches"
    grid_axes = ("patch_size", "n_patches")

    def __init__(self, patch_sizes: tuple[int, ...] = (2, 4), counts: tuple[int, ...] = (1, 3)):
        self.sizes = [int(v) for v in patch_sizes]
        self.counts = [int(v) for v in counts]

    def grid(self):
        return [{"patch_size": s, "n_patches": n} for s in self.sizes for n in self.counts]

    def perturb(self, x01, oracle, context):
        n, _, height, width = x01.shape
        images, columns = [], {"patch_size": [], "n_patches": []}
        for point in self.grid():
            size, count = point["patch_size"], point["n_patches"]
            batch = x01.clone()
            generator = context.generator("patches", size, count)
            for _ in range(count):
                tops = torch.randint(0, height - size + 1, (n,), generator=generator).tolist()
                lefts = torch.randint(0, width - size + 1, (n,), generator=generator).tolist()
                for i, (top, left) in enumerate(zip(tops, lefts)):
                    batch[i, :, top : top + size, left : left + size] = 0.5
            images.append(batch)
            columns["patch_size"] += [size] * n
            columns["n_patches"] += [count] * n
        origin = torch.arange(n).repeat(len(self.grid()))
        return AttackOutput(images=torch.cat(images), origin=origin, columns=columns)


@metrics.register("heat_shift")
class HeatShift(Metric):
    """How far the centre of mass of |attribution| moves, in pixels."""

    title = "heat shift"
    unit = "px"
    higher_is_better = False
    needs = ("expl_original", "expl_corrupted")

    @staticmethod
    def _centre(attributions):
        heat = attributions.abs().sum(dim=1)
        total = heat.flatten(1).sum(dim=1).clamp_min(1e-12)
        rows = torch.arange(heat.shape[1], dtype=heat.dtype).view(1, -1, 1)
        cols = torch.arange(heat.shape[2], dtype=heat.dtype).view(1, 1, -1)
        return (heat * rows).flatten(1).sum(1) / total, (heat * cols).flatten(1).sum(1) / total

    def __call__(self, expl_original, expl_corrupted):
        (r0, c0), (r1, c1) = self._centre(expl_original), self._centre(expl_corrupted)
        return torch.sqrt((r0 - r1) ** 2 + (c0 - c1) ** 2)


@explainers.function("grad_sign", title="Gradient sign")
def grad_sign(model, x01, target, scale: float = 1.0):
    """The sign of the input gradient of the target logit."""
    x = x01.detach().clone().requires_grad_(True)
    (gradient,) = torch.autograd.grad(model(x).gather(1, target.view(-1, 1)).sum(), x)
    return scale * gradient.sign()
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
patches = "xaibench_demo_plugin"
broken = "xaibench_demo_plugin.missing:Nope"

[project.entry-points."xaibench.metrics"]
heat_shift = "xaibench_demo_plugin"

[project.entry-points."xaibench.explainers"]
grad_sign = "xaibench_demo_plugin"
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


LEADERBOARD_SUITE = """
metrics = ["explanation_change_pct", "ssim", "heat_shift"]

[suite]
name = "plugin-board"
device = "cpu"
batch_size = 8
examples = 1

[dataset]
name = "digits"
limit = 2

[[models]]
name = "digits_cnn"
epochs = 3

[[explainers]]
name = "saliency"

[[explainers]]
name = "grad_sign"

[[attacks]]
name = "exiaa"
alphas = [0.05, 0.15]
topks = [0.1, 0.5]
n_attack_images = 1

[[attacks]]
name = "patches"
"""


def test_third_party_attack_metric_and_function_explainer_reach_the_leaderboard(
    installed_plugin: dict[str, str],
) -> None:
    """A plugin looks exactly like a built-in everywhere a user can see it: its rows, the
    recorded metadata, the overview table, the figures over its own grid axes and the examples."""
    root = Path(installed_plugin["root"])
    suite = root / "board.toml"
    suite.write_text(LEADERBOARD_SUITE)
    out = root / "board"
    result = xaibench(installed_plugin, "run", "--suite", str(suite), "--out", str(out))
    assert result.returncode == 0, result.stdout + result.stderr

    from xaibench.runner.results import read_manifest, read_results

    frame = read_results(out)
    patches = frame[frame["attack"] == "patches"]
    assert set(patches["explainer"]) == {"saliency", "grad_sign"}
    assert sorted(patches[["patch_size", "n_patches"]].drop_duplicates().itertuples(index=False)) == [
        (2, 1), (2, 3), (4, 1), (4, 3)
    ]
    assert patches["heat_shift"].notna().all()
    plugins = read_manifest(out)["plugins"]
    assert plugins["attacks"]["patches"]["grid_axes"] == ["patch_size", "n_patches"]
    assert plugins["attacks"]["patches"]["distribution"] == "xaibench-demo-plugin"
    assert plugins["metrics"]["heat_shift"]["title"] == "heat shift"
    assert plugins["metrics"]["heat_shift"]["higher_is_better"] is False
    assert plugins["explainers"]["grad_sign"]["title"] == "Gradient sign"

    markdown = xaibench(installed_plugin, "leaderboard", str(out), "--format", "markdown")
    assert markdown.returncode == 0, markdown.stdout + markdown.stderr
    for shown in ("Random patches", "eXIAA", "heat shift", "SSIM", "Gradient sign"):
        assert shown in markdown.stdout, shown

    site = root / "leaderboard"  # root / "site" holds the installed plugin
    built = xaibench(installed_plugin, "leaderboard", str(out), "--out", str(site))
    assert built.returncode == 0, built.stdout + built.stderr
    page = (site / "index.html").read_text()
    for shown in ("Random patches", "heat shift", "patch_size", "n_patches", "Gradient sign"):
        assert shown in page, shown
    figures = [p.name for p in (site / "assets").glob("*.png")]
    assert any("patches" in name for name in figures), figures
