"""Faithfulness metrics: ranking helpers by hand, batching, chunking, seeding, forward
counts, parameter validation and behaviour on a trained model (the digits CNN)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from xaibench.errors import ConfigError
from xaibench.metrics import (
    Deletion,
    Infidelity,
    Insertion,
    MifLifArea,
    blur,
    pixel_scores,
    rank_pixels,
    rise_kernel,
)
from xaibench.registry import metrics
from xaibench.types import FaithfulnessMetric, FaithfulnessResult

from .faithfulness_helpers import CountingForward, TinyNet, float32_spread, gradients, inputs

FAITHFULNESS = ("deletion", "insertion", "infidelity", "mif_lif_area")
SMALL = {  # parameters that keep the per-image forward count small in these tests
    "deletion": {"steps": 16},
    "insertion": {"steps": 16},
    "infidelity": {"n_perturb_samples": 8},
    "mif_lif_area": {"fractions": 8},
}


def _metric(name: str, **params: object) -> FaithfulnessMetric:
    return metrics.get(name)(**{**SMALL[name], **params})


# -- helpers by hand ----------------------------------------------------------------------


def test_rank_pixels_breaks_ties_by_lower_index() -> None:
    scores = torch.tensor([[1.0, 3.0, 3.0, 0.0, 3.0], [0.0, 0.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    assert rank_pixels(scores).tolist() == [[3, 0, 1, 4, 2], [0, 1, 2, 3, 4]]


def test_pixel_scores_reductions_by_hand() -> None:
    a = torch.tensor([[1.0, -2.0], [-3.0, 0.5]]).view(1, 2, 1, 2)  # 2 channels, 2 pixels
    x = torch.tensor([[0.5, 1.0], [1.0, 0.0]]).view(1, 2, 1, 2)
    assert pixel_scores(a, x, "abs", False).tolist() == [[4.0, 2.5]]
    assert pixel_scores(a, x, "signed", False).tolist() == [[1 * 0.5 - 3 * 1.0, -2 * 1.0 + 0.5 * 0.0]]
    assert pixel_scores(a, x, "signed", True).tolist() == [[-2.0, -1.5]]


def test_rise_kernel_and_blur() -> None:
    from scipy.ndimage import gaussian_filter

    kernel = rise_kernel()
    impulse = np.zeros((11, 11))
    impulse[5, 5] = 1
    np.testing.assert_array_equal(kernel, gaussian_filter(impulse, 5))
    assert kernel.sum() == pytest.approx(1.0) and np.allclose(kernel, kernel.T)
    flat = torch.full((1, 3, 32, 32), 0.4)
    blurred = blur(flat)
    assert torch.allclose(blurred[..., 5:-5, 5:-5], flat[..., 5:-5, 5:-5], atol=1e-6)  # zero padding
    assert blurred[0, 0, 0, 0] < 0.4  # darkens only the border


# -- contract: registration, counts, chunking, batching, seeding ---------------------------


def test_registered_with_directions_and_params() -> None:
    expected = {"deletion": False, "insertion": True, "infidelity": False, "mif_lif_area": True}
    for name, higher in expected.items():
        cls = metrics.get(name)
        assert issubclass(cls, FaithfulnessMetric) and cls.category == "faithfulness"
        assert cls.higher_is_better is higher
    assert {p.name: p.default for p in metrics.params("deletion")} == {
        "steps": 224, "reduction": "abs", "baseline": 0.0, "protocol": "default"}
    assert {p.name: p.default for p in metrics.params("insertion")} == {
        "steps": 224, "reduction": "abs", "canvas": "blur", "protocol": "default"}
    assert {p.name: p.default for p in metrics.params("infidelity")} == {
        "n_perturb_samples": 32, "sigma": 0.01, "normalize": True, "perturbation": "gaussian",
        "baseline_sigma": 0.2, "square_sizes": tuple(range(1, 11)), "square_value": 0.0}
    assert {p.name: p.default for p in metrics.params("mif_lif_area")} == {"fractions": 20, "reduction": "abs", "value": 0.0}
    assert metrics.resolve("infd") == "infidelity"


@pytest.mark.parametrize(
    "name,params,per_image",
    [
        ("deletion", {}, 129),  # 16·16 px, 2 px per step: 128 steps + the start
        ("insertion", {"steps": 10}, 11),  # 26 px per step, the last one short
        ("infidelity", {}, 33),  # the clean image + 32 perturbations
        ("mif_lif_area", {}, 40),  # 2·S: clean, 19 MIF, 19 LIF, all masked
    ],
)
def test_forward_counts_at_defaults(name: str, params: dict, per_image: int) -> None:
    model = TinyNet()
    x, a = inputs(n=2, size=16)
    forward = CountingForward(model)
    result = metrics.get(name)(**params).evaluate(forward, x, a, torch.tensor([0, 1]), seeds=[1, 2], chunk_size=8)
    assert isinstance(result, FaithfulnessResult)
    assert result.forward_images == forward.images == 2 * per_image
    assert max(forward.batches) <= 8  # never more than chunk_size perturbed images at once
    assert result.scores.shape == (2,) and result.scores.dtype == torch.float64
    for curve in result.curves.values():
        assert curve.shape == (2, result.curve_x.shape[0])
        assert result.curve_x[0] == 0.0 and result.curve_x[-1] == 1.0


@pytest.mark.kernels
@pytest.mark.parametrize("name", FAITHFULNESS)
def test_chunk_size_does_not_change_values(name: str) -> None:
    """The same float32 images forwarded in other batch compositions (so other kernels):
    equal to their rounding, ``float32_spread`` from the float64 evaluations."""
    x, a = inputs(n=3, size=16, seed=2)
    with torch.no_grad():
        target = TinyNet(seed=1)(x).argmax(1)

    def run(chunk: int, dtype: torch.dtype) -> FaithfulnessResult:
        forward = CountingForward(TinyNet(seed=1).to(dtype))
        return _metric(name).evaluate(forward, x.to(dtype), a.to(dtype), target, seeds=[5, 6, 7], chunk_size=chunk)

    chunks = (1, 3, 8, 1000)
    results = [run(chunk, torch.float32) for chunk in chunks]
    exact = [run(chunk, torch.float64) for chunk in chunks]
    assert torch.isfinite(results[0].scores).all()
    spread = float32_spread([(r.scores, e.scores) for r, e in zip(results, exact, strict=True)])
    assert spread < 1e-2 * float(exact[0].scores.abs().max())  # far below the values: the check has teeth
    for other in results[1:]:
        np.testing.assert_allclose(other.scores.numpy(), results[0].scores.numpy(), rtol=0, atol=spread)
        for key, curve in results[0].curves.items():
            curve_spread = float32_spread([(r.curves[key], e.curves[key]) for r, e in zip(results, exact, strict=True)])
            np.testing.assert_allclose(other.curves[key].numpy(), curve.numpy(), rtol=0, atol=curve_spread)


@pytest.mark.kernels
@pytest.mark.parametrize("name", FAITHFULNESS)
@pytest.mark.parametrize("multiplies", [False, True])
def test_batch_equals_single_images(name: str, multiplies: bool) -> None:
    """Each image's score is the one it gets alone (seeds travel with the image), to the
    rounding of float32 forwards in other batch compositions (``float32_spread``)."""
    x, a = inputs(n=4, size=16, seed=4)
    with torch.no_grad():
        target = TinyNet(seed=3)(x).argmax(1)  # a positive clean logit here, so MIF/LIF areas are finite
    seeds = [101, 202, 303, 404]
    metric = _metric(name, **({"reduction": "signed"} if name != "infidelity" else {}))

    def run(rows: slice, dtype: torch.dtype) -> torch.Tensor:
        forward = CountingForward(TinyNet(seed=3).to(dtype))
        return metric.evaluate(forward, x[rows].to(dtype), a[rows].to(dtype), target[rows], seeds=seeds[rows],
                               chunk_size=5, multiplies_by_inputs=multiplies).scores

    batch, batch64 = run(slice(0, 4), torch.float32), run(slice(0, 4), torch.float64)
    singles = torch.cat([run(slice(i, i + 1), torch.float32) for i in range(4)])
    singles64 = torch.cat([run(slice(i, i + 1), torch.float64) for i in range(4)])
    assert torch.isfinite(batch).all()
    spread = float32_spread([(batch, batch64), (singles, singles64)])
    assert spread < 1e-2 * float(batch64.abs().max())  # far below the values: the check has teeth
    np.testing.assert_allclose(singles.numpy(), batch.numpy(), rtol=0, atol=spread)


def test_infidelity_is_deterministic_under_seeds() -> None:
    model = TinyNet(seed=5)
    x, a = inputs(n=2, size=16, seed=6)
    target = torch.tensor([0, 1])
    metric = Infidelity(n_perturb_samples=8, sigma=0.05)

    def run(seeds: list[int]) -> torch.Tensor:
        return metric.evaluate(CountingForward(model), x, a, target, seeds=seeds, chunk_size=3).scores

    first = run([1, 2])
    assert torch.equal(first, run([1, 2]))  # bit-identical
    changed = run([1, 3])
    assert changed[0] == first[0] and changed[1] != first[1]  # only the reseeded image moves
    with pytest.raises(ValueError, match="one seed per image"):
        run([1])


def test_infidelity_normalize_is_scale_invariant() -> None:
    """Captum issue #613: scaling the attributions changes unnormalised INFD, not normalised."""
    model = TinyNet(seed=6)
    x, _ = inputs(n=2, size=16, seed=7)
    target = torch.tensor([2, 0])
    grad = gradients(model, x, target)
    for normalize, same in ((True, True), (False, False)):
        metric = Infidelity(n_perturb_samples=8, sigma=0.02, normalize=normalize)
        one = metric.evaluate(CountingForward(model), x, grad, target, seeds=[1, 2]).scores
        ten = metric.evaluate(CountingForward(model), x, 10 * grad, target, seeds=[1, 2]).scores
        assert torch.allclose(one, ten, rtol=1e-5) is same


def test_non_finite_attributions_give_nan_for_that_image_only() -> None:
    model = TinyNet(seed=8)
    x, a = inputs(n=2, size=16, seed=9)
    a[1, 0, 3, 3] = math.nan
    for name in FAITHFULNESS:
        scores = _metric(name).evaluate(CountingForward(model), x, a, torch.tensor([0, 1]), seeds=[1, 2]).scores
        assert math.isfinite(scores[0].item()) and math.isnan(scores[1].item()), name


def test_mif_lif_non_positive_clean_logit_gives_nan() -> None:
    """Dividing by a logit ≤ 0 flips the curves, so the area's sign would mean nothing."""
    x, a = inputs(n=2, size=8, seed=10)

    def forward(images: torch.Tensor) -> torch.Tensor:  # logit of class 0: mean brightness − 0.3
        mean = images.flatten(1).mean(1, keepdim=True)
        return torch.cat([mean - 0.3, -mean], dim=1)

    x[1] *= 0.2  # dark image: negative clean logit
    result = MifLifArea(fractions=4).evaluate(forward, x, a, torch.tensor([0, 0]), seeds=[0, 0])
    assert math.isfinite(result.scores[0].item()) and math.isnan(result.scores[1].item())
    assert torch.allclose(result.curves["mif"][:, 0], torch.ones(2, dtype=torch.float64))


@pytest.mark.parametrize(
    "name,params,message",
    [
        ("deletion", {"steps": 0}, "steps"),
        ("deletion", {"steps": True}, "steps"),
        ("deletion", {"reduction": "max"}, "reduction"),
        ("deletion", {"protocol": "attexplore"}, "protocol"),
        ("deletion", {"baseline": 1.5}, "baseline"),
        ("deletion", {"baseline": 0.5, "protocol": "attexplore_reference"}, "baseline"),
        ("insertion", {"reduction": "signed", "protocol": "attexplore_reference"}, "reduction"),
        ("insertion", {"canvas": "mean"}, "canvas"),
        ("infidelity", {"n_perturb_samples": 0}, "n_perturb_samples"),
        ("infidelity", {"sigma": 0.0}, "sigma"),
        ("infidelity", {"normalize": "yes"}, "normalize"),
        ("mif_lif_area", {"fractions": -1}, "fractions"),
        ("mif_lif_area", {"reduction": "Abs"}, "reduction"),
    ],
)
def test_invalid_parameters_raise_config_error(name: str, params: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        metrics.get(name)(**params)


def test_reference_insertion_reports_its_zero_canvas() -> None:
    assert Insertion(protocol="attexplore_reference").canvas == "zeros"
    assert metrics.resolved_params("insertion", {"protocol": "attexplore_reference"})["canvas"] == "zeros"
    assert Insertion().canvas == metrics.resolved_params("insertion", {})["canvas"] == "blur"


def test_shape_mismatch_is_rejected() -> None:
    x, a = inputs(n=2, size=8)
    with pytest.raises(ValueError, match="shape"):
        Deletion().evaluate(TinyNet(), x, a[:, :1], torch.tensor([0, 1]), seeds=[0, 0])


# -- behaviour on a trained model ------------------------------------------------------------


@pytest.fixture(scope="module")
def digits():  # type: ignore[no-untyped-def]
    from xaibench.models import digits_arrays, load_model

    model = load_model("digits_cnn")  # trained once per test session (~7 s), then cached
    # Large chunks in these tests: 1×32×32 images, where per-call overhead dominates.
    x, _ = digits_arrays("test", 32)
    x = x[:48]
    with torch.no_grad():
        predicted = model(x).argmax(1)
    return model, x, predicted, gradients(model, x, predicted)


@pytest.mark.parametrize("reduction", ["abs", "signed"])
def test_mif_lif_random_ranking_is_near_zero_and_gradients_beat_it(digits, reduction: str) -> None:  # type: ignore[no-untyped-def]
    """FPA: a random ranking has E[area] = 0 exactly (MIF and LIF orders are then identically
    distributed); the mean over 2×48 draws must lie within 4 standard errors of 0. The
    gradient ranking (|g| or g·x) must beat it clearly (measured ≈ 1.0 and 2.6 vs ≈ 0)."""
    model, x, predicted, grad = digits
    metric = MifLifArea(reduction=reduction)
    generator = torch.Generator().manual_seed(0)
    random_areas = torch.cat([
        metric.evaluate(model, x, torch.randn(x.shape, generator=generator), predicted, seeds=[0] * 48, chunk_size=512).scores
        for _ in range(2)
    ])
    standard_error = random_areas.std().item() / math.sqrt(random_areas.numel())
    assert abs(random_areas.mean().item()) < 4 * standard_error
    gradient_areas = metric.evaluate(model, x, grad, predicted, seeds=[0] * 48, chunk_size=512).scores
    assert gradient_areas.mean().item() > random_areas.mean().item() + 0.5


def test_deletion_and_insertion_prefer_gradients_to_random(digits) -> None:  # type: ignore[no-untyped-def]
    """On the trained CNN, the gradient ranking deletes faster (lower AUC) and inserts faster
    (higher AUC) than a random one (measured: deletion 0.25 vs 0.49, insertion 0.96 vs 0.89)."""
    model, x, predicted, grad = digits
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    for metric, sign in ((Deletion(steps=16), -1.0), (Insertion(steps=16), 1.0)):
        gradient = metric.evaluate(model, x, grad, predicted, seeds=[0] * 48, chunk_size=512).scores.mean().item()
        random = metric.evaluate(model, x, noise, predicted, seeds=[0] * 48, chunk_size=512).scores.mean().item()
        assert sign * (gradient - random) > 0.03, metric.name
