"""The FPA paper's estimator variants: SQ-SG, VG′ and SG′, and every explainer's input flag."""

from __future__ import annotations

import json

import pytest
import torch
from captum.attr import InputXGradient

from xaibench.errors import ConfigError
from xaibench.explainers import (
    InputXGradientExplainer,
    InputXSmoothGradExplainer,
    SaliencyExplainer,
    SmoothGradExplainer,
    SquaredSmoothGradExplainer,
)
from xaibench.registry import explainers

from .helpers import images, predicted

#: What the metrics layer's ``signed`` reduction must know (Σ_c a_c·x_c vs Σ_c a_c).
MULTIPLIES_BY_INPUTS = {
    "saliency": False,
    "smoothgrad": False,
    "sq_smoothgrad": False,
    "integrated_gradients": True,
    "deeplift_shap": True,
    "input_x_gradient": True,
    "input_x_smoothgrad": True,
    "attexplore": True,
    "agi": True,
}


def test_every_builtin_explainer_declares_multiplies_by_inputs():
    for name, expected in MULTIPLIES_BY_INPUTS.items():
        assert explainers.get(name).multiplies_by_inputs is expected, name
        assert explainers.get(name).name == name


def test_sq_smoothgrad_is_smoothgrad_sq(tiny):
    x = images(2, 16, seed=1)
    t = predicted(tiny, x)
    a = SquaredSmoothGradExplainer(tiny, nt_samples=4, seed=3).explain(x, t)
    b = SmoothGradExplainer(tiny, nt_samples=4, seed=3, nt_type="smoothgrad_sq").explain(x, t)
    assert torch.equal(a, b)
    assert float(a.min()) >= 0.0
    # The mean of squares bounds the square of the mean (SG²).
    sg = SmoothGradExplainer(tiny, nt_samples=4, seed=3).explain(x, t)
    assert bool((a >= sg * sg - 1e-9).all())


def test_input_x_gradient_is_captum_input_x_gradient(tiny):
    x = images(2, 16, seed=2)
    t = predicted(tiny, x)
    a = InputXGradientExplainer(tiny).explain(x, t)
    torch.testing.assert_close(a, InputXGradient(tiny).attribute(x.clone(), target=t))
    signed = SaliencyExplainer(tiny, abs=False).explain(x, t)
    torch.testing.assert_close(a, signed * x)


def test_normalized_input_space_is_gradient_times_normalized_input(tiny):
    # FPA multiplies by the input the network sees: ∂f/∂x̃ ⊙ x̃ with x̃ = (x − mean)/std.
    x = images(2, 16, seed=3)
    t = predicted(tiny, x)
    x_tilde = ((x - tiny.mean) / tiny.std).requires_grad_(True)
    logits = tiny.model(x_tilde)
    (grad,) = torch.autograd.grad(logits[torch.arange(2), t].sum(), x_tilde)
    a = InputXGradientExplainer(tiny, input_space="normalized").explain(x, t)
    torch.testing.assert_close(a, grad * x_tilde.detach())


def test_input_x_smoothgrad_is_signed_smoothgrad_times_input(tiny):
    x = images(2, 16, seed=4)
    t = predicted(tiny, x)
    a = InputXSmoothGradExplainer(tiny, nt_samples=3, seed=1).explain(x, t)
    sg = SmoothGradExplainer(tiny, nt_samples=3, seed=1, abs=False).explain(x, t)
    torch.testing.assert_close(a, sg * x)
    b = InputXSmoothGradExplainer(tiny, nt_samples=3, seed=1, input_space="normalized").explain(x, t)
    torch.testing.assert_close(b, sg * (x - tiny.mean))


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("sq_smoothgrad", {"nt_samples": 16, "stdevs": 0.15, "seed": 0, "nt_samples_batch_size": None}),
        ("input_x_gradient", {"input_space": "pixel"}),
        (
            "input_x_smoothgrad",
            {"nt_samples": 16, "stdevs": 0.15, "seed": 0, "nt_samples_batch_size": None, "input_space": "pixel"},
        ),
    ],
)
def test_registered_with_typed_defaulted_params(tiny, name, expected):
    specs = explainers.params(name)
    assert {p.name: p.default for p in specs} == expected
    assert all(not p.required and p.type_name != "any" for p in specs)
    explainer = explainers.get(name)(tiny)
    resolved = explainers.resolved_params(name, {})
    assert {"explainer": explainer.name, **resolved} == {"explainer": name, **expected}
    json.dumps(resolved)
    x = images(2, 16, seed=5)
    t = predicted(tiny, x)
    a = explainers.get(name)(tiny, **({"nt_samples": 2} if "nt_samples" in expected else {})).explain(x, t)
    assert a.shape == x.shape and a.dtype == torch.float32 and torch.isfinite(a).all()
    # Batch = single images (the noise is seeded per image).
    explainer = explainers.get(name)(tiny, **({"nt_samples": 2} if "nt_samples" in expected else {}))
    singles = torch.cat([explainer.explain(x[i : i + 1], t[i : i + 1]) for i in range(2)])
    torch.testing.assert_close(explainer.explain(x, t), singles, rtol=1e-4, atol=1e-6)


def test_capabilities():
    assert explainers.get("sq_smoothgrad").is_random
    assert explainers.get("input_x_smoothgrad").is_random
    assert not explainers.get("input_x_gradient").is_random


@pytest.mark.parametrize("name", ["input_x_gradient", "input_x_smoothgrad"])
def test_invalid_input_space(tiny, name):
    with pytest.raises(ConfigError, match="pixel, normalized"):
        explainers.get(name)(tiny, input_space="raw")
