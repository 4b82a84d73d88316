"""``protocol="attexplore_reference"`` against a literal port of AttEXplore's ``CausalMetric``.

specs/attexplore.md §5.3 and the sanity checks of its §6 ("Reference insertion/deletion
mode"): zeros substrate for both games, per-channel ranking by raw signed value, the union of
the channels' blocks written in all channels at each step, softmax probability of the
predicted class, trapezoid AUC ``(Σ − s0/2 − s_last/2)/(len − 1)``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xaibench.metrics import Deletion, Insertion

from .faithfulness_helpers import CountingForward, TinyNet, inputs

pytestmark = pytest.mark.kernels


def causal_metric_reference(model: torch.nn.Module, img: np.ndarray, explanation: np.ndarray, mode: str, step: int) -> np.ndarray:
    """One image, one step at a time, exactly as ``CausalMetric.single_run`` writes it.

    ``img`` is ``1×3×H×W`` in [0, 1], ``explanation`` is ``3×H×W`` (not reduced). Ties are not
    exercised (the test maps are tie-free), so numpy's reversed argsort is the canonical order.
    """
    _, channels, height, width = img.shape
    hw = height * width

    def probs(image: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return torch.softmax(model(torch.from_numpy(image)), dim=1).numpy()

    top = int(np.argmax(probs(img), -1)[0])
    n_steps = (hw + step - 1) // step
    salient_order = np.flip(np.argsort(explanation.reshape(-1, hw), axis=1), axis=-1)
    substrate = np.zeros_like(img)
    if mode == "del":
        start, finish = img.copy(), substrate
    else:
        start, finish = substrate, img.copy()
    scores = np.empty(n_steps + 1)
    for i in range(n_steps + 1):
        scores[i] = probs(start)[0, top]
        if i < n_steps:
            coords = salient_order[:, step * i : step * (i + 1)]
            start.reshape(1, channels, hw)[0, :, coords] = finish.reshape(1, channels, hw)[0, :, coords]
    return scores


def reference_auc(scores: np.ndarray) -> float:
    return float((scores.sum() - scores[0] / 2 - scores[-1] / 2) / (scores.shape[0] - 1))


@pytest.mark.parametrize("mode", ["del", "ins"])
@pytest.mark.parametrize("steps,step", [(26, 10), (224, 2), (5, 52)])
def test_reference_protocol_equals_literal_port(mode: str, steps: int, step: int) -> None:
    """Curves and AUCs equal the literal loop (atol 1e-6: identical float32 images, only the
    forward's batch composition differs). The channels' rankings disagree (independent random
    maps), so most pixels change before their own turn — the union behaviour is exercised.
    ``steps`` is chosen so that ``ceil(256/steps)`` is the port's ``step`` (pixels per step)."""
    model = TinyNet(seed=7)
    x, a = inputs(n=3, size=16, seed=8)
    with torch.no_grad():
        predicted = model(x).argmax(1)
    metric_cls = Deletion if mode == "del" else Insertion
    result = metric_cls(steps=steps, protocol="attexplore_reference").evaluate(
        CountingForward(model), x, a, predicted, seeds=[0, 0, 0], chunk_size=16
    )
    curves = result.curves[metric_cls.name].numpy()
    for i in range(3):
        expected = causal_metric_reference(model, x[i : i + 1].numpy(), a[i].numpy(), mode, step)
        assert curves[i].shape == expected.shape
        np.testing.assert_allclose(curves[i], expected, atol=1e-6, rtol=0)
        assert result.scores[i].item() == pytest.approx(reference_auc(expected), abs=1e-6)
    np.testing.assert_allclose(result.curve_x.numpy(), np.linspace(0.0, 1.0, curves.shape[1]))


def test_reference_curve_length_at_224_and_constant_curve_auc() -> None:
    """A 224×224 image with the default 224 steps gives 225 points (224 positions per step);
    a constant model output gives AUC equal to that constant (both protocols, both games)."""
    probability = torch.tensor([0.1, 0.6, 0.3])

    def constant(x: torch.Tensor) -> torch.Tensor:
        return probability.log().expand(x.shape[0], 3)

    x = torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    a = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    for metric in (
        Deletion(protocol="attexplore_reference"),
        Insertion(protocol="attexplore_reference"),
        Deletion(),
        Insertion(),
    ):
        result = metric.evaluate(constant, x, a, torch.tensor([1]), seeds=[0], chunk_size=64)
        assert result.curves[metric.name].shape == (1, 225)
        assert result.forward_images == 225
        assert result.scores.item() == pytest.approx(0.6, abs=1e-6)


def _recorded_images(model: torch.nn.Module):  # type: ignore[no-untyped-def]
    seen: list[torch.Tensor] = []

    def forward(x: torch.Tensor) -> torch.Tensor:
        seen.append(x.clone())
        with torch.no_grad():
            return model(x)

    return forward, seen


def test_channel_identical_attribution_changes_exactly_step_pixels() -> None:
    """With the same map in every channel, each step changes exactly ``step`` pixel positions;
    deletion starts at p(x), insertion ends at p(x); and the reference equals the default
    protocol's zero-baseline game (with ``abs``, for a non-negative map)."""
    model = TinyNet(seed=9)
    x, a = inputs(n=2, size=16, seed=10)
    x = x * 0.8 + 0.1  # no pixel is already 0, so every change is visible
    a = a[:, :1].abs().expand(-1, 3, -1, -1).contiguous()
    with torch.no_grad():
        predicted = model(x).argmax(1)
        p_clean = torch.softmax(model(x), 1).gather(1, predicted.view(-1, 1)).squeeze(1).double()
    forward, seen = _recorded_images(model)
    reference = Deletion(steps=32, protocol="attexplore_reference").evaluate(forward, x, a, predicted, seeds=[0, 0])
    images = torch.cat(seen).view(2, 33, 3, 16, 16)
    changed = (images[:, 1:] != images[:, :-1]).any(dim=2).flatten(2).sum(dim=2)
    assert (changed == 8).all()  # ceil(256/32) = 8 positions per step, never more
    np.testing.assert_allclose(reference.curves["deletion"][:, 0].numpy(), p_clean.numpy(), atol=1e-6)

    default = Deletion(steps=32).evaluate(CountingForward(model), x, a, predicted, seeds=[0, 0])
    np.testing.assert_allclose(reference.curves["deletion"].numpy(), default.curves["deletion"].numpy(), atol=1e-6)
    np.testing.assert_allclose(reference.scores.numpy(), default.scores.numpy(), atol=1e-6)

    inserted = Insertion(steps=32, protocol="attexplore_reference").evaluate(
        CountingForward(model), x, a, predicted, seeds=[0, 0]
    )
    np.testing.assert_allclose(inserted.curves["insertion"][:, -1].numpy(), p_clean.numpy(), atol=1e-6)
    zeros = Insertion(steps=32, canvas="zeros").evaluate(CountingForward(model), x, a, predicted, seeds=[0, 0])
    np.testing.assert_allclose(inserted.curves["insertion"].numpy(), zeros.curves["insertion"].numpy(), atol=1e-6)


def test_disagreeing_channels_finish_early() -> None:
    """When the channels rank pixels differently, the union replaces the whole image long
    before the last step; afterwards the deletion curve sits at p(black) (§5.3)."""
    model = TinyNet(seed=11)
    x, a = inputs(n=1, size=16, seed=12)
    forward, seen = _recorded_images(model)
    with torch.no_grad():
        predicted = model(x).argmax(1)
    result = Deletion(steps=16, protocol="attexplore_reference").evaluate(forward, x, a, predicted, seeds=[0])
    images = torch.cat(seen)
    all_black = (images == 0).flatten(1).all(dim=1)
    first = int(all_black.nonzero()[0])
    assert first < 16  # fully deleted before the 16th step
    curve = result.curves["deletion"][0]
    assert torch.allclose(curve[first:], curve[-1].expand(17 - first))
