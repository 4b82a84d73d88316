"""Registry entries, declared parameters, capabilities and parameter validation."""

from __future__ import annotations

import json

import pytest

from xaibench.errors import ConfigError
from xaibench.registry import explainers

EXPECTED = {
    "saliency": {"abs": True},
    "integrated_gradients": {
        "n_steps": 32,
        "method": "gausslegendre",
        "baseline": "zeros",
        "internal_batch_size": None,
    },
    "smoothgrad": {
        "nt_samples": 16,
        "stdevs": 0.15,
        "abs": False,
        "seed": 0,
        "nt_type": "smoothgrad",
        "nt_samples_batch_size": None,
    },
    "deeplift_shap": {
        "n_baselines": 8,
        "baselines": "uniform",
        "seed": 0,
        "internal_batch_size": None,
        "rules": "auto",
    },
    "deeplift": {"baseline": 0.0, "rules": "auto", "internal_batch_size": None},
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_registered_with_typed_defaulted_params(name, tiny):
    assert name in explainers.names()
    specs = explainers.params(name)
    assert {p.name: p.default for p in specs} == EXPECTED[name]
    assert all(not p.required and p.type_name != "any" for p in specs)
    explainer = explainers.get(name)(tiny)
    assert explainer.name == name
    described = {"explainer": explainer.name, **explainers.resolved_params(name, {})}
    assert described == {"explainer": name, **EXPECTED[name]}
    json.dumps(described)


def test_capabilities():
    get = explainers.get
    assert get("integrated_gradients").has_completeness and get("integrated_gradients").multiplies_by_inputs
    assert get("deeplift_shap").has_completeness and get("deeplift_shap").uses_baseline
    assert not get("deeplift_shap").is_random
    assert get("smoothgrad").is_random and not get("smoothgrad").has_completeness
    assert not get("saliency").is_random and not get("saliency").uses_baseline
    assert all(get(n).needs_gradients for n in EXPECTED)


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("integrated_gradients", {"method": "simpson"}, "riemann_trapezoid, gausslegendre"),
        ("integrated_gradients", {"baseline": "blur"}, "zeros, uniform_gray"),
        ("integrated_gradients", {"n_steps": 1, "method": "riemann_left"}, "n_steps"),
        ("smoothgrad", {"nt_type": "mean"}, "smoothgrad, smoothgrad_sq, vargrad"),
        ("smoothgrad", {"stdevs": -0.1}, "stdevs"),
        ("deeplift_shap", {"baselines": "black"}, "uniform, zeros_and_uniform"),
        ("deeplift_shap", {"n_baselines": 1}, "n_baselines"),
    ],
)
def test_invalid_params_are_rejected_with_valid_values(tiny, name, params, message):
    with pytest.raises(ConfigError, match=message):
        explainers.get(name)(tiny, **params)
