"""AttEXplore, AGI and the FPA variants on real architectures (one module: fixtures built once)."""

from __future__ import annotations

import time

import pytest
import torch

from xaibench.explainers import AGIExplainer, AttExploreExplainer
from xaibench.registry import explainers

from .counting import Counting
from .helpers import images, predicted

FPA_SMALL = {"sq_smoothgrad": {"nt_samples": 2}, "input_x_gradient": {}, "input_x_smoothgrad": {"nt_samples": 2}}


@pytest.mark.parametrize("fixture", ["resnet18", "vit"])
def test_attexplore_real_architectures(fixture, request):
    classifier = request.getfixturevalue(fixture)
    x = images(1, 32, seed=1)
    trace = AttExploreExplainer(classifier, N=2, num_steps=2, di_prob=1.0).trace(x, predicted(classifier, x))
    # DI's 36×36 input: the CNN takes it, the fixed-size ViT gets the resize-back variant.
    assert trace.di_mode == ("pad" if fixture == "resnet18" else "pad_resize_back")
    a = trace.attributions
    assert a.shape == x.shape and torch.isfinite(a).all() and float(a.min()) >= -1e-7
    assert float(a.abs().sum()) > 0


@pytest.mark.parametrize("fixture", ["resnet18", "vit"])
def test_agi_real_architectures(fixture, request):
    classifier = request.getfixturevalue(fixture)
    x = images(1, 32, seed=2)
    a = AGIExplainer(classifier, max_iter=2, topk=2).explain(x, predicted(classifier, x))
    assert a.shape == x.shape and torch.isfinite(a).all() and float(a.abs().sum()) > 0


@pytest.mark.parametrize("name", sorted(FPA_SMALL))
@pytest.mark.parametrize("fixture", ["resnet18", "vit"])
def test_fpa_variants_real_architectures(fixture, name, request):
    classifier = request.getfixturevalue(fixture)
    x = images(1, 32, seed=3)
    a = explainers.get(name)(classifier, **FPA_SMALL[name]).explain(x, predicted(classifier, x))
    assert a.shape == x.shape and torch.isfinite(a).all()


@pytest.mark.slow
def test_attexplore_and_agi_on_lite0_at_224(lite0):
    x = images(1, 224, seed=4)
    t = predicted(lite0, x)
    counting = Counting(lite0)
    start = time.perf_counter()
    a = AttExploreExplainer(counting, N=2, num_steps=2).explain(x, t)
    seconds = time.perf_counter() - start
    assert a.shape == x.shape and torch.isfinite(a).all() and float(a.min()) >= -1e-7
    # 2 steps × 2 samples, plus the one-image probe that checks Lite0 accepts 257×257.
    assert counting.forward_rows == 4 + 1 and counting.backward_rows == 4
    assert seconds < 120
    b = AGIExplainer(lite0, max_iter=2, topk=2).explain(x, t)
    assert b.shape == x.shape and torch.isfinite(b).all()
