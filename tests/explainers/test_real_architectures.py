"""All four explainers on timm architectures (random weights): shapes, finiteness, gaps."""

from __future__ import annotations

import pytest
import torch
from captum.attr import DeepLiftShap
from captum.attr._core import deep_lift

from xaibench.explainers.deeplift_rules import STOCK_RULES
from xaibench.registry import explainers

from .helpers import images, predicted

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

CHEAP = {
    "saliency": {},
    "integrated_gradients": {"n_steps": 4},
    "smoothgrad": {"nt_samples": 2},
    "deeplift_shap": {"n_baselines": 2},
    "deeplift": {},
}


def _run_all(classifier, x):  # type: ignore[no-untyped-def]
    t = predicted(classifier, x)
    gaps = {}
    for name, params in CHEAP.items():
        explainer = explainers.get(name)(classifier, **params)
        a = explainer.explain(x, t)
        assert a.shape == x.shape and a.dtype == torch.float32, name
        assert torch.isfinite(a).all(), name
        assert a.abs().sum() > 0, name
        gap = explainer.completeness_gap(x, t, a)
        if explainer.has_completeness:
            assert gap is not None and gap.shape == (x.shape[0],) and torch.isfinite(gap).all()
            gaps[name] = gap
        else:
            assert gap is None
    return gaps


def test_resnet18(resnet18):
    # timm's ResNet has in-place ReLUs and a max-pool; Captum's max-pool rule is approximate.
    _run_all(resnet18, images(2, 32))


def test_vit(vit):
    # The exact rules (LayerNorm, softmax, attention matmuls) make DeepLIFT complete on ViTs
    # (tests/explainers/test_deeplift_exact.py has the rules themselves); IG converges.
    x = images(2, 32)
    gaps = _run_all(vit, x)
    assert (gaps["deeplift_shap"] < 1e-3).all() and (gaps["deeplift"] < 1e-3).all(), gaps
    t = predicted(vit, x)
    explainer = explainers.get("integrated_gradients")(vit, n_steps=32)
    assert (explainer.completeness_gap(x, t, explainer.explain(x, t)) < 0.05).all()


@pytest.mark.slow
def test_efficientnet_lite0_all_explainers(lite0):
    _run_all(lite0, images(1, 224))


@pytest.mark.slow
def test_efficientnet_lite0_deeplift_complete_only_with_rules(lite0, monkeypatch):
    """Lite0 is convs, eval BatchNorm, ReLU6, adds and average pooling: rescale is exact."""
    x = images(1, 224, seed=1)
    t = predicted(lite0, x)
    explainer = explainers.get("deeplift_shap")(lite0, n_baselines=2)
    fixed_gap = explainer.completeness_gap(x, t, explainer.explain(x, t))
    assert (fixed_gap < 1e-3).all(), fixed_gap
    baselines = explainer.baseline_images((3, 224, 224))
    monkeypatch.setattr(deep_lift, "SUPPORTED_NON_LINEAR", dict(STOCK_RULES))
    stock = DeepLiftShap(lite0).attribute(x, baselines=baselines, target=t)
    stock_gap = explainer.completeness_gap(x, t, stock)
    assert (stock_gap > 0.1).all(), stock_gap
