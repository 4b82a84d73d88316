"""The Ray executor writes the same layout and the same rows as the local executor."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from xaibench.runner import build_plan, run_plan
from xaibench.runner.results import part_files, read_results
from xaibench.runner.suite import load_suite

ray = pytest.importorskip("ray", reason="the ray extra is not installed")

SUITE = """
[suite]
name = "ray-vs-local"
device = "cpu"
batch_size = 8
images_per_unit = 2
seed = 5

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


@pytest.fixture(scope="module")
def local_ray_cluster():
    # The test starts its own two-CPU cluster on this machine and stops it afterwards. Its
    # workers use the test process's thread count (Ray's default is 1), so both executors run
    # the same kernels on the same CPU: the rows below may then be compared bit for bit.
    env = {"OMP_NUM_THREADS": str(torch.get_num_threads())}
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True,
             runtime_env={"env_vars": env})
    yield
    ray.shutdown()


def test_ray_and_local_executors_give_identical_rows(tmp_path: Path, local_ray_cluster) -> None:
    path = tmp_path / "suite.toml"
    path.write_text(SUITE)
    local = run_plan(build_plan(load_suite(str(path)), tmp_path / "local"))
    remote = run_plan(build_plan(load_suite(str(path)), tmp_path / "ray"), executor="ray")
    assert remote.units_done == local.units_done == 4
    assert remote.rows_written == local.rows_written
    relative = lambda out: sorted(p.relative_to(out) for p in part_files(out))  # noqa: E731
    assert relative(tmp_path / "ray") == relative(tmp_path / "local")
    key = ["explainer", "image_id", "attack_image_id", "alpha", "topk"]
    a = read_results(tmp_path / "local").sort_values(key).reset_index(drop=True)
    b = read_results(tmp_path / "ray").sort_values(key).reset_index(drop=True)
    assert a[key].equals(b[key])
    for column in ("explanation_change_pct", "ssim", "confidence_drop_pct", "rank_correlation", "topk_intersection"):
        np.testing.assert_array_equal(b[column].to_numpy(), a[column].to_numpy(), err_msg=column)
    # resume works across executors: nothing left to do
    again = run_plan(build_plan(load_suite(str(path)), tmp_path / "ray"), executor="ray")
    assert again.units_done == 0 and again.units_existing == 4


TWO_MODELS = SUITE.replace(
    '[[models]]\nname = "digits_cnn"\n',
    '[[models]]\nname = "digits_cnn"\n\n[[models]]\nname = "digits_cnn"\nlabel = "short"\nepochs = 2\n',
).replace("n_classes = 4", "n_classes = 2")


def test_a_ray_task_gets_its_unit_spec_and_loads_only_its_own_model(tmp_path: Path, local_ray_cluster) -> None:
    from xaibench.runner import RayExecutor

    path = tmp_path / "suite.toml"
    path.write_text(TWO_MODELS)
    plan = build_plan(load_suite(str(path)), tmp_path / "out")
    units = plan.pending()
    assert {u.model.label for u in units} == {"digits_cnn", "short"}
    outcomes = []
    RayExecutor().run(plan, units, "ray-test", lambda unit, outcome, _: outcomes.append((unit, outcome)))
    assert len(outcomes) == len(units)
    for unit, outcome in outcomes:
        assert outcome["state"] == "done", outcome
        # No re-planning: a task loads at most the model of its own unit, never the suite's others.
        assert set(outcome["models_loaded_by_task"]) <= {unit.model.label}
    # Every model was loaded by some task (the workers did not share the driver's models).
    assert {m for _, o in outcomes for m in o["models_loaded_by_task"]} == {"digits_cnn", "short"}
