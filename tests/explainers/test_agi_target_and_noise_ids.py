"""AGI explains a *given* class on request, and its random classes follow ``noise_ids``.

The oracle is a slow, one-image-one-class-at-a-time port of AGI's reference loop written
here: for each false class ``t`` (the explained class ``y`` left out), from ``x' = x``
repeat ``max_iter`` times — stop once ``argmax f(x') = t``; else step
``x_new = clip(x + ε·sign ∇p_t(x'))`` and accumulate ``−∇p_y(x') ⊙ (x_new − x)``.
"""

from __future__ import annotations

import pytest
import torch

from xaibench.explainers.agi import AGIExplainer, reference_classes
from xaibench.types import Classifier

from .helpers import images, predicted, seeded, tiny_cnn, wrap


@pytest.fixture(scope="module")
def tiny64() -> Classifier:
    return wrap(seeded(3, tiny_cnn), "tiny_cnn", 16, 5).double()


def slow_agi(classifier, x, explained: int, classes, epsilon: float, max_iter: int) -> torch.Tensor:  # type: ignore[no-untyped-def]
    """Reference path, one image (1×C×H×W) and one class at a time, float64."""
    total = torch.zeros_like(x)
    for t in classes:
        if t == explained:
            continue
        x_prime = x.clone()
        for _ in range(max_iter):
            leaf = x_prime.clone().requires_grad_(True)
            logits = classifier(leaf)
            if int(logits.argmax(1)) == t:
                break
            probs = torch.softmax(logits, 1)[0]
            (grad_t,) = torch.autograd.grad(probs[t], leaf, retain_graph=True)
            (grad_y,) = torch.autograd.grad(probs[explained], leaf)
            x_new = (x + epsilon * grad_t.sign()).clamp(0, 1)
            total += -grad_y * (x_new - x)
            x_prime = x_new.detach()
    return total


def test_target_mode_explains_the_given_class_like_the_slow_reference(tiny64):
    x = images(3, 16, seed=40).double()
    c = predicted(tiny64, x)
    classes = [0, 1, 2, 3, 4]
    explainer = AGIExplainer(tiny64, epsilon=0.02, max_iter=3, classes=classes, explained_class="target")
    results = {}
    for shift in (0, 1, 2):
        y = (c + shift) % 5  # shift 0: the prediction; otherwise another class
        a = explainer.explain(x, y).double()
        expected = torch.cat([
            slow_agi(tiny64, x[i : i + 1], int(y[i]), classes, 0.02, 3) for i in range(3)
        ])
        scale = float(expected.abs().max())
        torch.testing.assert_close(a, expected, rtol=1e-5, atol=1e-6 * scale)
        results[shift] = a
    # Different targets give different maps; the default mode ignores the target and explains
    # the prediction (the paper's behaviour).
    assert not torch.allclose(results[1], results[0], rtol=1e-3, atol=1e-6)
    assert not torch.allclose(results[2], results[1], rtol=1e-3, atol=1e-6)
    by_prediction = AGIExplainer(tiny64, epsilon=0.02, max_iter=3, classes=classes)
    torch.testing.assert_close(by_prediction.explain(x, (c + 1) % 5).double(), results[0], rtol=0, atol=0)


def test_target_mode_keeps_the_target_out_of_the_reference_list():
    """The reference substitutes ``t + 1`` for a listed class equal to the explained class:
    with ``explained_class="target"`` that is the target, not the prediction."""
    classifier = wrap(torch.nn.Identity(), "wide", 4, 1000)
    listed = reference_classes(1000, 20)
    explainer = AGIExplainer(classifier, explained_class="target")
    table, valid = explainer.class_table(torch.zeros(2, 3, 4, 4), torch.tensor([listed[3], 7]))
    assert table[0, 3] == listed[3] + 1 and table[0].tolist()[:3] == listed[:3]
    assert table[1].tolist() == listed and bool(valid.all())


def test_same_noise_ids_draw_the_same_classes_for_slightly_different_images(tiny):
    x = images(2, 16, seed=41)
    corrupted = (x + 1e-3 * images(2, 16, seed=42)).clamp(0, 1)
    c = torch.tensor([1, 3])
    explainer = AGIExplainer(tiny, topk=3, classes="sampled", seed=5)
    ids = ["img-a", "img-b"]
    with_ids, _ = explainer.class_table(x, c, ids)
    assert torch.equal(explainer.class_table(corrupted, c, ids)[0], with_ids)
    # Content-seeded draws (no ids) move with the pixels; other ids draw other classes.
    assert not torch.equal(explainer.class_table(corrupted, c)[0], explainer.class_table(x, c)[0])
    assert not torch.equal(explainer.class_table(x, c, ["img-c", "img-d"])[0], with_ids)
    # The same id in one batch: the same classes for both rows (the explained classes agree).
    same, _ = explainer.class_table(torch.cat([x[:1], corrupted[:1]]), c[:1].repeat(2), ["img-a", "img-a"])
    assert torch.equal(same[0], same[1]) and torch.equal(same[0], with_ids[0])
    with pytest.raises(ValueError, match="noise_ids"):
        explainer.class_table(x, c, ["only-one"])


def test_explain_uses_the_noise_ids(tiny64):
    """``explain(x, y, noise_ids)`` integrates exactly the classes its ids draw: it equals AGI
    with that explicit class list, one image at a time. float64 model, so the batch and the
    single image differ only by float64 summation order (~1e-16 relative, no sign step can
    flip); the float32 output adds one rounding: rtol 1e-6."""
    x = images(2, 16, seed=43).double()
    y = predicted(tiny64, x)
    sampled = AGIExplainer(tiny64, max_iter=2, topk=2, classes="sampled", seed=5)
    ids = ["a", "b"]
    table, _ = sampled.class_table(x, y, ids)
    a = sampled.explain(x, y, noise_ids=ids)
    for i in range(2):
        fixed = AGIExplainer(tiny64, max_iter=2, classes=table[i].tolist()).explain(x[i : i + 1], y[i : i + 1])
        torch.testing.assert_close(a[i : i + 1], fixed, rtol=1e-6, atol=1e-9 * float(a.abs().max()))
    assert not torch.allclose(sampled.explain(x, y, noise_ids=["c", "d"]), a)
