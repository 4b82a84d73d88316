"""``xaibench plan``: its counts are what the run then does; its estimate comes from a probe;
the run's progress moves inside units; the source-split table of the leaderboard.

The suite is small (digits, 3 originals, one per unit) and its pool tiny (12 images), so most
attack-image slots fall back to other pool images and both ``attack_image_source`` values occur.
"""

from __future__ import annotations

import json
import math

import pytest

from xaibench.leaderboard import build_leaderboard
from xaibench.runner import build_plan, run_plan
from xaibench.runner.probe import estimate
from xaibench.runner.results import read_results
from xaibench.runner.suite import load_suite
from xaibench.runner.unit_progress import reporting

SUITE = """
[suite]
name = "plan-cost"
seed = 3
device = "cpu"
batch_size = "auto"
max_batch_size = 4
images_per_unit = 1
examples = 1
faithfulness_on_attacked = "none"
reference = { alpha = 0.2, topk = 0.2 }

[dataset]
name = "digits"
n_classes = 3
pool_size = 12

[[models]]
name = "digits_cnn"

[[explainers]]
name = "saliency"

[[explainers]]
name = "integrated_gradients"
n_steps = 8

[[attacks]]
name = "exiaa"
alphas = [0.1, 0.2]
topks = [0.2, 0.5]
n_attack_images = 2

[[attacks]]
name = "gaussian_noise"
alphas = [0.1, 0.2]
topks = [0.2, 0.5]
n_attack_images = 2
"""

#: Per original: 2 attacks × 4 grid points × 2 attack images corrupted; explained: the
#: original, those, and the 2 attack images (shared by both attacks).
CORRUPTED, EXPLAINED = 16, 1 + 16 + 2


@pytest.fixture(scope="module")
def suite_file(tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("plan-cost") / "suite.toml"
    path.write_text(SUITE)
    return path


@pytest.fixture(scope="module")
def planned_and_run(suite_file, tmp_path_factory: pytest.TempPathFactory):
    """The plan's cost (with a probe), then the run, counting the images each unit explains."""
    out = tmp_path_factory.mktemp("plan-cost-out")
    plan = build_plan(load_suite(str(suite_file)), out)
    cost = estimate(plan, probe=True)
    actual: dict[str, int] = {}
    current = {"n": 0}

    def explained(count: int) -> None:
        current["n"] += count

    def unit_done(unit, done, total) -> None:  # noqa: ANN001
        actual[unit.unit_id] = current["n"]
        current["n"] = 0

    with reporting(explained):
        run_plan(plan, progress=unit_done)
    return plan, cost, actual, out


def test_the_plans_counts_are_what_the_run_explains(planned_and_run) -> None:
    plan, cost, actual, _ = planned_and_run
    pairs = {(p.model, p.explainer): p for p in cost.pairs}
    assert set(pairs) == {("digits_cnn", "saliency"), ("digits_cnn", "integrated_gradients")}
    for pair in pairs.values():
        assert (pair.units, pair.pending, pair.originals) == (3, 3, 3)
        assert pair.corrupted == 3 * CORRUPTED and pair.rows == 3 * CORRUPTED
        assert pair.explained == 3 * EXPLAINED
    # The oracle: every image the model access explained during the run, unit by unit.
    assert len(actual) == 6 and set(actual.values()) == {EXPLAINED}
    # Declared passes: saliency one forward + backward per image, IG one per step.
    saliency, ig = pairs[("digits_cnn", "saliency")], pairs[("digits_cnn", "integrated_gradients")]
    assert saliency.backward_passes == 3 * EXPLAINED and ig.backward_passes == 8 * 3 * EXPLAINED
    assert ig.forward_passes == 8 * 3 * EXPLAINED + ig.forwards + ig.pool_forwards
    # The pool's forward is charged once per model, and only while it is not cached.
    assert saliency.pool_forwards + ig.pool_forwards == 12


def test_the_probe_times_each_pair_and_the_estimate_adds_up(planned_and_run) -> None:
    _, cost, _, out = planned_and_run
    manifest = json.loads((out / "manifest.json").read_text())
    for pair in cost.pairs:
        assert pair.explain_s is not None and pair.explain_s > 0 and pair.forward_s > 0
        # The probe tunes as the run does (cached), so the run starts with the sizes it measured.
        used = {(c["explainer"], c["stage"]): c["chunk_size"] for c in manifest["chunk_sizes"]}
        assert used[(pair.explainer, "explain")] == pair.chunks["explain"]
        assert used[("-", "forward")] == pair.chunks["forward"]
        assert pair.row_s is not None and pair.row_s > 0  # the suite's robustness metrics, timed
        expected = (
            pair.explained * pair.explain_s + (pair.forwards + pair.pool_forwards) * pair.forward_s
            + pair.rows * pair.row_s
        )
        assert math.isclose(pair.estimate_s, expected)
    ig = next(p for p in cost.pairs if p.explainer == "integrated_gradients")
    saliency = next(p for p in cost.pairs if p.explainer == "saliency")
    assert ig.explain_s > saliency.explain_s  # 8 steps cost more than one gradient
    assert math.isclose(cost.estimate_s, sum(p.estimate_s for p in cost.pairs))
    json.dumps(cost.record())  # JSON-able, as `xaibench plan --json` prints it


def test_plan_after_the_run_has_nothing_left(planned_and_run, suite_file, xaibench_cli) -> None:
    _, _, _, out = planned_and_run
    code, printed, err = xaibench_cli(["plan", "--suite", str(suite_file), "--out", str(out), "--json"])
    assert code == 0, err
    record = json.loads(printed[printed.index("{"):])
    assert record["estimate_s"] == 0.0
    assert all(p["pending"] == 0 and p["units"] == 3 for p in record["pairs"])


def test_plan_without_probe_and_a_model_override(suite_file, tmp_path, xaibench_cli) -> None:
    code, printed, err = xaibench_cli([
        "plan", "--suite", str(suite_file), "--out", str(tmp_path / "o"), "--no-probe",
        "--explainer", "saliency", "--n-classes", "2",
    ])
    assert code == 0, err
    assert "saliency" in printed and "integrated_gradients" not in printed
    assert "2/2" in printed and "estimated ? on cpu" in printed


def test_run_progress_counts_images_to_the_planned_total(suite_file, tmp_path, xaibench_cli) -> None:
    code, printed, err = xaibench_cli([
        "run", "--suite", str(suite_file), "--out", str(tmp_path / "o"), "--explainer", "saliency", "--n-classes", "2",
    ])
    assert code == 0, err
    total = 2 * EXPLAINED
    assert f"{total}/{total} images, 2/2 units" in printed


def test_source_split_table_matches_a_direct_computation(planned_and_run) -> None:
    _, _, _, out = planned_and_run
    frame = read_results(out, table="robustness")
    at = frame[(frame["alpha"] == 0.2) & (frame["topk"] == 0.2)]
    assert set(at["attack_image_source"]) == {"class", "pool"}, "the tiny pool must force fallbacks"
    board = build_leaderboard([out], resamples=50)
    table = next(t for t in board.tables["plan-cost"] if t.id == "source-split")
    titles = {"class": "running-up class", "pool": "other pool image"}
    expected = at.groupby(["explainer", "attack_name", "attack_image_source"])
    assert len(table.rows) == expected.ngroups
    for (explainer, attack, source), rows in expected:
        row = next(
            r for r in table.rows
            if r["explainer"].text == explainer and r["source"].text == titles[source]
            and r["attack"].text == ("eXIAA" if attack == "exiaa" else "Gaussian noise")
        )
        assert int(row["rows"].text) == len(rows)
        assert int(row["images"].text) == rows["image_id"].nunique()
        mean = rows.groupby("image_id")["explanation_change_pct"].mean().mean()
        assert math.isclose(row["explanation_change_pct"].estimate.mean, mean, rel_tol=1e-9)
