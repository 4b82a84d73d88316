"""INFD's perturbation distributions (``Infidelity(perturbation=...)``), against oracles.

* ``captum.metrics.infidelity`` given the same ``(I, x − I)`` draws, built here
  independently from the documented recipe (per image ``Generator().manual_seed(seed)``,
  one sample after the other): noisy baseline ``x̃ = clip(σ_b·randn, 0, 1)``; square removal
  one ``randint`` over Yeh's enumeration of placements (sizes, then rows, then columns).
* Yeh et al.'s own code (chihkuanyeh/saliency_evaluation, ``infid_sen_utils.py``): the
  noisy baseline as ``set_zero_infid`` writes it (``I = clip(x + 0.2·z, x − 1, x)``), and the
  square-removal INFD as ``get_exp_infid`` computes it — all placements of sizes 1…10 with
  equal weight — which the sampled estimate must match within its Monte-Carlo error.
* Defining properties: noisy-baseline images lie in [0, 1] and do not depend on ``x``; a
  square-removal draw changes exactly one square of an allowed size, all channels, to the
  value; batch = single images.

Quantus's ``Infidelity`` is not Yeh's estimator (cumulative raster-order patches, no β;
specs/oracles.md §1.3 b) and is not used as an oracle.
"""

from __future__ import annotations

import math
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch

from xaibench.errors import ConfigError
from xaibench.metrics import YEH_SQUARE_SIZES, Infidelity
from xaibench.registry import metrics

from .faithfulness_helpers import CountingForward, TinyNet, gradients, inputs

SUITES = Path(__file__).resolve().parents[2] / "xaibench" / "suites"


# -- independent draws -----------------------------------------------------------------------


def yeh_placements(height: int, width: int, sizes) -> list[tuple[int, int, int]]:  # type: ignore[no-untyped-def]
    """``(size, top, left)`` in the order of Yeh's ``get_imageset`` loops."""
    return [
        (r, i, j)
        for r in sizes
        if r <= height and r <= width
        for i in range(height - r + 1)
        for j in range(width - r + 1)
    ]


def bank(kind: str, x: torch.Tensor, seeds: list[int], n: int, *, binary: bool = False, value: float = 0.0,
         sizes=YEH_SQUARE_SIZES, sigma_b: float = 0.2) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[no-untyped-def]
    """``(I, x̃)`` as ``[B, n, C, H, W]`` tensors in ``x``'s dtype, drawn as documented."""
    directions, perturbed = [], []
    _, c, h, w = x.shape
    placements = yeh_placements(h, w, sizes)
    for image, seed in zip(x, seeds, strict=True):
        g = torch.Generator().manual_seed(seed)
        dirs, outs = [], []
        for _ in range(n):
            if kind == "noisy_baseline":
                out = torch.clamp(torch.randn(c, h, w, generator=g) * sigma_b, 0.0, 1.0).to(x.dtype)
                direction = image - out
            else:
                r, i, j = placements[int(torch.randint(len(placements), (1,), generator=g))]
                mask = torch.zeros(c, h, w, dtype=torch.bool)
                mask[:, i : i + r, j : j + r] = True
                out = torch.where(mask, torch.full_like(image, value), image)
                direction = mask.to(x.dtype) if binary else image - out
            dirs.append(direction)
            outs.append(out)
        directions.append(torch.stack(dirs))
        perturbed.append(torch.stack(outs))
    return torch.stack(directions), torch.stack(perturbed)


def bank_perturb_func(directions: torch.Tensor, perturbed: torch.Tensor):  # type: ignore[no-untyped-def]
    """captum perturb_func handing out bank slices in call order (rows image-major)."""
    used = {"n": 0}
    batch = directions.shape[0]

    def perturb(inputs: torch.Tensor):  # type: ignore[no-untyped-def]
        k = inputs.shape[0] // batch
        sl = slice(used["n"], used["n"] + k)
        used["n"] += k
        shape = (batch * k, *directions.shape[2:])
        return directions[:, sl].reshape(shape).to(inputs.dtype), perturbed[:, sl].reshape(shape).to(inputs.dtype)

    return perturb


CASES = [
    ("noisy_baseline", False, {}),
    ("noisy_baseline", True, {}),  # multiplies_by_inputs does not change the noisy baseline's I
    ("square_removal", False, {}),
    ("square_removal", True, {}),  # Yeh's binary I (the square's indicator)
    ("square_removal", False, {"square_sizes": [2, 5], "square_value": 0.5}),
]


# -- captum oracle ---------------------------------------------------------------------------


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize(("kind", "binary", "params"), CASES)
def test_equals_captum_with_the_same_draws(kind, binary, params, dtype, normalize) -> None:  # type: ignore[no-untyped-def]
    """Tolerances: float64 rtol 1e-9 (the same algebra; measured ≤ 3e-13). float32: captum
    evaluates the normalised score as ``β²Σu² − 2βΣuΔ + ΣΔ²`` in float32, three terms of size
    ``mean(Δf²)`` that cancel when ``a`` fits Δf well (here down to 1e-4 of them), so its
    absolute error is a few float32 ulps of ``mean(Δf²)``: ``atol = 32·2⁻²⁴·mean(Δf²)`` per
    image (measured ≤ 7 ulps, 4e-7·mean(Δf²)), plus rtol 1e-6 for the unnormalised score and
    the batch-dependent float32 logits (measured ≤ 2e-7 relative)."""
    from captum.metrics import infidelity

    model = TinyNet(seed=4).to(dtype)
    x, noise_attr = inputs(n=3, size=12, seed=5)
    x = x.to(dtype)
    with torch.no_grad():
        y = model(x).argmax(1)
    seeds, n = [7, 8, 9], 10
    expected_bank = bank(
        kind, x, seeds, n, binary=binary,
        value=params.get("square_value", 0.0), sizes=params.get("square_sizes", YEH_SQUARE_SIZES),
    )
    metric = Infidelity(n_perturb_samples=n, normalize=normalize, perturbation=kind, **params)
    for i, seed in enumerate(seeds):  # the public draws are the documented ones
        out, direction = metric.draws(x[i], seed, multiplies_by_inputs=binary)
        torch.testing.assert_close(out, expected_bank[1][i], rtol=0, atol=0)
        torch.testing.assert_close(direction.to(dtype), expected_bank[0][i], rtol=0, atol=1e-15)
    exact = TinyNet(seed=4).double()
    with torch.no_grad():  # mean(Δf²) per image, for the float32 tolerance
        fx = exact(x.double()).gather(1, y.view(-1, 1))
        fp = torch.stack([exact(expected_bank[1][i].double())[:, y[i]] for i in range(len(x))])
        mean_square_delta = ((fx - fp) ** 2).mean(dim=1).numpy()
    for attributions in (gradients(model, x, y), noise_attr.to(dtype)):
        for chunked in (False, True):
            expected = infidelity(
                model, bank_perturb_func(*expected_bank), x, attributions, target=y, n_perturb_samples=n,
                max_examples_per_batch=2 * len(x) if chunked else None, normalize=normalize,
            ).double()
            result = metric.evaluate(
                CountingForward(model), x, attributions, y, seeds=seeds, chunk_size=4,
                multiplies_by_inputs=binary,
            )
            if dtype == torch.float64:
                np.testing.assert_allclose(result.scores.numpy(), expected.numpy(), rtol=1e-9, atol=0)
            else:
                bound = 1e-6 * np.abs(expected.numpy()) + 32 * 2.0**-24 * mean_square_delta
                assert (np.abs(result.scores.numpy() - expected.numpy()) <= bound).all()
            assert result.forward_images == 3 * (1 + n)


# -- Yeh's code as the oracle ----------------------------------------------------------------


def test_noisy_baseline_is_yehs_set_zero_infid() -> None:
    """Yeh: ``randd = 0.2·z + x; randd = min(x, randd); randd = max(x − 1, randd); x̃ = x − randd``
    for every pixel. With ``z = −randn`` (the same law) it is the metric's ``x̃``. Tolerance
    1e-7: the metric scales ``randn`` by 0.2 in float32 (half an ulp ≤ 6e-8 below 1), the port
    in float64."""
    x, _ = inputs(n=2, size=10, seed=11)
    x = x.double()
    metric = Infidelity(n_perturb_samples=16, perturbation="noisy_baseline")
    for i, seed in enumerate((3, 4)):
        out, direction = metric.draws(x[i], seed)
        g = torch.Generator().manual_seed(seed)
        xi = x[i].numpy()
        for k in range(16):
            z = -torch.randn(x.shape[1:], generator=g).double().numpy()
            randd = np.maximum(xi - 1, np.minimum(xi, 0.2 * z + xi))
            np.testing.assert_allclose(out[k].numpy(), xi - randd, rtol=0, atol=1e-7)
            np.testing.assert_allclose(direction[k].numpy(), randd, rtol=0, atol=1e-7)


def test_square_removal_matches_yehs_exhaustive_infidelity() -> None:
    """Yeh's ``get_exp_infid(pert='Square')`` averages over *every* placement of squares of
    side 1…10 with weight 1 (``ks = np.ones(num)``), ``I`` binary and the explanation times
    the image. The metric samples those placements uniformly: its unnormalised score is an
    unbiased estimate, within 4.5 standard errors of the exhaustive value (σ/√n of the
    per-placement squared errors), and its normalised one close to Yeh's β-scaled value."""
    model = TinyNet(seed=12).double()
    x, _ = inputs(n=1, size=12, seed=13)
    x = x.double()
    y = model(x).argmax(1)
    grad = gradients(model, x, y)
    explanation = (grad * x)[0].numpy().ravel()  # Yeh's binary_I: expl * image
    placements = yeh_placements(12, 12, range(1, 11))
    with torch.no_grad():
        fx = float(model(x)[0, y])
        images = x.repeat(len(placements), 1, 1, 1)
        indicator = torch.zeros_like(images, dtype=torch.bool)
        for k, (r, i, j) in enumerate(placements):
            indicator[k, :, i : i + r, j : j + r] = True
        images[indicator] = 0.0
        pdt_diff = fx - model(images)[:, y[0]].numpy()
    exp_sum = indicator.flatten(1).double().numpy() @ explanation
    errors = (pdt_diff - exp_sum) ** 2
    beta = np.mean(pdt_diff * exp_sum) / np.mean(exp_sum * exp_sum)
    yeh_normalised = np.mean((pdt_diff - beta * exp_sum) ** 2)

    n = 3000
    for multiplies, attributions in ((False, grad), (True, grad * x)):  # raw, and input-multiplied
        raw = Infidelity(n_perturb_samples=n, perturbation="square_removal", normalize=False).evaluate(
            CountingForward(model), x, attributions, y, seeds=[21], chunk_size=512, multiplies_by_inputs=multiplies
        ).scores.item()
        assert abs(raw - errors.mean()) <= 4.5 * errors.std() / math.sqrt(n)
        normalised = Infidelity(n_perturb_samples=n, perturbation="square_removal").evaluate(
            CountingForward(model), x, attributions, y, seeds=[21], chunk_size=512, multiplies_by_inputs=multiplies
        ).scores.item()
        assert normalised == pytest.approx(yeh_normalised, rel=0.1)
    # A wrong size law (uniform over sizes instead of over placements) is detectably off.
    weights = np.array([1.0 / (12 - r + 1) ** 2 for r, _, _ in placements])
    assert abs(np.average(errors, weights=weights) - errors.mean()) > 6 * errors.std() / math.sqrt(n)


# -- defining properties ---------------------------------------------------------------------


def test_noisy_baseline_images_are_in_range_and_independent_of_the_image() -> None:
    x, _ = inputs(n=2, size=16, seed=14)
    metric = Infidelity(n_perturb_samples=32, perturbation="noisy_baseline")
    out0, dir0 = metric.draws(x[0], seed=5)
    out1, dir1 = metric.draws(x[1], seed=5)
    assert float(out0.min()) >= 0.0 and float(out0.max()) <= 1.0
    assert torch.equal(out0, out1)  # x̃ is drawn without looking at x
    torch.testing.assert_close(dir0, x[0].double() - out0.double(), rtol=0, atol=0)
    # Law of clip(N(0, 0.2²), 0, 1): half the entries are 0; the rest half-normal, mean
    # 0.2·√(2/π), sd 0.2·√(1 − 2/π). Tolerances: 5 standard errors of each estimate.
    values = out0.double().flatten()
    zero = float((values == 0).double().mean())
    assert abs(zero - 0.5) <= 5 * 0.5 / math.sqrt(values.numel())
    positive = values[values > 0]
    sd = 0.2 * math.sqrt(1 - 2 / math.pi)
    assert abs(float(positive.mean()) - 0.2 * math.sqrt(2 / math.pi)) <= 5 * sd / math.sqrt(positive.numel())
    assert float(positive.std()) == pytest.approx(sd, rel=0.05)
    wider = Infidelity(n_perturb_samples=32, perturbation="noisy_baseline", baseline_sigma=0.4).draws(x[0], seed=5)[0]
    assert float(wider[wider > 0].mean()) == pytest.approx(2 * float(positive.mean()), rel=0.05)


@pytest.mark.parametrize("value", [0.0, 0.5])
def test_square_removal_changes_one_square_of_an_allowed_size(value: float) -> None:
    generator = torch.Generator().manual_seed(15)
    x = 0.1 + 0.8 * torch.rand(3, 3, 14, 14, generator=generator)  # no pixel equals the value
    sizes = [1, 3, 6, 20]  # 20 does not fit a 14×14 image: left out
    metric = Infidelity(n_perturb_samples=200, perturbation="square_removal", square_sizes=sizes, square_value=value)
    seen = set()
    for image, seed in zip(x, (1, 2, 3), strict=True):
        out, direction = metric.draws(image, seed)
        _, binary = metric.draws(image, seed, multiplies_by_inputs=True)
        for k in range(out.shape[0]):
            changed = out[k] != image
            assert torch.equal(changed, changed[:1].expand_as(changed))  # all channels or none
            rows, cols = torch.nonzero(changed[0], as_tuple=True)
            side = int(rows.max() - rows.min() + 1)
            assert side == int(cols.max() - cols.min() + 1) and side in (1, 3, 6)
            assert int(changed[0].sum()) == side * side  # a filled square, nothing else
            assert bool((out[k][changed] == value).all())
            assert torch.equal(out[k][~changed], image[~changed])
            torch.testing.assert_close(direction[k], (image.double() - out[k].double()), rtol=0, atol=0)
            assert torch.equal(binary[k], changed.double())
            seen.add(side)
    assert seen == {1, 3, 6}
    # Sizes are drawn in proportion to their placements (Yeh weighs every placement alike):
    # 196 : 144 : 81 of 421 here. Chi-square over 600 draws, 2 dof, p = 1e-4 bound 18.4.
    counts = {1: 0, 3: 0, 6: 0}
    for image, seed in zip(x, (1, 2, 3), strict=True):
        out, _ = metric.draws(image, seed)
        for k in range(out.shape[0]):
            counts[int(torch.sqrt((out[k][0] != image[0]).sum().double()))] += 1
    total = sum(counts.values())
    placements = {1: 196, 3: 144, 6: 81}
    chi2 = sum((counts[s] - total * p / 421) ** 2 / (total * p / 421) for s, p in placements.items())
    assert chi2 < 18.4
    uniform = sum((counts[s] - total / 3) ** 2 / (total / 3) for s in placements)
    assert uniform > 18.4  # the test can tell the two laws apart


@pytest.mark.parametrize(("kind", "binary", "params"), CASES)
def test_batch_equals_single_images(kind, binary, params) -> None:  # type: ignore[no-untyped-def]
    """Each image's draws come from its own seed, so its score does not depend on the batch or
    the chunking. float64 model: the same sums in another order, rtol 1e-10 (measured ≤ 1e-13;
    float32 convolutions pick batch-dependent algorithms, and a small square's Δf cancels
    ~6 digits of a logit, so a float32 comparison would test the convolution, not the metric)."""
    model = TinyNet(seed=16).double()
    x, a = inputs(n=4, size=12, seed=17)
    x, a = x.double(), a.double()
    target = torch.tensor([0, 1, 2, 3])
    seeds = [31, 32, 33, 34]
    metric = Infidelity(n_perturb_samples=12, perturbation=kind, **params)
    batch = metric.evaluate(CountingForward(model), x, a, target, seeds=seeds, chunk_size=5, multiplies_by_inputs=binary)
    for i in range(4):
        for chunk in (1, 7):
            single = metric.evaluate(
                CountingForward(model), x[i : i + 1], a[i : i + 1], target[i : i + 1], seeds=seeds[i : i + 1],
                chunk_size=chunk, multiplies_by_inputs=binary,
            )
            assert single.scores.item() == pytest.approx(batch.scores[i].item(), rel=1e-10, abs=0)
    again = metric.evaluate(CountingForward(model), x, a, target, seeds=[31, 99, 33, 34], multiplies_by_inputs=binary)
    assert again.scores[0] == pytest.approx(batch.scores[0].item(), rel=1e-10) and again.scores[1] != batch.scores[1]


def test_binary_i_only_for_square_removal() -> None:
    """``multiplies_by_inputs`` selects Yeh's indicator for square removal only."""
    model = TinyNet(seed=18)
    x, a = inputs(n=2, size=12, seed=19)
    target = torch.tensor([1, 2])
    for kind, differs in (("gaussian", False), ("noisy_baseline", False), ("square_removal", True)):
        metric = Infidelity(n_perturb_samples=8, perturbation=kind)
        raw = metric.evaluate(CountingForward(model), x, a, target, seeds=[1, 2]).scores
        times = metric.evaluate(CountingForward(model), x, a, target, seeds=[1, 2], multiplies_by_inputs=True).scores
        assert (not torch.equal(raw, times)) is differs, kind


# -- parameters, resolved parameters, suites -------------------------------------------------


def describe(**params: object) -> dict:
    """What the results record for an infidelity entry with ``params``."""
    return {"metric": "infidelity", **metrics.resolved_params("infidelity", params)}


def test_describe_names_the_perturbation_and_only_its_parameters() -> None:
    assert describe() == {
        "metric": "infidelity", "n_perturb_samples": 32, "normalize": True, "perturbation": "gaussian", "sigma": 0.01}
    assert describe(perturbation="noisy_baseline") == {
        "metric": "infidelity", "n_perturb_samples": 32, "normalize": True, "perturbation": "noisy_baseline",
        "baseline_sigma": 0.2}
    described = describe(perturbation="square_removal", square_sizes=[4, 8])
    assert described == {
        "metric": "infidelity", "n_perturb_samples": 32, "normalize": True, "perturbation": "square_removal",
        "square_sizes": [4, 8], "square_value": 0.0}
    assert describe(perturbation="square_removal")["square_sizes"] == list(range(1, 11))
    metric = metrics.get("infidelity")(perturbation="noisy_baseline")
    assert metric.perturbation == describe(perturbation="noisy_baseline")["perturbation"] == "noisy_baseline"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"perturbation": "uniform"}, "perturbation must be one of"),
        ({"perturbation": "noisy_baseline", "sigma": 0.05}, "sigma has no effect"),
        ({"perturbation": "gaussian", "baseline_sigma": 0.3}, "baseline_sigma has no effect"),
        ({"perturbation": "gaussian", "square_sizes": [3]}, "square_sizes has no effect"),
        ({"perturbation": "square_removal", "square_sizes": []}, "square_sizes"),
        ({"perturbation": "square_removal", "square_sizes": [2, 2]}, "square_sizes"),
        ({"perturbation": "square_removal", "square_sizes": [0]}, "square_sizes"),
        ({"perturbation": "square_removal", "square_value": 1.5}, "square_value"),
        ({"perturbation": "noisy_baseline", "baseline_sigma": 0.0}, "baseline_sigma"),
    ],
)
def test_invalid_parameters_are_rejected(params: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Infidelity(**params)


def test_no_square_fits_is_an_error() -> None:
    x, a = inputs(n=1, size=4, seed=20)
    metric = Infidelity(n_perturb_samples=2, perturbation="square_removal", square_sizes=[5, 6])
    with pytest.raises(ValueError, match="no square size"):
        metric.evaluate(CountingForward(TinyNet()), x, a, torch.tensor([0]), seeds=[1])


@pytest.mark.parametrize("suite", ["imagenet-faithfulness.toml", "samples-faithfulness.toml"])
def test_attexplore_suites_use_yehs_noisy_baseline(suite: str) -> None:
    """The AttEXplore paper names INFD (Yeh et al.) but not its perturbation: its suites use
    Yeh's noisy baseline, the one of his two that does not depend on the image size."""
    config = tomllib.loads((SUITES / suite).read_text())
    infd = [m for m in config["metrics"] if metrics.resolve(m["name"]) == "infidelity"]
    assert infd and all(m.get("perturbation") == "noisy_baseline" for m in infd)
    params = {k: v for k, v in infd[0].items() if k not in ("name", "label", "explainers")}
    assert metrics.get("infidelity")(**params).baseline_sigma == describe(**params)["baseline_sigma"] == 0.2


RUN_SUITE = """
[suite]
name = "infd-perturbations"
device = "cpu"
batch_size = 8
images_per_unit = 2
seed = 3

[dataset]
name = "digits"
n_classes = 2

[[models]]
name = "digits_cnn"

[[explainers]]
name = "saliency"
abs = false

[[metrics]]
name = "infidelity"
label = "infd_nb"
perturbation = "noisy_baseline"
n_perturb_samples = 4

[[metrics]]
name = "infidelity"
label = "infd_sq"
perturbation = "square_removal"
n_perturb_samples = 4
square_sizes = [2, 4]
"""


def test_rows_name_the_perturbation_they_used(tmp_path: Path) -> None:
    """The runner writes the resolved parameters into each row's ``metric_params``."""
    import json

    from xaibench.runner import build_plan, run_plan
    from xaibench.runner.results import read_results
    from xaibench.runner.suite import load_suite

    path = tmp_path / "suite.toml"
    path.write_text(RUN_SUITE)
    run_plan(build_plan(load_suite(str(path)), tmp_path / "out"))
    frame = read_results(tmp_path / "out", table="faithfulness")
    params = {json.dumps(json.loads(p), sort_keys=True) for p in frame["metric_params"]}
    assert {json.loads(p)["perturbation"] for p in params} == {"noisy_baseline", "square_removal"}
    for p in map(json.loads, params):
        if p["perturbation"] == "noisy_baseline":
            assert p["baseline_sigma"] == 0.2 and "sigma" not in p and "square_sizes" not in p
        else:
            assert p["square_sizes"] == [2, 4] and p["square_value"] == 0.0 and "baseline_sigma" not in p
    assert frame["score"].notna().all() and (frame["score"] >= 0).all()
