"""``quantus.<Name>`` metrics: the adapter's values equal direct Quantus calls on the same inputs.

Deterministic metrics are compared with one Quantus call on the whole batch (same forwards,
so equal to the float32 rounding of the model); ``normalise`` with Quantus's own per-call
normalisation on one image at a time (the adapter's per-image normalisation); random metrics
with a Quantus call on one image after seeding numpy's global RNG the way the adapter does.
Then the provider's names, errors and laziness, and a digits suite through the runner.
"""

from __future__ import annotations

import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from xaibench import registry
from xaibench.errors import ConfigError, ResourceUnavailableError, UnknownPluginError
from xaibench.metrics import quantus_catalog
from xaibench.metrics.quantus_metrics import PROVIDER
from xaibench.metrics.quantus_support import broadcast_mask, pixel_indices

from .faithfulness_helpers import ForwardModule, TinyNet, gradients, inputs

quantus = pytest.importorskip("quantus")

SEEDS = [11, 2**40 + 5, 2**62 + 3]  # the runner's seeds have 63 bits


@pytest.fixture(scope="module")
def setup():  # type: ignore[no-untyped-def]
    model = TinyNet()
    x, _ = inputs(n=3, size=8, seed=1)
    with torch.no_grad():
        y = model(x).argmax(1)
    return model, x, gradients(model, x, y), y


def adapter(name: str, **params):  # type: ignore[no-untyped-def]
    return registry.metrics.get(f"quantus.{name}")(**params)


def evaluate(metric, model, x, a, y, chunk_size: int = 3):  # type: ignore[no-untyped-def]
    return metric.evaluate(lambda z: model(z), x, a, y, seeds=SEEDS[: len(x)], chunk_size=chunk_size)


def direct(name, model, x, a, y, *, batch_size: int = 64, **params):  # type: ignore[no-untyped-def]
    """Quantus itself, as a user calls it (``np.trapz`` restored for IROF on numpy 2)."""
    metric = getattr(quantus, name)(disable_warnings=True, **params)
    patched = not hasattr(np, "trapz")
    if patched:
        np.trapz = np.trapezoid
    try:
        return metric(model=ForwardModule(model) if model is not None else None, x_batch=x.numpy().copy(),
                      y_batch=y.numpy(), a_batch=a.numpy().copy(), channel_first=True, device="cpu",
                      batch_size=batch_size)
    finally:
        if patched:
            del np.trapz


def seeded(seed: int) -> None:
    value = seed % 2**64
    np.random.seed([value & 0xFFFFFFFF, value >> 32])


# -- path (a) without the model: complexity --------------------------------------------


@pytest.mark.parametrize("name", ["Sparseness", "Complexity", "EffectiveComplexity"])
def test_complexity_metrics_equal_quantus(setup, name: str) -> None:  # type: ignore[no-untyped-def]
    model, x, a, y = setup
    raw = evaluate(adapter(name, normalise=False), model, x, a, y)
    np.testing.assert_array_equal(raw.scores.numpy(), np.asarray(direct(name, None, x, a, y, normalise=False)))
    assert raw.forward_images == 0
    # normalise (the default) divides each image by its own maximum: Quantus on one image
    per_image = [direct(name, None, x[[i]], a[[i]], y[[i]])[0] for i in range(len(x))]
    np.testing.assert_allclose(evaluate(adapter(name), model, x, a, y).scores.numpy(), per_image, rtol=1e-6)
    scaled = a * torch.tensor([1.0, 10.0, 1e3]).view(-1, 1, 1, 1)  # another batch maximum
    np.testing.assert_allclose(evaluate(adapter(name), model, x, scaled, y).scores.numpy(), per_image, rtol=1e-5)


# -- path (a) with the model: faithfulness and axiomatic --------------------------------

DETERMINISTIC = [
    ("FaithfulnessEstimate", {"features_in_step": 8}),
    ("Infidelity", {"n_perturb_samples": 2, "perturb_patch_sizes": [2, 4]}),
    ("Monotonicity", {"features_in_step": 16}),
    ("NonSensitivity", {"eps": 1e-3}),
    ("Completeness", {}),
    ("RegionPerturbation", {"patch_size": 2, "regions_evaluation": 6}),
]


@pytest.mark.parametrize(("name", "params"), DETERMINISTIC, ids=[n for n, _ in DETERMINISTIC])
def test_model_metrics_equal_quantus(setup, name: str, params: dict) -> None:  # type: ignore[no-untyped-def,type-arg]
    model, x, a, y = setup
    result = evaluate(adapter(name, normalise=False, **params), model, x, a, y)
    expected = direct(name, model, x, a, y, normalise=False, **params)
    if name == "RegionPerturbation":  # Quantus returns the curves; its AUC is trapezoid dx = 1
        np.testing.assert_allclose(result.curves["region_perturbation"].numpy(), np.stack(expected), rtol=1e-6)
        expected = [np.trapezoid(curve, dx=1) for curve in expected]
    np.testing.assert_allclose(result.scores.numpy(), np.asarray(expected, dtype=np.float64), rtol=1e-6, atol=1e-9)
    assert result.forward_images > 0


@pytest.mark.parametrize("name", ["PixelFlipping", "Selectivity"])
def test_curve_metrics_equal_quantus_auc(setup, name: str) -> None:  # type: ignore[no-untyped-def]
    """Curves and Quantus's own AUC (``return_auc_per_sample`` / ``get_auc_score``), with
    Quantus's normalise on each image alone; the curve's x axis is the share removed."""
    model, x, a, y = setup
    params = {"features_in_step": 16} if name == "PixelFlipping" else {"patch_size": 4}
    result = evaluate(adapter(name, **params), model, x, a, y, chunk_size=2)
    curves, aucs = [], []
    for i in range(len(x)):
        metric_params = dict(params, return_auc_per_sample=True) if name == "PixelFlipping" else params
        (value,) = direct(name, model, x[[i]], a[[i]], y[[i]], **metric_params)
        if name == "Selectivity":
            curves.append(value)
            value = np.trapezoid(value, dx=1)  # = Selectivity.get_auc_score on one image
        aucs.append(value)
    np.testing.assert_allclose(result.scores.numpy(), aucs, rtol=1e-5)
    if name == "PixelFlipping":
        curves = [direct(name, model, x[[i]], a[[i]], y[[i]], **params)[0] for i in range(len(x))]
        assert result.curve_x[-1] == 1.0 and len(result.curve_x) == 3 * 64 // 16
    else:
        assert torch.allclose(result.curve_x, torch.arange(1, 5, dtype=torch.float64) / 4)
    curve_name = {"PixelFlipping": "pixel_flipping", "Selectivity": "selectivity"}[name]
    np.testing.assert_allclose(result.curves[curve_name].numpy(), np.stack(curves), rtol=1e-5)


# -- random metrics: one image per call, numpy's RNG seeded per image -------------------

RANDOM = [
    ("FaithfulnessCorrelation", {"nr_runs": 8, "subset_size": 16}),
    ("MonotonicityCorrelation", {"nr_samples": 3, "features_in_step": 16}),  # perturb_baseline="uniform"
    ("RegionPerturbation", {"patch_size": 2, "regions_evaluation": 4, "order": "random"}),
]


@pytest.mark.parametrize(("name", "params"), RANDOM, ids=[n for n, _ in RANDOM])
def test_random_metrics_equal_seeded_quantus_and_keep_the_global_rng(setup, name: str, params: dict) -> None:  # type: ignore[no-untyped-def,type-arg]
    model, x, a, y = setup
    metric = adapter(name, **params)
    assert metric.per_image
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    result = evaluate(metric, model, x, a, y)
    np.testing.assert_array_equal(np.random.get_state()[1], before)  # restored
    expected = []
    for i, seed in enumerate(SEEDS):
        seeded(seed)
        value = direct(name, model, x[[i]], a[[i]], y[[i]], **params)[0]
        expected.append(np.trapezoid(value, dx=1) if name == "RegionPerturbation" else value)
    np.testing.assert_allclose(result.scores.numpy(), expected, rtol=1e-5)
    alone = metric.evaluate(lambda z: model(z), x[[2]], a[[2]], y[[2]], seeds=SEEDS[2:], chunk_size=1)
    np.testing.assert_allclose(alone.scores.numpy(), result.scores.numpy()[2:], rtol=1e-5)


def test_road_on_one_channel_equals_quantus_and_runs_on_rgb(setup) -> None:  # type: ignore[no-untyped-def]
    """Quantus 0.6's ROAD imputes by pixel index but ranks channel entries: exact on one
    channel; on RGB the adapter imputes the pixels of the top entries (Quantus IndexErrors)."""
    model1 = TinyNet(channels=1)
    x, _ = inputs(n=2, channels=1, size=8, seed=3)
    y = model1(x).argmax(1)
    a = gradients(model1, x, y)
    percentages = [10, 40, 70]
    result = evaluate(adapter("ROAD", percentages=percentages), model1, x, a, y)
    for i in range(2):
        seeded(SEEDS[i])
        accuracies = direct("ROAD", model1, x[[i]], a[[i]], y[[i]], percentages=percentages)
        np.testing.assert_array_equal(result.curves["road"][i].numpy(), list(accuracies.values()))
    np.testing.assert_allclose(result.scores.numpy(), result.curves["road"].numpy().mean(axis=1))
    np.testing.assert_allclose(result.curve_x.numpy(), [0.1, 0.4, 0.7])
    model, x3, a3, y3 = setup
    rgb = evaluate(adapter("ROAD", percentages=percentages), model, x3, a3, y3)
    assert rgb.curves["road"].shape == (3, 3) and np.isin(rgb.curves["road"].numpy(), [0.0, 1.0]).all()
    arr = x3[0].numpy()  # 3×8×8: entries 70 and 134 are pixel 6 in channels 1 and 2
    moved = pixel_indices(arr=arr, indices=np.array([70, 6, 134, 9]), noise=0.0)
    assert set(np.flatnonzero((moved != arr).any(axis=0).reshape(-1))) == {6, 9}


def test_irof_equals_quantus_on_one_channel_and_runs_on_rgb(setup) -> None:  # type: ignore[no-untyped-def]
    model1 = TinyNet(channels=1)
    x, _ = inputs(n=2, channels=1, size=16, seed=4)
    y = model1(x).argmax(1)
    a = gradients(model1, x, y)
    result = evaluate(adapter("IROF"), model1, x, a, y)
    expected = [direct("IROF", model1, x[[i]], a[[i]], y[[i]])[0] for i in range(2)]
    np.testing.assert_allclose(result.scores.numpy(), expected, rtol=1e-6)
    model, x3, a3, y3 = setup
    assert np.isfinite(evaluate(adapter("IROF"), model, x3, a3, y3).scores.numpy()).all()
    mask = np.zeros((1, 1, 8, 8), dtype=bool)
    mask[..., :2, :2] = True
    out = broadcast_mask(arr=x3.numpy()[[0]], mask=mask, perturb_baseline=0.0)
    assert (out[..., :2, :2] == 0).all() and np.array_equal(out[..., 2:, :], x3.numpy()[[0], :, 2:, :])


def test_nonfinite_attributions_score_nan(setup) -> None:  # type: ignore[no-untyped-def]
    model, x, a, y = setup
    bad = a.clone()
    bad[1, 0, 0, 0] = float("nan")
    metric = adapter("PixelFlipping", features_in_step=16)
    good = evaluate(metric, model, x, a, y).scores.numpy()
    scores = evaluate(metric, model, x, bad, y).scores.numpy()
    assert np.isnan(scores[1]) and np.allclose(scores[[0, 2]], good[[0, 2]], rtol=1e-5)


# -- metadata, parameters, names, errors -----------------------------------------------


def test_directions_and_categories_are_quantus_own() -> None:
    from quantus.metrics.base import Metric

    all_metrics = {
        name for name in dir(quantus)
        if isinstance(getattr(quantus, name), type) and issubclass(getattr(quantus, name), Metric)
        and getattr(quantus, name) is not Metric
    }
    assert all_metrics == set(quantus_catalog.ADAPTED) | set(quantus_catalog.SKIPPED)  # none forgotten
    assert not set(quantus_catalog.ADAPTED) & set(quantus_catalog.SKIPPED)
    assert PROVIDER.names() == sorted(f"quantus.{n}" for n in quantus_catalog.ADAPTED)
    for name in quantus_catalog.ADAPTED:
        cls = registry.metrics.get(f"quantus.{name}")
        original = getattr(quantus, name)
        assert cls.category == "faithfulness"  # what the runner and the leaderboard score per image
        assert cls.quantus_category == original.evaluation_category.value.lower()
        quantus_higher = original.score_direction.value == "higher"
        assert cls.higher_is_better == (True if name == "RegionPerturbation" else quantus_higher), name
        assert registry.metrics.origin(f"quantus.{name}") == "quantus"
        assert registry.metrics.version(f"quantus.{name}") == quantus.__version__
    assert adapter("RegionPerturbation", order="lerf").higher_is_better is False


def test_parameters_are_the_constructors_and_checked() -> None:
    params = {p.name: p for p in registry.metrics.params("quantus.ROAD")}
    assert set(params) == {"percentages", "noise", "abs", "normalise", "softmax"}
    assert params["percentages"].type_name == "list[float]" and list(params["percentages"].default) == list(range(1, 100, 2))
    assert registry.metrics.resolved_params("quantus.ROAD", {"percentages": [5, 50.0]})["percentages"] == [5, 50.0]
    assert {"similarity_func", "perturb_func"}.isdisjoint(p.name for p in registry.metrics.params("quantus.FaithfulnessCorrelation"))
    for name, bad, fragment in (
        ("quantus.ROAD", {"percentages": [0]}, "(0, 100]"),
        ("quantus.PixelFlipping", {"features_in_step": 0}, "features_in_step must be ≥ 1"),
        ("quantus.NonSensitivity", {"features_in_step": 4}, "must be 1"),
    ):
        with pytest.raises(ConfigError, match=re.escape(fragment)):
            registry.metrics.get(name)(**bad)
    with pytest.raises(ConfigError, match="'black'"):
        registry.metrics.coerce_params("quantus.PixelFlipping", {"perturb_baseline": "purple"})
    assert registry.metrics.coerce_params("quantus.PixelFlipping", {"perturb_baseline": 0}) == {"perturb_baseline": 0}


def test_a_size_quantus_rejects_names_the_metric(setup) -> None:  # type: ignore[no-untyped-def]
    model, x, a, y = setup
    with pytest.raises(ConfigError, match=r"quantus.PixelFlipping: Quantus rejected 3×8×8 images .*features_in_step"):
        evaluate(adapter("PixelFlipping", features_in_step=7), model, x, a, y)


def test_unknown_and_left_out_names_say_why() -> None:
    with pytest.raises(UnknownPluginError, match="Did you mean 'quantus.Sparseness'"):
        registry.metrics.resolve("quantus.Sparsenes")
    with pytest.raises(UnknownPluginError, match="does not run: it re-explains perturbed inputs through explain_func"):
        registry.metrics.resolve("quantus.MaxSensitivity")
    with pytest.raises(UnknownPluginError, match="segmentation masks"):
        registry.metrics.get("quantus.PointingGame")
    assert "quantus.MaxSensitivity" not in registry.metrics and "quantus.Sparseness" in registry.metrics


def test_missing_quantus_says_pip_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "quantus", None)  # import quantus → ImportError
    with pytest.raises(ResourceUnavailableError, match=r"pip install 'xaibench\[quantus\]'"):
        PROVIDER.plugin("quantus.Sparseness")
    assert PROVIDER.names() == []


def test_pickles_by_name_and_parameters() -> None:
    metric = adapter("ROAD", percentages=[10, 20])
    copy = pickle.loads(pickle.dumps(metric))
    assert type(copy) is type(metric) and copy.quantus_params == metric.quantus_params


def test_quantus_is_imported_only_for_quantus_names() -> None:
    code = (
        "import sys\nfrom xaibench import registry\n"
        "registry.metrics.names(); 'deletion' in registry.metrics; registry.metrics.get('ssim')\n"
        "assert 'quantus' not in sys.modules, 'imported too early'\n"
        "registry.metrics.get('quantus.Sparseness')\nassert 'quantus' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)


# -- through the runner ----------------------------------------------------------------

SUITE = """
metrics = [{ name = "quantus.Sparseness" },
           { name = "quantus.PixelFlipping", features_in_step = 64 },
           { name = "deletion", steps = 8 }]

[suite]
name = "quantus-digits"
device = "cpu"
seed = 0

[dataset]
name = "digits"
limit = 2

[[models]]
name = "digits_cnn"

[[explainers]]
name = "saliency"

[[explainers]]
name = "integrated_gradients"
n_steps = 4
"""


def test_suite_runs_quantus_metrics_into_the_faithfulness_table(tmp_path: Path) -> None:
    from xaibench.leaderboard import build_leaderboard
    from xaibench.runner import build_plan, run_plan
    from xaibench.runner.results import read_results
    from xaibench.runner.suite import load_suite

    path = tmp_path / "suite.toml"
    path.write_text(SUITE)
    out = tmp_path / "out"
    run_plan(build_plan(load_suite(str(path)), out))
    frame = read_results(out, table="faithfulness")
    assert set(frame["metric"]) == {"quantus.Sparseness", "quantus.PixelFlipping", "deletion"}
    assert len(frame) == 2 * 2 * 3
    for metric, higher in (("quantus.Sparseness", True), ("quantus.PixelFlipping", False)):
        rows = frame[frame["metric"] == metric]
        assert rows["higher_is_better"].eq(higher).all() and rows["score"].notna().all()
    flipping = frame[frame["metric"] == "quantus.PixelFlipping"]
    assert flipping["curve"].map(len).eq(1024 // 64).all() and '"features_in_step": 64' in flipping["metric_params"].iloc[0]
    sparse = frame[frame["metric"] == "quantus.Sparseness"]["score"]
    assert sparse.between(0, 1).all()
    board = build_leaderboard([out], resamples=20)
    table = next(t for t in board.tables["quantus-digits"] if t.id == "faithfulness-clean")
    titles = [c.title for c in table.columns]
    assert "Sparseness (Quantus) ↑" in titles and "PixelFlipping (Quantus) ↓" in titles, titles
    assert len(table.rows) == 2


def test_suite_errors_name_the_file_and_key(tmp_path: Path) -> None:
    from xaibench.runner.suite import load_suite

    for name, fragment in (("quantus.Sparsenes", "Did you mean 'quantus.Sparseness'"),
                           ("quantus.MaxSensitivity", "explain_func")):
        path = tmp_path / "bad.toml"
        path.write_text(SUITE.replace('"quantus.Sparseness"', f'"{name}"'))
        with pytest.raises(ConfigError) as info:
            load_suite(str(path))
        assert str(path) in str(info.value) and "[metrics[0].name]" in str(info.value) and fragment in str(info.value)
