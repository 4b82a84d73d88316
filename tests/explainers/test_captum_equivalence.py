"""Each explainer equals a direct Captum call with the same settings (and a plain-autograd oracle)."""

from __future__ import annotations

import pytest
import torch
from captum.attr import DeepLiftShap, IntegratedGradients, NoiseTunnel, Saliency

from xaibench.explainers import (
    DeepLiftShapExplainer,
    IntegratedGradientsExplainer,
    SaliencyExplainer,
    SmoothGradExplainer,
)
from xaibench.types import image_seeds

from .helpers import images, predicted

pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"), pytest.mark.kernels]

TIGHT = {"rtol": 1e-5, "atol": 1e-7}


@pytest.mark.parametrize("use_abs", [True, False])
def test_saliency_equals_captum(tiny, use_abs):
    x = images(3, 16)
    t = predicted(tiny, x)
    ours = SaliencyExplainer(tiny, abs=use_abs).explain(x, t)
    ref = Saliency(tiny).attribute(x.clone(), target=t, abs=use_abs)
    assert torch.equal(ours, ref)
    if use_abs:
        assert (ours >= 0).all()
    else:
        assert (ours < 0).any()


def test_saliency_equals_autograd(tiny):
    x = images(2, 16).requires_grad_()
    t = torch.tensor([1, 3])
    tiny(x).gather(1, t[:, None]).sum().backward()
    ours = SaliencyExplainer(tiny, abs=False).explain(x.detach(), t)
    torch.testing.assert_close(ours, x.grad, **TIGHT)


@pytest.mark.parametrize(
    ("method", "baseline", "value"),
    [("gausslegendre", "zeros", 0.0), ("riemann_trapezoid", "uniform_gray", 0.5)],
)
def test_integrated_gradients_equals_captum(tiny, method, baseline, value):
    x = images(3, 16)
    t = predicted(tiny, x)
    explainer = IntegratedGradientsExplainer(tiny, n_steps=12, method=method, baseline=baseline)
    ours = explainer.explain(x, t)
    ig = IntegratedGradients(tiny, multiply_by_inputs=True)
    same_chunks = ig.attribute(
        x, baselines=value, target=t, n_steps=12, method=method,
        internal_batch_size=explainer.rows_per_call(3),
    )
    torch.testing.assert_close(ours, same_chunks, **TIGHT)
    # Chunking the steps only changes the order of a sum.
    one_call = ig.attribute(x, baselines=value, target=t, n_steps=12, method=method)
    torch.testing.assert_close(ours, one_call, rtol=1e-4, atol=1e-6)


def test_integrated_gradients_small_internal_batch_is_raised_to_batch(tiny):
    x = images(4, 16)
    t = predicted(tiny, x)
    explainer = IntegratedGradientsExplainer(tiny, n_steps=6, internal_batch_size=1)
    assert explainer.rows_per_call(4) == 4
    ref = IntegratedGradients(tiny).attribute(x, target=t, n_steps=6, internal_batch_size=4)
    torch.testing.assert_close(explainer.explain(x, t), ref, **TIGHT)


def test_deeplift_shap_equals_captum_with_same_baselines(tiny):
    x = images(3, 16)
    t = predicted(tiny, x)
    for kind in ("uniform", "zeros_and_uniform"):
        explainer = DeepLiftShapExplainer(tiny, n_baselines=4, baselines=kind, seed=5)
        ours = explainer.explain(x, t)
        baselines = explainer.baseline_images((3, 16, 16))
        ref = DeepLiftShap(tiny, multiply_by_inputs=True).attribute(x, baselines=baselines, target=t)
        torch.testing.assert_close(ours, ref, **TIGHT)
        if kind == "zeros_and_uniform":
            assert torch.equal(baselines[0], torch.zeros(3, 16, 16))


def test_deeplift_shap_row_cap_matches_one_call(tiny):
    x = images(5, 16)
    t = predicted(tiny, x)
    whole = DeepLiftShapExplainer(tiny, n_baselines=3).explain(x, t)
    capped = DeepLiftShapExplainer(tiny, n_baselines=3, internal_batch_size=12)  # 2 images a call
    assert capped.images_per_call(5) == 2
    torch.testing.assert_close(capped.explain(x, t), whole, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("nt_type", ["smoothgrad", "smoothgrad_sq", "vargrad"])
def test_smoothgrad_equals_noise_tunnel_per_image(tiny, nt_type):
    """``NoiseTunnel`` on one image after ``torch.manual_seed(seed_i)`` draws the same noise."""
    x = images(3, 16)
    t = predicted(tiny, x)
    explainer = SmoothGradExplainer(tiny, nt_samples=6, stdevs=0.2, abs=False, seed=7, nt_type=nt_type)
    batch = explainer.explain(x, t)
    seeds = image_seeds(x, t, 7)
    for i, seed in enumerate(seeds):
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            ref = NoiseTunnel(Saliency(tiny)).attribute(
                x[i : i + 1], nt_type=nt_type, nt_samples=6, stdevs=0.2, abs=False, target=int(t[i])
            )
        single = explainer.explain(x[i : i + 1], t[i : i + 1])
        torch.testing.assert_close(single, ref, **TIGHT)
        torch.testing.assert_close(batch[i : i + 1], ref, rtol=1e-4, atol=1e-6)


def test_smoothgrad_equals_plain_autograd_oracle(tiny):
    """Independent of Captum: mean of input gradients at x + N(0, σ²) drawn per image."""
    x = images(2, 16, seed=3)
    t = torch.tensor([0, 4])
    explainer = SmoothGradExplainer(tiny, nt_samples=5, stdevs=0.1, seed=11)
    ours = explainer.explain(x, t)
    for i, seed in enumerate(image_seeds(x, t, 11)):
        g = torch.Generator().manual_seed(seed)
        noise = torch.normal(0.0, 0.1, size=(5, 3, 16, 16), generator=g)
        noisy = (x[i : i + 1] + noise).requires_grad_()
        tiny(noisy)[:, int(t[i])].sum().backward()
        torch.testing.assert_close(ours[i], noisy.grad.mean(0), rtol=1e-4, atol=1e-6)


def test_smoothgrad_sample_chunks_match_one_call(tiny):
    x = images(2, 16)
    t = predicted(tiny, x)
    whole = SmoothGradExplainer(tiny, nt_samples=7, nt_type="vargrad").explain(x, t)
    chunked = SmoothGradExplainer(tiny, nt_samples=7, nt_type="vargrad", nt_samples_batch_size=3)
    torch.testing.assert_close(chunked.explain(x, t), whole, rtol=1e-4, atol=1e-7)


def test_smoothgrad_abs_averages_absolute_gradients(tiny):
    x = images(1, 16)
    t = predicted(tiny, x)
    signed = SmoothGradExplainer(tiny, nt_samples=4, abs=False).explain(x, t)
    absolute = SmoothGradExplainer(tiny, nt_samples=4, abs=True).explain(x, t)
    assert (absolute >= 0).all()
    assert (absolute + 1e-7 >= signed.abs()).all()  # |mean| ≤ mean |·|
