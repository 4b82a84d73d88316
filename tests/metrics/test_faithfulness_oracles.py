"""Faithfulness metrics against independent implementations: Quantus and Captum.

Configured as specs/oracles.md §1.2 and §2 say: Quantus ``PixelFlipping`` with
``abs=False, normalise=False``, a numeric baseline (``'black'`` is the per-image minimum,
not 0), ``rank_transform`` attributions so its unstable argsort has no ties, the
``assert_features_in_step`` check patched out (a whole-pixel step is never a divisor of
H·W there), the unperturbed point prepended and the AUC computed outside Quantus (numpy
2.4 has no ``np.trapz``). Captum's ``infidelity`` gets the metric's own draws through a
fixed perturbation bank.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from xaibench.metrics import Deletion, Infidelity, Insertion, MifLifArea, infidelity_perturbations

from .faithfulness_helpers import (
    PATTERN,
    U32,
    U64,
    CountingForward,
    ForwardModule,
    TinyNet,
    gradients,
    inputs,
    patch_quantus,
    rank_transform,
    reduce_np,
    rise_auc,
)

quantus = pytest.importorskip("quantus")
pytestmark = pytest.mark.kernels


def _pixel_flipping(model, x, y, a_rank, features_in_step, *, softmax, perturb_func=None, baseline=0.0):  # type: ignore[no-untyped-def]
    metric = quantus.PixelFlipping(
        features_in_step=features_in_step,
        perturb_baseline=baseline,
        perturb_func=perturb_func,
        abs=False,
        normalise=False,
        disable_warnings=True,
    )
    curves = metric(
        model=model,
        x_batch=x,
        y_batch=y,
        a_batch=a_rank,
        channel_first=True,
        softmax=softmax,
        batch_size=len(x),
        device="cpu",
    )
    return np.asarray(curves, dtype=np.float64)


def _rise_gkern(klen: int = 11, nsig: float = 5.0) -> torch.Tensor:
    """RISE ``evaluation.py`` ``gkern``, copied: a 3×3×k×k kernel, identity over channels."""
    from scipy.ndimage import gaussian_filter

    inp = np.zeros((klen, klen))
    inp[klen // 2, klen // 2] = 1
    k = gaussian_filter(inp, nsig)
    kern = np.zeros((3, 3, klen, klen))
    kern[0, 0] = k
    kern[1, 1] = k
    kern[2, 2] = k
    return torch.from_numpy(kern.astype("float32"))


@pytest.fixture
def setup():  # type: ignore[no-untyped-def]
    model = TinyNet()
    x, a = inputs(n=3, size=16, seed=1)
    with torch.no_grad():
        y = model(x).argmax(1)
    return model, x, a, y


@pytest.mark.parametrize("reduction", ["abs", "signed"])
@pytest.mark.parametrize("steps", [224, 10])
def test_deletion_equals_quantus_pixel_flipping(setup, monkeypatch, reduction: str, steps: int) -> None:  # type: ignore[no-untyped-def]
    """Deletion to 0 = Quantus PixelFlipping(features_in_step=3·pixels_per_step, baseline 0.0).

    Tolerance atol 1e-5 on curves and AUCs (oracles.md §2.6: the same float32 forwards in
    different batch compositions agree to ~1e-7). steps=10 on 16×16 has a short last step
    (26 px per step, 10 steps), which Quantus also takes.
    """
    patch_quantus(monkeypatch)
    model, x, a, y = setup
    pixels = 16 * 16
    per_step = -(-pixels // steps)
    a_rank = rank_transform(reduce_np(a.numpy(), x.numpy(), reduction), (16, 16))
    quantus_curve = _pixel_flipping(ForwardModule(model), x.numpy(), y.numpy(), a_rank, 3 * per_step, softmax=True)
    with torch.no_grad():
        p0 = torch.softmax(model(x), 1).gather(1, y.view(-1, 1)).double().numpy()
    expected = np.concatenate([p0, quantus_curve], axis=1)

    result = Deletion(steps=steps, reduction=reduction).evaluate(
        CountingForward(model), x, a, y, seeds=[0, 1, 2], chunk_size=7
    )
    np.testing.assert_allclose(result.curves["deletion"].numpy(), expected, atol=1e-5, rtol=0)
    if pixels % per_step == 0:  # uniform x: RISE's AUC formula is the trapezoid
        np.testing.assert_allclose(result.scores.numpy(), rise_auc(expected), atol=1e-5, rtol=0)
    x_axis = np.minimum(np.arange(expected.shape[1]) * per_step, pixels) / pixels
    np.testing.assert_allclose(result.scores.numpy(), np.trapezoid(expected, x_axis, axis=1), atol=1e-5, rtol=0)


@pytest.mark.parametrize("canvas", ["blur", "zeros"])
def test_insertion_equals_quantus_with_insert_closure(setup, monkeypatch, canvas: str) -> None:  # type: ignore[no-untyped-def]
    """Insertion = Quantus PixelFlipping started from the canvas with an "insert x" perturb_func.

    The blurred canvas is built here with RISE's own ``gkern`` code (conv2d, zero padding).
    Quantus's Monotonicity cannot serve (a no-op in 0.6, oracles.md §6.5). atol 1e-5 as above.
    """
    patch_quantus(monkeypatch)
    model, x, a, y = setup
    if canvas == "blur":
        start = torch.nn.functional.conv2d(x, _rise_gkern(), padding=5)
    else:
        start = torch.zeros_like(x)
    x_flat = x.numpy().reshape(len(x), -1)

    def insert(arr, indices, **_):  # type: ignore[no-untyped-def]
        out = arr.copy()
        rows = np.arange(arr.shape[0])[:, None]
        out[rows, indices] = x_flat[rows, indices]
        return out

    a_rank = rank_transform(reduce_np(a.numpy(), x.numpy(), "abs"), (16, 16))
    quantus_curve = _pixel_flipping(
        ForwardModule(model), start.numpy(), y.numpy(), a_rank, 3 * 2, softmax=True, perturb_func=insert
    )
    with torch.no_grad():
        p0 = torch.softmax(model(start), 1).gather(1, y.view(-1, 1)).double().numpy()
    expected = np.concatenate([p0, quantus_curve], axis=1)
    result = Insertion(canvas=canvas).evaluate(CountingForward(model), x, a, y, seeds=[0, 1, 2])
    assert expected.shape == (3, 129)  # 16·16 px / ceil(256/224) = 2 px per step → 128 steps
    np.testing.assert_allclose(result.curves["insertion"].numpy(), expected, atol=1e-5, rtol=0)
    np.testing.assert_allclose(result.scores.numpy(), rise_auc(expected), atol=1e-5, rtol=0)
    np.testing.assert_allclose(result.curves["insertion"][:, -1].numpy(), expected[:, -1], atol=1e-6)


@pytest.mark.parametrize(
    "reduction,multiplies,value",
    [("abs", False, 0.0), ("signed", False, 0.0), ("signed", True, 0.0), ("sum", False, 0.0), ("abs", False, 0.5)],
)
def test_mif_lif_equal_quantus_logit_curves(monkeypatch, reduction: str, multiplies: bool, value: float) -> None:  # type: ignore[no-untyped-def]
    """MIF/LIF = Quantus PixelFlipping(softmax=False) on rank_transform(s) and rank_transform(−s).

    20×20 images with S = 20: 20 pixels per fraction, so Quantus's fixed step fits. Curves
    are divided by the clean logit here, AUCs by RISE's formula. Tolerance atol 1e-5 on the
    normalised logits (oracles.md: 6e-8 measured; clean logits here are ~1).
    """
    patch_quantus(monkeypatch)
    model = TinyNet(seed=4)
    x, a = inputs(n=4, size=20, seed=5)
    with torch.no_grad():
        logits = model(x)
    y = logits.argmax(1)
    l0 = logits.gather(1, y.view(-1, 1)).double().numpy()
    assert (l0 > 0).all()
    scores = reduce_np(a.numpy(), x.numpy(), reduction, multiplies)
    curves = {}
    for name, s in (("mif", scores), ("lif", -scores)):
        raw = _pixel_flipping(
            ForwardModule(model), x.numpy(), y.numpy(), rank_transform(s, (20, 20)), 3 * 20, softmax=False,
            baseline=value,
        )
        curves[name] = np.concatenate([l0, raw], axis=1) / l0
    result = MifLifArea(reduction=reduction, value=value).evaluate(
        CountingForward(model), x, a, y, seeds=[0] * 4, chunk_size=5, multiplies_by_inputs=multiplies
    )
    for name in ("mif", "lif"):
        np.testing.assert_allclose(result.curves[name].numpy(), curves[name], atol=1e-5, rtol=0)
    expected = rise_auc(curves["lif"]) - rise_auc(curves["mif"])
    np.testing.assert_allclose(result.scores.numpy(), expected, atol=1e-5, rtol=0)
    np.testing.assert_allclose(result.curve_x.numpy(), np.arange(21) / 20)


def _bank_perturb_func(bank: torch.Tensor):  # type: ignore[no-untyped-def]
    """Captum perturb_func that hands out ``bank[B, N, C, H, W]`` slices in call order."""
    used = {"n": 0}
    batch = bank.shape[0]

    def perturb(inputs: torch.Tensor):  # type: ignore[no-untyped-def]
        k = inputs.shape[0] // batch
        # captum repeat_interleaves the inputs: rows are image-major, samples within.
        noise = bank[:, used["n"] : used["n"] + k].reshape(batch * k, *bank.shape[2:]).to(inputs.dtype)
        used["n"] += k
        return noise, inputs - noise

    return perturb


def _forward_error(model: torch.nn.Module, points: torch.Tensor, y: torch.Tensor) -> float:
    """Bound on the rounding error of one forward of the target logit at ``points`` (any
    kernel, any batch composition), for ``model``'s dtype.

    Precision switching: the float32 forward (the float32 copy of the weights, the points
    rounded to float32) against the float64 forward measures the float32 error
    ``u32·E``; the same network in float64 errs by ``u64·E``. Floor: the rounding of the
    result itself (u·|f|). × PATTERN for another kernel's rounding.
    """
    model64 = copy.deepcopy(model).double()
    with torch.no_grad():
        exact = model64(points.double()).gather(1, y.view(-1, 1))
        low = copy.deepcopy(model).float()(points.float()).double().gather(1, y.view(-1, 1))
    measured = max(float((low - exact).abs().max()), U32 * float(exact.abs().max()))
    unit_ratio = 1.0 if model.fc.weight.dtype == torch.float32 else U64 / U32
    return PATTERN * unit_ratio * measured


def _infidelity_spread(u: torch.Tensor, abs_u: torch.Tensor, delta: torch.Tensor, eta: float, normalize: bool) -> torch.Tensor:
    """Largest |INFD_metric − INFD_captum| rounding allows, per image (docs/testing.md).

    ``u = Iᵀa``, ``abs_u = Σ|a·I|`` (its summands' magnitude), ``delta`` = Δf, each B×n; ``eta``
    bounds one forward's error. Both sides evaluate (1/n)·‖β·u − Δ‖² in float64 (β = 1, or the
    optimal β with ``normalize``) from their own forwards and sums:
    * each Δ_k = f(x) − f(x − I_k) comes from two forwards, each within η on either side:
      |δΔ_k| ≤ 4η; each u_k is a float64 sum of D products in another order:
      |δu_k| ≤ 2γ_D·Σ|a·I|;
    * √(n·INFD) is ‖u − Δ‖ (1-Lipschitz in u and Δ) or, normalised, the distance of Δ from
      the line through u (1-Lipschitz in Δ; moving u by δu turns the line by ≤ ‖δu‖/‖u‖):
      |√INFD_m − √INFD_c| ≤ E = (‖δΔ‖ + ‖δu‖·ℓ)/√n, ℓ = 1 or ‖Δ‖/‖u‖;
    * so |INFD_m − INFD_c| ≤ E·(2√INFD + E), plus the float64 evaluation of the formula itself:
      ≤ 2(n + 8)·u64 times the magnitude of its cancelling terms, mean((|βu| + |Δ|)²).
    """
    n, entries = u.shape[1], 3 * 16 * 16
    gamma = entries * U64 / (1 - entries * U64)
    d_delta = torch.full_like(delta, 4 * eta).norm(dim=1)
    d_u = (2 * gamma * abs_u).norm(dim=1)
    if normalize:
        beta = (u * delta).sum(1) / (u * u).sum(1)
        lever = delta.norm(dim=1) / u.norm(dim=1)
    else:
        beta = torch.ones(u.shape[0], dtype=torch.float64)
        lever = torch.ones(u.shape[0], dtype=torch.float64)
    e = (d_delta + d_u * lever) / n**0.5
    infd = ((beta.unsqueeze(1) * u - delta) ** 2).mean(1)
    terms = ((beta.unsqueeze(1) * u).abs() + delta.abs()).pow(2).mean(1)
    return e * (2 * infd.sqrt() + e) + 2 * (n + 8) * U64 * terms


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("chunked", [False, True])
def test_infidelity_equals_captum_with_the_same_draws(normalize: bool, dtype: torch.dtype, chunked: bool) -> None:
    """INFD = ``captum.metrics.infidelity`` given the metric's own perturbations (a bank).

    The bank is drawn here, independently, as the metric documents: per image
    ``Generator().manual_seed(seed)``, one ``C×H×W`` ``randn`` per sample, × σ. Both with
    gradient and random attributions. Captum evaluates its formula in float64 (the forward's
    logits and the attributions cast up): in float32 its normalised ``β²Σu² − 2βΣuΔ + ΣΔ²``
    cancels (INFD ≈ 1e-6 against ΣΔ² ≈ 3e-4 here). What remains is the forwards: both sides
    evaluate the model at the same points in other batch compositions, hence other kernels,
    and INFD of a gradient attribution is a second-order residual that rounding of the logits
    moves. Tolerance: ``_infidelity_spread`` (error analysis there and in docs/testing.md).
    """
    from captum.metrics import infidelity

    model = TinyNet(seed=2).to(dtype)
    x, noise_attr = inputs(n=3, size=16, seed=3)
    x = x.to(dtype)
    with torch.no_grad():
        y = model(x).argmax(1)
    seeds = [11, 22, 33]
    n, sigma = 6, 0.05
    bank = torch.stack([
        torch.stack([torch.randn(3, 16, 16, generator=g) * sigma for _ in range(n)])
        for g in (torch.Generator().manual_seed(s) for s in seeds)
    ])
    for i, seed in enumerate(seeds):
        assert torch.equal(infidelity_perturbations(seed, n, (3, 16, 16), sigma), bank[i])
    perturbed = x.unsqueeze(1) - bank.to(dtype)  # what both sides feed the model
    points = torch.cat([x, perturbed.flatten(0, 1)])
    eta = _forward_error(model, points, torch.cat([y, y.repeat_interleave(n)]))
    with torch.no_grad():
        logits = TinyNet(seed=2).double()(points.double()).gather(1, torch.cat([y, y.repeat_interleave(n)]).view(-1, 1))
    delta = (logits[: len(x)] - logits[len(x) :].view(len(x), n)).double()
    for attributions in (gradients(model, x, y), noise_attr.to(dtype)):
        products = attributions.double().unsqueeze(1) * bank.double()
        u, abs_u = products.flatten(2).sum(2), products.abs().flatten(2).sum(2)
        expected = infidelity(
            lambda batch: model(batch).double(),
            _bank_perturb_func(bank),
            x,
            attributions.double(),
            target=y,
            n_perturb_samples=n,
            max_examples_per_batch=2 * len(x) if chunked else None,
            normalize=normalize,
        ).double()
        result = Infidelity(n_perturb_samples=n, sigma=sigma, normalize=normalize).evaluate(
            CountingForward(model), x, attributions, y, seeds=seeds, chunk_size=4
        )
        spread = _infidelity_spread(u, abs_u, delta, eta, normalize)
        assert (spread < 0.05 * expected).all()  # far below the value: the check has teeth
        difference = (result.scores - expected).abs()
        assert (difference <= spread).all(), (difference.tolist(), spread.tolist(), expected.tolist())
        assert result.forward_images == 3 * (1 + n)
