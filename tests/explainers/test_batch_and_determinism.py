"""Batch invariance, seeding, and hygiene (RNG state, gradients, devices, dtypes)."""

from __future__ import annotations

import pytest
import torch

from xaibench.registry import explainers

from .helpers import images, predicted

SMALL = {
    "saliency": {},
    "integrated_gradients": {"n_steps": 6},
    "smoothgrad": {"nt_samples": 4},
    "deeplift_shap": {"n_baselines": 3},
}


@pytest.mark.kernels
@pytest.mark.parametrize("name", sorted(SMALL))
def test_batch_equals_one_image_at_a_time(tiny, name):
    x = images(4, 16, seed=1)
    t = predicted(tiny, x)
    explainer = explainers.get(name)(tiny, **SMALL[name])
    batch = explainer.explain(x, t)
    singles = torch.cat([explainer.explain(x[i : i + 1], t[i : i + 1]) for i in range(4)])
    scale = batch.abs().max()
    torch.testing.assert_close(batch, singles, rtol=1e-4, atol=1e-5 * float(scale))
    # An image's explanation does not depend on its neighbours or its position either.
    shuffled = explainer.explain(x.flip(0), t.flip(0)).flip(0)
    torch.testing.assert_close(shuffled, batch, rtol=1e-4, atol=1e-5 * float(scale))


@pytest.mark.parametrize("name", sorted(SMALL))
def test_output_contract_and_hygiene(tiny, name):
    x = images(2, 16, seed=2)
    before = x.clone()
    t = predicted(tiny, x)
    explainer = explainers.get(name)(tiny, **SMALL[name])
    tiny.train()  # an explainer must attribute the eval-mode model
    a = explainer.explain(x, t)
    assert not tiny.training
    assert a.shape == x.shape and a.dtype == torch.float32 and a.device == x.device
    assert not a.requires_grad and a.grad_fn is None
    assert torch.isfinite(a).all()
    assert torch.equal(x, before) and not x.requires_grad and x.grad is None
    assert all(p.grad is None for p in tiny.parameters())
    # A scalar target is broadcast to the batch.
    torch.testing.assert_close(explainer.explain(x, int(t[0])), explainer.explain(x, t[:1].expand(2)))


@pytest.mark.parametrize("name", sorted(SMALL))
def test_global_rng_state_untouched(tiny, name):
    x = images(2, 16)
    t = predicted(tiny, x)
    explainer = explainers.get(name)(tiny, **SMALL[name])
    state = torch.get_rng_state()
    explainer.explain(x, t)
    assert torch.equal(torch.get_rng_state(), state)


def test_smoothgrad_seeding():
    from xaibench.explainers import SmoothGradExplainer

    from .helpers import seeded, tiny_cnn, wrap

    classifier = wrap(seeded(0, tiny_cnn), "tiny", 16, 5)
    x = images(2, 16)
    t = predicted(classifier, x)
    a = SmoothGradExplainer(classifier, nt_samples=3, seed=1).explain(x, t)
    b = SmoothGradExplainer(classifier, nt_samples=3, seed=1).explain(x, t)
    c = SmoothGradExplainer(classifier, nt_samples=3, seed=2).explain(x, t)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    # The seed covers the image content and target: another target draws other noise.
    noise = SmoothGradExplainer(classifier, nt_samples=3, seed=1).noise
    assert not torch.equal(noise(x, t), noise(x, (t + 1) % 5))
    # Zero noise is plain saliency.
    from xaibench.explainers import SaliencyExplainer

    torch.testing.assert_close(
        SmoothGradExplainer(classifier, nt_samples=2, stdevs=0.0).explain(x, t),
        SaliencyExplainer(classifier, abs=False).explain(x, t),
    )


def test_deeplift_shap_baselines_seeded(tiny):
    from xaibench.explainers import DeepLiftShapExplainer

    shape = (3, 16, 16)
    one = DeepLiftShapExplainer(tiny, n_baselines=4, seed=1)
    same = DeepLiftShapExplainer(tiny, n_baselines=4, seed=1)
    other = DeepLiftShapExplainer(tiny, n_baselines=4, seed=2)
    base = one.baseline_images(shape)
    assert base.shape == (4, *shape) and base.min() >= 0 and base.max() <= 1
    assert torch.equal(base, same.baseline_images(shape))
    assert not torch.equal(base, other.baseline_images(shape))
    x = images(2, 16)
    t = predicted(tiny, x)
    assert torch.equal(one.explain(x, t), same.explain(x, t))
    assert not torch.allclose(one.explain(x, t), other.explain(x, t))


@pytest.mark.parametrize("name", sorted(SMALL))
def test_input_that_requires_grad_is_left_alone(tiny, name):
    x = images(2, 16, seed=3).requires_grad_()
    t = predicted(tiny, x.detach())
    explainer = explainers.get(name)(tiny, **SMALL[name])
    a = explainer.explain(x, t)
    assert x.grad is None and a.grad_fn is None
    torch.testing.assert_close(a, explainer.explain(x.detach(), t))


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", sorted(SMALL))
def test_results_follow_the_input_device_and_match_cpu(tiny, name, device):
    import copy

    model = copy.deepcopy(tiny).to(device)
    x = images(2, 16, seed=4)
    t = predicted(tiny, x)
    on_device = explainers.get(name)(model, **SMALL[name]).explain(x.to(device), t.to(device))
    on_cpu = explainers.get(name)(tiny, **SMALL[name]).explain(x, t)
    assert on_device.device.type == device and on_device.dtype == torch.float32
    # Same noise and baselines on every device (drawn on the CPU); only kernels differ.
    torch.testing.assert_close(on_device.cpu(), on_cpu, rtol=1e-3, atol=1e-5 * float(on_cpu.abs().max()))
