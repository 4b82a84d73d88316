"""AGI: the spec's numeric checks (spec §6), class lists, batching and pass counts."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from xaibench.errors import ConfigError
from xaibench.explainers.agi import AGIExplainer, reference_classes
from xaibench.registry import explainers

from .counting import Counting
from .helpers import images, predicted, seeded, tiny_cnn, wrap
from .rounding import U32, amplification, excess, float64_spread

PAPER_LIST = [58, 429, 135, 338, 220, 412, 312, 601, 866, 364, 250, 797, 867, 487, 724, 527, 416, 688, 267, 875]


@pytest.fixture(scope="module")
def tiny64():
    return wrap(seeded(0, tiny_cnn), "tiny_cnn", 16, 5).double()


def probability_gradient(classifier: nn.Module, x: torch.Tensor, cls: torch.Tensor) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    p = torch.softmax(classifier(x), 1)[torch.arange(x.shape[0]), cls].sum()
    (grad,) = torch.autograd.grad(p, x)
    return grad


class MeanThreshold(nn.Module):
    """Two classes: class 1 wins once the mean pixel exceeds ``threshold`` (early-stop toy)."""

    def __init__(self, threshold: float):
        super().__init__()
        self.threshold = threshold

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z1 = 100.0 * (x.mean(dim=(1, 2, 3)) - self.threshold)
        return torch.stack([torch.zeros_like(z1), z1], dim=1)


def test_reference_class_list_is_the_papers():
    assert reference_classes(1000, 20) == PAPER_LIST
    classifier = wrap(nn.Identity(), "wide", 4, 1000)
    explainer = AGIExplainer(classifier)
    c = torch.tensor([58, 3, 875])
    table, valid = explainer.class_table(torch.zeros(3, 3, 4, 4), c)
    assert table[0].tolist() == [59, *PAPER_LIST[1:]]  # the predicted class becomes t + 1
    assert table[1].tolist() == PAPER_LIST
    assert table[2].tolist() == [*PAPER_LIST[:-1], 876]
    assert bool(valid.all())


@pytest.mark.parametrize("classes", ["reference", "sampled", "spaced", [0, 2, 4]])
def test_class_list_never_contains_the_explained_class(classes):
    classifier = wrap(seeded(0, tiny_cnn), "tiny_cnn", 16, 5)
    explainer = AGIExplainer(classifier, topk=3, classes=classes)
    c = torch.tensor([0, 1, 2, 3, 4])
    x = images(5, 16, seed=1)
    table, valid = explainer.class_table(x, c)
    assert not bool(((table == c.unsqueeze(1)) & valid).any())
    if classes == "sampled":
        assert all(len(set(row)) == 3 for row in table.tolist())
        again, _ = explainer.class_table(x, c)
        assert torch.equal(table, again)
        other, _ = AGIExplainer(classifier, topk=3, classes=classes, seed=1).class_table(x, c)
        assert not torch.equal(table, other)


def test_output_contract(tiny):
    x = images(2, 16, seed=2)
    before = x.clone()
    state = torch.get_rng_state()
    a = AGIExplainer(tiny, max_iter=3, topk=3).explain(x, predicted(tiny, x))
    assert torch.equal(torch.get_rng_state(), state)
    assert a.shape == x.shape and a.dtype == torch.float32 and not a.requires_grad
    assert torch.isfinite(a).all() and float(a.abs().sum()) > 0
    assert torch.equal(x, before) and x.grad is None
    assert all(p.grad is None for p in tiny.parameters())


def test_one_step_oracle(tiny64):
    # M = 1, reference path: A = Σ_t −∇p_c(x) ⊙ (clip(x + ε·sign ∇p_t(x)) − x).
    x = images(3, 16, seed=3).double()
    c = predicted(tiny64, x)
    classes = [0, 1, 2, 3, 4]
    a = AGIExplainer(tiny64, max_iter=1, classes=classes).explain(x, c).double()
    grad_c = probability_gradient(tiny64, x, c)
    expected = torch.zeros_like(x)
    for k in classes:
        t = torch.full_like(c, k)
        step = (x + 0.05 * probability_gradient(tiny64, x, t).sign()).clamp(0, 1) - x
        expected += (t != c).double().view(-1, 1, 1, 1) * (-grad_c * step)
    torch.testing.assert_close(a, expected, rtol=1e-5, atol=1e-6 * float(expected.abs().max()))


def test_cumulative_path_small_eps_integrates_the_probability(tiny64):
    # Per class, a left Riemann sum along the path: Σ acc ≈ p_c(x) − p_c(x_M).
    x = images(3, 16, seed=4).double()
    c = predicted(tiny64, x)
    rows = torch.arange(3)
    for k in (1, 2, 3):
        a = AGIExplainer(tiny64, epsilon=1e-3, max_iter=10, classes=[k], path="cumulative").explain(x, c)
        t = torch.full_like(c, k)
        x_m = x.clone()
        for _ in range(10):
            x_m = (x_m + 1e-3 * probability_gradient(tiny64, x_m, t).sign()).clamp(0, 1)
        with torch.no_grad():
            drop = torch.softmax(tiny64(x), 1)[rows, c] - torch.softmax(tiny64(x_m), 1)[rows, c]
        total = a.double().flatten(1).sum(1)
        torch.testing.assert_close(total, drop, rtol=0, atol=0.05 * float(drop.abs().max()))


def test_reference_path_stays_in_the_eps_ball(tiny):
    counting = Counting(tiny, keep_inputs=True)
    x = images(2, 16, seed=5)
    AGIExplainer(counting, max_iter=4, classes=[1, 2, 3]).explain(x, predicted(tiny, x))
    origin = x.repeat_interleave(3, dim=0)
    assert len(counting.inputs) == 1 + 4  # the prediction, then one forward per iteration
    for inputs in counting.inputs[1:]:
        assert float((inputs - origin).abs().max()) <= 0.05 + 1e-6
        assert float(inputs.min()) >= 0.0 and float(inputs.max()) <= 1.0


def test_early_stop_after_the_target_class_is_reached():
    # Cumulative path from a flat 0.3 image, ε = 0.01: the mean passes 0.335 after 4 steps, so
    # 4 deltas are accumulated and the 5th forward sees class 1 and ends the loop.
    classifier = wrap(MeanThreshold(0.335), "threshold", 4, 2, mean=0.0, std=1.0)
    x = torch.full((1, 3, 4, 4), 0.3)
    target = torch.zeros(1, dtype=torch.long)

    def run(max_iter: int) -> tuple[torch.Tensor, int]:
        counting = Counting(classifier)
        explainer = AGIExplainer(counting, epsilon=0.01, max_iter=max_iter, classes=[1], path="cumulative")
        return explainer.explain(x, target), counting.forward_rows

    a20, forwards20 = run(20)
    a4, forwards4 = run(4)
    a3, _ = run(3)
    torch.testing.assert_close(a20, a4, rtol=0, atol=0)
    assert not torch.allclose(a4, a3)
    assert (forwards20, forwards4) == (1 + 5, 1 + 4)


@pytest.mark.kernels
def test_batch_equals_single_images_in_float64(tiny, tiny64):
    """Batch = single images = reversed batch = classes in chunks, to float64 rounding.

    Not bit-equality: kernels differ per batch shape and per CPU (docs/testing.md). Error
    analysis: runs that differ only in summation order take the same sign steps and stop at
    the same iterations (a flip would move A by ~ε·|∇p_c|, far outside the bound), so A is
    the same sum of topk·max_iter terms −∇p_c(x')⊙d with |d| ≤ ε, and
    |ΔA| ≤ ε·topk·max_iter·max|Δ∇p_c|. The rounding error of ∇p_c is measured by precision
    switching (float32 and float64 gradients of every class probability at x):
    E = max|Δ∇p|/u32; in float64 each run is within PATTERN·u64·E. ``explain`` returns
    float32: rounding moves each value by ≤ u32·|A|, so the results may differ by 2·u32·|A| more.
    """
    x = images(4, 16, seed=6).double()
    c = predicted(tiny64, x)
    topk, max_iter, epsilon = 3, 3, 0.05
    measured = torch.stack([
        amplification(
            probability_gradient(tiny, x.float(), k.expand(4)), probability_gradient(tiny64, x, k.expand(4))
        )
        for k in torch.arange(5)
    ]).max(dim=0).values
    bound = float64_spread(measured, epsilon * topk * max_iter)
    explainer = AGIExplainer(tiny64, epsilon=epsilon, max_iter=max_iter, topk=topk)
    batch = explainer.explain(x, c)
    assert float(bound.max()) < 1e-10 * float(batch.abs().max())  # rounding level: the checks have teeth
    bound = bound + 2 * U32 * batch.double().abs()
    chunked = AGIExplainer(tiny64, epsilon=epsilon, max_iter=max_iter, topk=topk, classes_batch_size=2)
    others = {
        "single images": torch.cat([explainer.explain(x[i : i + 1], c[i : i + 1]) for i in range(4)]),
        "reversed batch": explainer.explain(x.flip(0), c.flip(0)).flip(0),
        "classes in chunks of 2": chunked.explain(x, c),
    }
    for what, other in others.items():
        assert excess(other, batch, bound) <= 0, what


def test_pass_counts(tiny):
    counting = Counting(tiny)
    x = images(2, 16, seed=7)
    c = predicted(tiny, x)
    explainer = AGIExplainer(counting, epsilon=1e-3, max_iter=4, classes=[1, 2, 3], classes_batch_size=2)
    explainer.explain(x, c)
    # No row reaches its class with ε = 1e-3: K·M forwards and 2·K·M backwards per image.
    assert counting.forward_rows == 2 + 2 * 3 * 4
    assert counting.backward_rows == 2 * 2 * 3 * 4


def test_explained_class_target_uses_the_given_target(tiny64):
    x = images(2, 16, seed=8).double()
    c = predicted(tiny64, x)
    other = (c + 1) % 5
    by_target = AGIExplainer(tiny64, max_iter=2, topk=2, explained_class="target")
    by_prediction = AGIExplainer(tiny64, max_iter=2, topk=2)
    torch.testing.assert_close(by_prediction.explain(x, other), by_target.explain(x, c))
    assert not torch.allclose(by_target.explain(x, other), by_target.explain(x, c))


def test_registered_with_reference_defaults(tiny):
    expected = {
        "epsilon": 0.05,
        "max_iter": 20,
        "topk": 20,
        "classes": "reference",
        "path": "reference",
        "explained_class": "predicted",
        "seed": 0,
        "classes_batch_size": None,
    }
    specs = explainers.params("agi")
    assert {p.name: p.default for p in specs} == expected
    assert all(not p.required and p.type_name != "any" for p in specs)
    cls = explainers.get("agi")
    assert cls.needs_gradients and cls.multiplies_by_inputs and not cls.is_random
    assert not cls.uses_baseline and not cls.has_completeness
    explainer = cls(tiny)
    resolved = explainers.resolved_params("agi", {})
    assert explainer.name == "agi" and {"explainer": explainer.name, **resolved} == {"explainer": "agi", **expected}
    json.dumps(explainers.resolved_params("agi", {"classes": [1, 2]}))


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"classes": "top"}, "reference, sampled, spaced"),
        ({"classes": [7]}, r"\[0, 5\)"),
        ({"path": "straight"}, "reference, cumulative"),
        ({"explained_class": "label"}, "predicted, target"),
        ({"epsilon": 0.0}, "epsilon"),
        ({"max_iter": 0}, "max_iter"),
    ],
)
def test_invalid_params_are_rejected(tiny, params, message):
    with pytest.raises(ConfigError, match=message):
        AGIExplainer(tiny, **params)
