"""DeepLIFT rules, completeness gaps, reused and in-place modules."""

from __future__ import annotations

import pytest
import torch
from captum.attr import DeepLiftShap
from captum.attr._core import deep_lift
from torch import nn

from xaibench.explainers import (
    DeepLiftShapExplainer,
    IntegratedGradientsExplainer,
    register_elementwise_rules,
)
from xaibench.explainers.deeplift_rules import STOCK_RULES, added_rules

from .helpers import images, predicted, seeded, tiny_cnn, wrap

pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"), pytest.mark.kernels]


def test_rules_cover_the_activations_captum_misses():
    classes = register_elementwise_rules()
    for cls in (nn.ReLU6, nn.GELU, nn.SiLU, nn.Hardswish, nn.Hardsigmoid, nn.Mish):
        assert cls not in STOCK_RULES
        assert cls in classes
        assert deep_lift.SUPPORTED_NON_LINEAR[cls] is deep_lift.nonlinear
    # Idempotent, and Captum's own rules (max-pool, softmax) are left alone.
    before = dict(deep_lift.SUPPORTED_NON_LINEAR)
    assert register_elementwise_rules() == classes
    assert deep_lift.SUPPORTED_NON_LINEAR == before
    for cls, rule in STOCK_RULES.items():
        assert deep_lift.SUPPORTED_NON_LINEAR[cls] is rule
    assert set(added_rules()) == set(classes) - set(STOCK_RULES)


def test_rules_cover_timm_activations():
    import timm.layers.activations as timm_act

    classes = register_elementwise_rules()
    for name in ("GELU", "Sigmoid", "Tanh", "Swish", "HardSwish", "HardSigmoid", "Mish", "PReLU"):
        assert getattr(timm_act, name) in classes, name


def test_deeplift_shap_is_complete_on_elementwise_cnn_and_stock_captum_is_not(tiny, monkeypatch):
    x = images(3, 16, seed=4)
    t = predicted(tiny, x)
    explainer = DeepLiftShapExplainer(tiny, n_baselines=4)
    ours = explainer.explain(x, t)
    fixed_gap = explainer.completeness_gap(x, t, ours)
    assert fixed_gap.shape == (3,)
    assert (fixed_gap < 1e-3).all(), fixed_gap

    baselines = explainer.baseline_images((3, 16, 16))
    monkeypatch.setattr(deep_lift, "SUPPORTED_NON_LINEAR", dict(STOCK_RULES))
    stock = DeepLiftShap(tiny).attribute(x, baselines=baselines, target=t)
    stock_gap = explainer.completeness_gap(x, t, stock)
    assert (stock_gap > 0.1).all(), stock_gap
    # Stock Captum hooks nothing in this model, so "DeepLIFT" is gradient × (x − mean b).
    xg = x.clone().requires_grad_()
    tiny(xg).gather(1, t[:, None]).sum().backward()
    torch.testing.assert_close(stock, xg.grad * (x - baselines.mean(0)), rtol=1e-4, atol=1e-6)


def test_deeplift_rescale_matches_hand_computation():
    """Independent oracle: one hidden GELU layer, multipliers Δφ/Δz written out by hand."""
    mlp = seeded(5, lambda: nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 6), nn.GELU(), nn.Linear(6, 3)))
    classifier = wrap(mlp, "mlp", 4, 3, mean=0.0, std=1.0)
    x = images(2, 4, seed=6)
    t = torch.tensor([2, 0])
    explainer = DeepLiftShapExplainer(classifier, n_baselines=3, seed=2)
    ours = explainer.explain(x, t)
    baselines = explainer.baseline_images((3, 4, 4))
    first, second = mlp[1], mlp[3]
    with torch.no_grad():
        expected = torch.zeros_like(x)
        for b in baselines:
            z_x, z_b = first(x.flatten(1)), first(b.flatten()[None])
            multiplier = (nn.functional.gelu(z_x) - nn.functional.gelu(z_b)) / (z_x - z_b)
            weights = second.weight[t] * multiplier  # N×6: output weight × rescale multiplier
            expected += ((weights @ first.weight) * (x.flatten(1) - b.flatten())).view_as(x)
        expected /= len(baselines)
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(("method", "last_gap"), [("riemann_trapezoid", 0.05), ("gausslegendre", 1e-3)])
def test_integrated_gradients_gap_shrinks_with_steps(tiny, method, last_gap):
    x = images(3, 16, seed=8)
    t = predicted(tiny, x)
    gaps = []
    for n_steps in (2, 8, 64):
        explainer = IntegratedGradientsExplainer(tiny, n_steps=n_steps, method=method)
        gaps.append(explainer.completeness_gap(x, t, explainer.explain(x, t)).mean().item())
    assert gaps[0] > gaps[1] > gaps[2], gaps
    assert gaps[2] < min(last_gap, gaps[0] / 10), gaps


def test_integrated_gradients_gap_against_captum_delta(tiny):
    from captum.attr import IntegratedGradients

    x = images(2, 16, seed=9)
    t = predicted(tiny, x)
    explainer = IntegratedGradientsExplainer(tiny, n_steps=16, baseline="uniform_gray")
    a = explainer.explain(x, t)
    _, delta = IntegratedGradients(tiny).attribute(
        x, baselines=0.5, target=t, n_steps=16, return_convergence_delta=True
    )
    with torch.no_grad():
        scale = (tiny(x) - tiny(torch.full_like(x, 0.5))).gather(1, t[:, None]).squeeze(1)
    torch.testing.assert_close(explainer.completeness_gap(x, t, a), delta.abs() / scale.abs(), rtol=1e-3, atol=1e-6)


def test_inplace_activations_give_the_same_attributions():
    out_of_place = wrap(seeded(0, tiny_cnn), "tiny", 16, 5)
    in_place = wrap(seeded(0, lambda: tiny_cnn(inplace=True)), "tiny_inplace", 16, 5)
    x = images(2, 16)
    t = predicted(out_of_place, x)
    a = DeepLiftShapExplainer(out_of_place, n_baselines=3).explain(x, t)
    b = DeepLiftShapExplainer(in_place, n_baselines=3).explain(x, t)
    torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


class _ReusesActivation(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.shared_act = nn.ReLU6()
        self.head = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.shared_act(self.conv1(x))
        x = self.shared_act(self.conv2(x))  # the same module twice: DeepLIFT cannot track it
        return self.head(x.mean((2, 3)))


def test_reused_module_is_refused_with_its_name():
    classifier = wrap(seeded(0, _ReusesActivation), "reuser", 8, 3)
    explainer = DeepLiftShapExplainer(classifier, n_baselines=2)
    with pytest.raises(ValueError, match=r"model\.shared_act"):
        explainer.explain(images(1, 8), torch.tensor([0]))


def test_declared_reused_modules_are_refused_at_construction(tiny):
    classifier = wrap(seeded(0, tiny_cnn), "declared", 16, 5)
    classifier.reused_modules = ["model.1", "model.5"]
    with pytest.raises(ValueError, match=r"model\.1, model\.5"):
        DeepLiftShapExplainer(classifier)
    # Methods that only need input gradients are unaffected.
    IntegratedGradientsExplainer(classifier, n_steps=2).explain(images(1, 16), torch.tensor([0]))


class _Pattern(nn.Module):
    """Patterns stock Captum gets wrong: adjacent hooked modules, an input used twice."""

    def __init__(self, pattern: str, inplace: bool = False) -> None:
        super().__init__()
        self.pattern = pattern
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.gelu = nn.GELU()
        self.relu6 = nn.ReLU6(inplace=inplace)
        self.pool = nn.MaxPool2d(2)  # non-overlapping windows: Captum's max-pool rule is exact
        self.head = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        if self.pattern == "adjacent":
            z = self.relu6(self.gelu(y))
        elif self.pattern == "relu_then_maxpool":
            z = self.pool(self.relu6(y))
        else:  # "input_reused": the activation's input also feeds a skip connection
            z = self.gelu(y) + y
        return self.head(z.mean((2, 3)))


@pytest.mark.parametrize("pattern", ["adjacent", "relu_then_maxpool", "input_reused"])
def test_clone_hooks_fix_captum_hook_placement(pattern):
    classifier = wrap(seeded(0, lambda: _Pattern(pattern)), pattern, 8, 3)
    x = images(3, 8, seed=10)
    t = predicted(classifier, x)
    explainer = DeepLiftShapExplainer(classifier, n_baselines=3)
    ours = explainer.explain(x, t)
    assert (explainer.completeness_gap(x, t, ours) < 1e-3).all()
    # Stock Captum, same rules and baselines: the hook on the shared input tensor breaks it.
    captum = DeepLiftShap(classifier).attribute(x, baselines=explainer.baseline_images((3, 8, 8)), target=t)
    assert (explainer.completeness_gap(x, t, captum) > 0.05).all()


def test_clone_hooks_with_inplace_modules():
    x = images(2, 8, seed=11)
    out = wrap(seeded(0, lambda: _Pattern("relu_then_maxpool")), "a", 8, 3)
    inp = wrap(seeded(0, lambda: _Pattern("relu_then_maxpool", inplace=True)), "b", 8, 3)
    t = predicted(out, x)
    a = DeepLiftShapExplainer(out, n_baselines=3).explain(x, t)
    b = DeepLiftShapExplainer(inp, n_baselines=3).explain(x, t)
    torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_inplace_relus_in_timm_resnet(resnet18):
    """timm's ResNet uses ReLU(inplace=True) and adds in place; a copy without either agrees."""
    import copy

    plain = copy.deepcopy(resnet18)
    for module in plain.modules():
        if isinstance(module, nn.ReLU):
            module.inplace = False
    x = images(2, 32, seed=12)
    t = predicted(resnet18, x)
    a = DeepLiftShapExplainer(resnet18, n_baselines=2).explain(x, t)
    b = DeepLiftShapExplainer(plain, n_baselines=2).explain(x, t)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6 * float(a.abs().max()))
