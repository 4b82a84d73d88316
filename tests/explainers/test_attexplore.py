"""AttEXplore: the spec's numeric checks (docs/attexplore.md, spec §6), batching and seeding."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.fft
import torch
import torch.nn.functional as F
from captum.attr import Saliency
from torch import nn

from xaibench.errors import ConfigError
from xaibench.explainers.attexplore import (
    AttExploreExplainer,
    gaussian_kernel,
    label_loss,
    loss_at,
    resize_pad,
)
from xaibench.registry import explainers

from .counting import Counting
from .helpers import images, predicted, seeded, tiny_cnn, wrap
from .rounding import U64, amplification, excess, float64_spread

#: No randomness and no smoothing: one sample equal to x_t (σ = 0, mask ≡ 1), no DI, no TI.
DETERMINISTIC = {"N": 1, "sigma": 0.0, "rho": 0.0, "di_prob": 0.0, "ti_size": 1}
SMALL = {"N": 3, "num_steps": 3}


def smooth_cnn() -> nn.Sequential:
    """Tanh/Softplus only, so first-order path sums converge cleanly (no ReLU6 kinks)."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.Tanh(),
        nn.Conv2d(8, 8, 3, stride=2, padding=1),
        nn.Softplus(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 5),
    )


@pytest.fixture(scope="module")
def tiny64():
    return wrap(seeded(0, tiny_cnn), "tiny_cnn", 16, 5).double()


def inner_images(n: int, size: int = 16, seed: int = 0) -> torch.Tensor:
    """Images in [0.25, 0.75]: a 16/255 path can never reach 0 or 1."""
    return 0.25 + 0.5 * images(n, size, seed=seed)


def reference_loss(logits: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    """The four losses written out independently of the module under test."""
    rows = torch.arange(logits.shape[0])
    if kind == "ce":
        return -torch.log_softmax(logits, 1)[rows, target]
    if kind == "neg_prob":
        return -torch.softmax(logits, 1)[rows, target]
    p = torch.softmax(logits, 1)
    if kind == "reference":
        p = torch.softmax(p, 1)
    return -torch.log_softmax(p, 1)[rows, target]


# -- building blocks ----------------------------------------------------------------------


@pytest.mark.kernels
def test_dct_matches_scipy_and_inverts():
    from xaibench.explainers._dct import dct2, idct2

    x = torch.rand((2, 3, 12, 9), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    expected = scipy.fft.dctn(x.numpy(), type=2, norm="ortho", axes=(-2, -1))
    np.testing.assert_allclose(dct2(x).numpy(), expected, atol=1e-12)
    np.testing.assert_allclose(
        idct2(dct2(x)).numpy(), x.numpy(), atol=1e-12
    )
    np.testing.assert_allclose(
        idct2(torch.from_numpy(expected)).numpy(),
        scipy.fft.idctn(expected, type=2, norm="ortho", axes=(-2, -1)),
        atol=1e-12,
    )
    x32 = x.float()
    torch.testing.assert_close(idct2(dct2(x32)), x32, atol=1e-5, rtol=0)
    # A mask in the unnormalised (scipy norm=None) domain gives the same image: the scale cancels.
    mask = 0.5 + np.random.default_rng(0).random(expected.shape)
    plain = scipy.fft.idctn(scipy.fft.dctn(x.numpy(), axes=(-2, -1)) * mask, axes=(-2, -1))
    ortho = idct2(dct2(x) * torch.from_numpy(mask)).numpy()
    np.testing.assert_allclose(ortho, plain, atol=1e-12)


def test_ti_kernel():
    kernel = gaussian_kernel(7, 3.0)
    assert kernel.shape == (7, 7)
    assert abs(float(kernel.sum()) - 1.0) < 1e-12
    torch.testing.assert_close(kernel, kernel.T)
    torch.testing.assert_close(kernel, kernel.flip(0))
    assert abs(float(kernel[3, 3]) - 0.15924) < 5e-6


def test_resize_pad_equals_interpolate_then_pad():
    x = torch.rand((4, 3, 16, 16), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    sizes = torch.tensor([16, 17, 16, 17])
    tops = torch.tensor([0, 0, 1, 0])
    lefts = torch.tensor([1, 0, 0, 0])
    out = resize_pad(x, sizes, sizes, tops, lefts, (18, 18))
    for i in range(4):
        r, top, left = int(sizes[i]), int(tops[i]), int(lefts[i])
        resized = F.interpolate(x[i : i + 1], size=(r, r), mode="bilinear", align_corners=False)
        padded = F.pad(resized, (left, 18 - r - left, top, 18 - r - top), value=0.0)
        torch.testing.assert_close(out[i : i + 1], padded, atol=1e-12, rtol=0)


# -- the spec's §6 checks ------------------------------------------------------------------


def test_output_contract_and_non_negativity(tiny):
    x = images(3, 16, seed=3)  # full [0, 1] range, so clipping happens
    before = x.clone()
    t = predicted(tiny, x)
    state = torch.get_rng_state()
    a = AttExploreExplainer(tiny, **SMALL).explain(x, t)
    assert torch.equal(torch.get_rng_state(), state)
    assert a.shape == x.shape and a.dtype == torch.float32 and not a.requires_grad
    assert torch.isfinite(a).all()
    assert float(a.min()) >= -1e-7  # P1
    assert torch.equal(x, before) and x.grad is None
    assert all(p.grad is None for p in tiny.parameters())


def test_saturated_softmax_is_finite():
    # Logits ×1e4: the softmax saturates, the reference loss's gradients underflow to 0, and the
    # reference's g / mean|g| would be 0/0.
    model = seeded(0, tiny_cnn)
    with torch.no_grad():
        model[-1].weight.mul_(1e4)
    classifier = wrap(model, "saturated", 16, 5)
    x = images(2, 16, seed=4)
    a = AttExploreExplainer(classifier, **SMALL).explain(x, predicted(classifier, x))
    assert torch.isfinite(a).all()
    assert float(a.abs().max()) == 0.0  # every gradient is 0: zero steps, not NaN


def test_closed_form_without_clipping(tiny):
    # P2: α·Σ|G_t| where nothing clips; P3: the ε-ball and [0, 1] hold; P4: the mean bound.
    x = inner_images(2)
    t = predicted(tiny, x)
    explainer = AttExploreExplainer(tiny, epsilon=16 / 255, N=3, num_steps=4)
    trace = explainer.trace(x, t, record=True)
    alpha = explainer.alpha
    assert alpha == pytest.approx(16 / 255 / 4)
    expected = alpha * sum(g.abs() for g in trace.buffers)
    torch.testing.assert_close(trace.attributions, expected, rtol=1e-4, atol=1e-7)
    for x_t in trace.iterates:
        assert float((x_t - x).abs().max()) <= 16 / 255 + 1e-6
        assert float(x_t.min()) >= 0.0 and float(x_t.max()) <= 1.0
    bound = alpha * 4 * 5 / 2
    assert float(trace.attributions.mean(dim=(1, 2, 3)).max()) <= bound + 1e-6


@pytest.mark.kernels
@pytest.mark.parametrize("loss", ["reference", "reference_la", "neg_prob", "ce"])
@pytest.mark.parametrize("normalize", [False, True])
def test_degenerate_oracle_is_captum_saliency_of_the_loss(tiny64, loss, normalize):
    x = inner_images(2).double()
    t = predicted(tiny64, x)
    explainer = AttExploreExplainer(
        tiny64, **DETERMINISTIC, num_steps=1, epsilon=16 / 255, loss=loss, normalize=normalize
    )
    a = explainer.trace(x, t).attributions
    oracle = Saliency(lambda inp: reference_loss(tiny64(inp), t, loss)).attribute(x, abs=True)
    if normalize:
        oracle = oracle / oracle.mean(dim=(1, 2, 3), keepdim=True)
    torch.testing.assert_close(a, explainer.alpha * oracle, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("direction", ["descend", "ascend"])
def test_two_step_momentum(tiny64, direction):
    x = inner_images(2, seed=5).double()
    t = predicted(tiny64, x)
    explainer = AttExploreExplainer(
        tiny64, **DETERMINISTIC, num_steps=2, epsilon=16 / 255, direction=direction
    )
    alpha, s = explainer.alpha, (-1.0 if direction == "descend" else 1.0)

    def normalised_gradient(point: torch.Tensor) -> torch.Tensor:
        point = point.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(reference_loss(tiny64(point), t, "reference").sum(), point)
        return grad / grad.abs().mean(dim=(1, 2, 3), keepdim=True)

    g0 = normalised_gradient(x)
    g1 = normalised_gradient(x + s * alpha * g0.sign())
    expected = alpha * (g0.abs() + (g0 + g1).abs())
    torch.testing.assert_close(explainer.trace(x, t).attributions, expected, rtol=1e-9, atol=1e-12)


def test_approximate_completeness_of_the_core_integration():
    # Normalisation off, μ = 0: Σ A is a left Riemann sum of −Δx·∇ℓ, so ≈ ℓ(x_0) − ℓ(x_T).
    classifier = wrap(seeded(0, smooth_cnn), "smooth_cnn", 16, 5).double()
    x = inner_images(3, seed=6).double()
    t = predicted(classifier, x)
    errors = []
    for steps in (5, 20):
        explainer = AttExploreExplainer(
            classifier, **DETERMINISTIC, normalize=False, momentum=0.0, epsilon=2 / 255,
            num_steps=steps, loss="ce",
        )
        trace = explainer.trace(x, t, record=True)
        gain = loss_at(classifier, x, t, "ce") - loss_at(classifier, trace.iterates[-1], t, "ce")
        errors.append(((trace.attributions.flatten(1).sum(1) - gain).abs() / gain.abs()).max())
    assert float(errors[0]) < 1e-4
    assert float(errors[1]) < float(errors[0]) / 2  # shrinks with α


def test_identity_transform_and_iterate_gradient(tiny64):
    # σ = 0, ρ = 0: the approximate feature is x_t, so the gradient w.r.t. x_t (the paper's
    # Eq. 5–6) equals the gradient w.r.t. the sample (the code's SSA convention).
    x = inner_images(2, seed=7).double()
    t = predicted(tiny64, x)
    common = {**DETERMINISTIC, "num_steps": 3}
    a = AttExploreExplainer(tiny64, **common, grad_wrt="sample").trace(x, t).attributions
    b = AttExploreExplainer(tiny64, **common, grad_wrt="iterate").trace(x, t).attributions
    torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_loss_scaling_leaves_the_result_unchanged(tiny64, monkeypatch):
    # P5: the per-image normalisation removes any positive factor on the loss.
    import xaibench.explainers.attexplore as module

    x = images(2, 16, seed=8).double()
    t = predicted(tiny64, x)
    explainer = AttExploreExplainer(tiny64, **SMALL)
    a = explainer.trace(x, t).attributions
    original = module.label_loss
    monkeypatch.setattr(module, "label_loss", lambda *args: 7.0 * original(*args))
    b = explainer.trace(x, t).attributions
    torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_seeding_is_deterministic(tiny):
    x = images(2, 16, seed=9)
    t = predicted(tiny, x)
    a = AttExploreExplainer(tiny, **SMALL, seed=1).explain(x, t)
    b = AttExploreExplainer(tiny, **SMALL, seed=1).explain(x, t)
    c = AttExploreExplainer(tiny, **SMALL, seed=2).explain(x, t)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


@pytest.mark.kernels
def test_batch_equals_single_images_in_float64(tiny, tiny64):
    """Batch = single images = reversed batch = samples in chunks, to float64 rounding.

    Not bit-equality: the kernels (BLAS blocking, gemv for one row, SIMD width, DI's size
    groups of other row counts) differ per batch shape and per CPU, so summation orders
    differ. Error analysis (docs/testing.md): such runs take the same sign steps (checked:
    the iterates agree to far less than one step α), so along that path the attribution is
    α·Σ_t |G_t| (less where a clip binds) with G_t = Σ_{j≤t} μ^{t−j} ĝ_j, and
    |ΔA| ≤ α·Σ_t Σ_{j≤t} μ^{t−j}·|Δĝ_j|. The rounding error of one normalised gradient ĝ
    (DCT, DI, forward, backward, N-sample mean, TI, 1/mean|·|) is measured by precision
    switching: one step (A = α·|ĝ_0|) in float32 and in float64 from the same draws gives
    E = max|ΔA|/(α·u32); in float64 |Δĝ| ≤ PATTERN·u64·E per run, two runs. After ĝ, each
    step's momentum add, product and accumulation round on inputs that now differ: each
    within u64·|A| per run, 2·3·T·u64·|A| in all.
    """
    x = images(4, 16, seed=10).double()
    t = torch.tensor([0, 1, 2, 3])  # a target per image (tiny64 predicts 0 for all four)
    steps, momentum = SMALL["num_steps"], 1.0
    path_weight = sum(momentum ** (s - j) for s in range(steps) for j in range(s + 1))
    for params in ({"di_prob": 0.0}, {}):  # without DI, with DI
        explainer = AttExploreExplainer(tiny64, **SMALL, **params, momentum=momentum)
        alpha = explainer.alpha
        one_step = {**SMALL, **params, "num_steps": 1, "epsilon": alpha}
        measured = amplification(
            AttExploreExplainer(tiny, **one_step).trace(x.float(), t).attributions,
            AttExploreExplainer(tiny64, **one_step).trace(x, t).attributions,
        )
        batch = explainer.trace(x, t, record=True)
        bound = float64_spread(measured, alpha * path_weight) + 2 * 3 * steps * U64 * batch.attributions.abs()
        # The bound is at rounding level (≪ the attributions), so the checks below have teeth.
        assert float(bound.max()) < 1e-10 * float(batch.attributions.abs().max())
        singles = [explainer.trace(x[i : i + 1], t[i : i + 1], record=True) for i in range(4)]
        for step, iterate in enumerate(batch.iterates):  # the analysis' premise: the same path
            alone = torch.cat([single.iterates[step] for single in singles])
            assert float((alone - iterate).abs().max()) < alpha / 4, (params, step)
        chunked = AttExploreExplainer(tiny64, **SMALL, **params, momentum=momentum, samples_batch_size=2)
        others = {
            "single images": torch.cat([single.attributions for single in singles]),
            "reversed batch": explainer.trace(x.flip(0), t.flip(0)).attributions.flip(0),
            "samples in chunks of 2": chunked.trace(x, t).attributions,
        }
        for what, other in others.items():
            assert excess(other, batch.attributions, bound) <= 0, (what, params)


@pytest.mark.kernels
def test_batch_equals_single_images_in_float32(tiny):
    # Sign steps amplify rounding (spec §5.4): summary statistics, not exact equality.
    x = images(4, 16, seed=11)
    t = predicted(tiny, x)
    explainer = AttExploreExplainer(tiny, **SMALL)
    batch = explainer.explain(x, t)
    singles = torch.cat([explainer.explain(x[i : i + 1], t[i : i + 1]) for i in range(4)])
    close = torch.isclose(batch, singles, rtol=1e-5, atol=1e-7).float().mean()
    assert float(close) >= 0.99
    ranks = [v.flatten().argsort().argsort().double() for v in (batch, singles)]
    assert float(torch.corrcoef(torch.stack(ranks))[0, 1]) > 0.99


@pytest.mark.parametrize("di_mode", ["pad", "pad_resize_back"])
def test_pass_counts(tiny, di_mode):
    counting = Counting(tiny)
    x = images(3, 16, seed=12)
    t = predicted(tiny, x)
    explainer = AttExploreExplainer(
        counting, N=5, num_steps=3, di_prob=0.5, di_mode=di_mode, samples_batch_size=2
    )
    explainer.explain(x, t)
    assert counting.forward_rows == 3 * 5 * 3
    assert counting.backward_rows == 3 * 5 * 3
    expected_sizes = {(16, 16), (18, 18)} if di_mode == "pad" else {(16, 16)}
    assert counting.sizes == expected_sizes


def test_early_stop_freezes_rows_that_leave_the_target(tiny):
    # With a target that is not the prediction, the first step's check stops the row: the
    # result is the one-step result (step 0 draws the same numbers in both runs).
    x = images(2, 16, seed=14)
    t = (predicted(tiny, x) + 1) % 5
    tiny_eps = {"epsilon": 1e-4, **SMALL}
    stopped = AttExploreExplainer(tiny, **tiny_eps, early_stop=True).explain(x, t)
    one_step = AttExploreExplainer(tiny, **{**tiny_eps, "num_steps": 1}, step_size=1e-4 / 3).explain(x, t)
    torch.testing.assert_close(stopped, one_step)
    full = AttExploreExplainer(tiny, **tiny_eps).explain(x, t)
    assert not torch.allclose(stopped, full)


@pytest.mark.parametrize(
    "params",
    [
        {"direction": "ascend", "loss": "ce"},
        {"mask": "gaussian"},
        {"grad_wrt": "iterate"},
        {"use_sign": False},
        {"normalize": False, "ti_size": 0, "momentum": 0.0},
        {"step_size": 0.05},
    ],
)
def test_variants_run_and_stay_non_negative(tiny, params):
    x = images(2, 16, seed=15)
    a = AttExploreExplainer(tiny, **SMALL, **params).explain(x, predicted(tiny, x))
    assert torch.isfinite(a).all() and float(a.min()) >= -1e-7


# -- registry --------------------------------------------------------------------------------


def test_registered_with_reference_defaults(tiny):
    specs = {p.name: p for p in explainers.params("attexplore")}
    assert all(not p.required and p.type_name != "any" for p in specs.values())
    defaults = {name: p.default for name, p in specs.items()}
    assert defaults["epsilon"] == pytest.approx(48 / 255)
    assert defaults["sigma"] == pytest.approx(16 / 255)
    assert {k: defaults[k] for k in ("num_steps", "N", "rho", "momentum", "di_prob", "di_ratio", "ti_size")} == {
        "num_steps": 10, "N": 20, "rho": 0.5, "momentum": 1.0, "di_prob": 0.5, "di_ratio": 1.15, "ti_size": 7,
    }
    assert (defaults["loss"], defaults["direction"], defaults["mask"], defaults["grad_wrt"]) == (
        "reference", "descend", "uniform", "sample",
    )
    cls = explainers.get("attexplore")
    assert cls.is_random and cls.needs_gradients and cls.multiplies_by_inputs
    assert not cls.uses_baseline and not cls.has_completeness
    explainer = cls(tiny)
    assert explainer.name == "attexplore"
    resolved = explainers.resolved_params("attexplore", {})
    assert {"explainer": explainer.name, **resolved} == {"explainer": "attexplore", **defaults}
    assert {name: getattr(explainer, name) for name in defaults} == defaults
    json.dumps(resolved)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"loss": "mse"}, "reference, reference_la, neg_prob, ce"),
        ({"direction": "up"}, "descend, ascend"),
        ({"mask": "beta"}, "uniform, gaussian"),
        ({"grad_wrt": "x"}, "sample, iterate"),
        ({"di_mode": "crop"}, "auto, pad, pad_resize_back"),
        ({"N": 0}, "N must be"),
        ({"ti_size": 4}, "odd"),
        ({"di_prob": 2.0}, "di_prob"),
        ({"sigma": -1.0}, "sigma"),
    ],
)
def test_invalid_params_are_rejected(tiny, params, message):
    with pytest.raises(ConfigError, match=message):
        AttExploreExplainer(tiny, **params)


def test_label_loss_matches_the_written_out_losses():
    logits = torch.randn((4, 7), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    target = torch.tensor([0, 3, 6, 2])
    for kind in ("reference", "reference_la", "neg_prob", "ce"):
        torch.testing.assert_close(label_loss(logits, target, kind), reference_loss(logits, target, kind))
