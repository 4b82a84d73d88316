"""The FPA suites' estimators are the FPA paper's (seed 003, appendix B).

IG: ``e = (x − x⁰) × Σ_{k=1..m} ∂S_c(x⁰ + k/m·(x − x⁰))/∂x × 1/m`` with ``x⁰`` a black image
and ``m = 200``; SmoothGrad, SG′ and SQ-SG with ``n = 15``. The IG oracle is that sum, written
out here one step at a time in float64.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import torch

from xaibench.explainers.integrated_gradients import IntegratedGradientsExplainer
from xaibench.registry import explainers

from .helpers import images, predicted, seeded, tiny_cnn, wrap

SUITES = Path(__file__).resolve().parents[2] / "xaibench" / "suites"


def fpa_ig(classifier, x: torch.Tensor, target: torch.Tensor, m: int) -> torch.Tensor:  # type: ignore[no-untyped-def]
    baseline = torch.zeros_like(x)
    total = torch.zeros_like(x)
    for k in range(1, m + 1):
        point = (baseline + k / m * (x - baseline)).requires_grad_(True)
        score = classifier(point).gather(1, target.view(-1, 1)).sum()
        (grad,) = torch.autograd.grad(score, point)
        total += grad
    return (x - baseline) * total / m


def test_riemann_right_ig_is_the_papers_sum() -> None:
    classifier = wrap(seeded(7, tiny_cnn), "tiny_cnn", 16, 5).double()
    x = images(3, 16, seed=50).double()
    y = predicted(classifier, x)
    a = IntegratedGradientsExplainer(classifier, n_steps=200, method="riemann_right", baseline="zeros").explain(x, y)
    expected = fpa_ig(classifier, x, y, 200)
    # float64 throughout; the explainer returns float32: one float32 rounding of each value.
    torch.testing.assert_close(a.double(), expected, rtol=1e-6, atol=1e-7 * float(expected.abs().max()))
    # The left sum (k = 0 … m − 1) differs: the rule matters and is the right one.
    left = IntegratedGradientsExplainer(classifier, n_steps=200, method="riemann_left").explain(x, y).double()
    assert not torch.allclose(left, expected, rtol=1e-6, atol=1e-7 * float(expected.abs().max()))


@pytest.mark.parametrize("suite", ["fpa-fidelity.toml", "fpa-fidelity-gray.toml"])
def test_fpa_suites_use_the_papers_settings(suite: str) -> None:
    config = tomllib.loads((SUITES / suite).read_text())
    by_label = {e["label"]: e for e in config["explainers"]}
    ig = by_label["IG"]
    assert (ig["name"], ig["n_steps"], ig["method"], ig.get("baseline", "zeros")) == (
        "integrated_gradients", 200, "riemann_right", "zeros")
    for label in ("SG", "SG'", "SQ-SG"):
        assert by_label[label]["nt_samples"] == 15, label
    for spec in config["explainers"]:  # every entry still builds
        params = {k: v for k, v in spec.items() if k not in ("name", "label")}
        assert {p.name for p in explainers.params(spec["name"])} >= set(params), spec["label"]
