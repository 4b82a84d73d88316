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

import numpy as np
import pytest
import torch

from xaibench.metrics import Deletion, Infidelity, Insertion, MifLifArea, infidelity_perturbations

from .faithfulness_helpers import (
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


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("chunked", [False, True])
def test_infidelity_equals_captum_with_the_same_draws(normalize: bool, dtype: torch.dtype, chunked: bool) -> None:
    """INFD = ``captum.metrics.infidelity`` given the metric's own perturbations (a bank).

    The bank is drawn here, independently, as the metric documents: per image
    ``Generator().manual_seed(seed)``, one ``C×H×W`` ``randn`` per sample, × σ. Both with
    gradient and random attributions. Tolerance: float64 (model and images) rtol 1e-9 —
    the algebra is the same, measured 2e-14. float32 rtol 5e-5: captum evaluates the
    normalised score as ``β²Σu² − 2βΣuΔ + ΣΔ²`` in float32, which cancels when the gradient
    fits Δf well (INFD ≈ 1e-6 against ΣΔ² ≈ 1e-3); captum's own chunked and unchunked runs
    differ by 2e-6 relative, and the metric (float64 sums) by up to 1.1e-5 (measured).
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
    for attributions in (gradients(model, x, y), noise_attr.to(dtype)):
        expected = infidelity(
            model,
            _bank_perturb_func(bank),
            x,
            attributions,
            target=y,
            n_perturb_samples=n,
            max_examples_per_batch=2 * len(x) if chunked else None,
            normalize=normalize,
        ).double()
        result = Infidelity(n_perturb_samples=n, sigma=sigma, normalize=normalize).evaluate(
            CountingForward(model), x, attributions, y, seeds=seeds, chunk_size=4
        )
        rtol = 1e-9 if dtype == torch.float64 else 5e-5
        np.testing.assert_allclose(result.scores.numpy(), expected.numpy(), rtol=rtol, atol=0)
        assert result.forward_images == 3 * (1 + n)
