"""A function registered with ``@explainers.function`` is an explainer like the classes."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest
import torch
from torch import Tensor

from xaibench.errors import ConfigError
from xaibench.registry import ExplainerRegistry, explainers
from xaibench.types import Classifier, Explainer, explanation_seeds

from .helpers import images, predicted


def fresh() -> ExplainerRegistry:
    """A private registry, so the session-wide one keeps only the built-ins."""
    return ExplainerRegistry("explainers", runtime_args=("classifier",))


def gradient_power(model: Classifier, x01: Tensor, target: Tensor, power: int = 1, signed: bool = True) -> Tensor:
    """The target logit's gradient, raised to ``power``."""
    x = x01.detach().clone().requires_grad_(True)
    logits = model(x)
    (grad,) = torch.autograd.grad(logits.gather(1, target.view(-1, 1)).sum(), x)
    grad = grad if signed else grad.abs()
    return grad**power


def test_the_function_is_an_explainer_with_the_same_attributions(tiny: Classifier) -> None:
    registry = fresh()
    returned = registry.function("gradient_power", title="Gradient power")(gradient_power)
    assert returned is gradient_power  # still callable as a function
    cls = registry.get("gradient_power")
    assert issubclass(cls, Explainer) and cls.name == "gradient_power"
    x = images(3, 16, seed=4)
    t = predicted(tiny, x)
    for params in ({}, {"power": 2}, {"power": 3, "signed": False}):
        explainer = cls(tiny, **params)
        torch.testing.assert_close(explainer.explain(x, t), gradient_power(tiny, x, t, **params), rtol=0, atol=0)
    assert [p.describe() for p in registry.params("gradient_power")] == ["power: int = 1", "signed: bool = True"]
    metadata = cls.metadata()
    assert metadata["title"] == "Gradient power" and metadata["summary"] == "The target logit's gradient, raised to ``power``."
    assert not metadata["is_random"] and not metadata["fuses_prediction"] and metadata["needs_gradients"]
    json.dumps(metadata)
    assert registry.resolved_params("gradient_power", {"power": 2.0}) == {"power": 2, "signed": True}


def test_bad_parameters_are_rejected(tiny: Classifier) -> None:
    registry = fresh()
    registry.function("gradient_power")(gradient_power)
    with pytest.raises(ConfigError, match="'signed' expects bool"):
        registry.validate_params("gradient_power", {"signed": "yes"})
    with pytest.raises(ConfigError, match="'power' expects int"):
        registry.validate_params("gradient_power", {"power": 1.5})
    with pytest.raises(ConfigError, match="Did you mean 'power'"):
        registry.validate_params("gradient_power", {"powr": 2})
    with pytest.raises(ConfigError, match="gradient_power"):
        registry.get("gradient_power")(tiny, powr=2)


def test_required_parameters_and_a_wrong_shape() -> None:
    registry = fresh()

    @registry.function("constant", needs_gradients=False)
    def constant(model, x01, target, value: float):  # noqa: ANN001
        return torch.full(x01.shape[:1], value)  # wrong: one value per image

    with pytest.raises(ConfigError, match="needs the parameter value: float"):
        registry.validate_params("constant", {})
    explainer = registry.get("constant")(None, value=0.5)
    with pytest.raises(ValueError, match="shape"):
        explainer.explain(torch.zeros(2, 1, 4, 4), torch.tensor([0, 1]))


def test_a_random_function_gets_the_noise_ids(tiny: Classifier) -> None:
    registry = fresh()
    calls: list[Sequence[str] | None] = []

    @registry.function("noise", is_random=True, needs_gradients=False)
    def noise(model, x01, target, seed: int = 0, noise_ids: Sequence[str] | None = None):  # noqa: ANN001
        calls.append(noise_ids)
        seeds = explanation_seeds(x01, target, seed, noise_ids)
        return torch.stack([torch.rand(x01.shape[1:], generator=torch.Generator().manual_seed(s)) for s in seeds])

    cls = registry.get("noise")
    assert cls.is_random and cls.metadata()["is_random"]
    assert [p.name for p in registry.params("noise")] == ["seed"]  # noise_ids is not a parameter
    x = images(2, 16, seed=1)
    t = predicted(tiny, x)
    a = cls(tiny).explain(x, t, noise_ids=["a", "b"])
    b = cls(tiny).explain(torch.flip(x, dims=[0]), t.flip(0), noise_ids=["b", "a"])
    torch.testing.assert_close(a, b.flip(0), rtol=0, atol=0)  # same id, same noise
    assert calls == [["a", "b"], ["b", "a"]]


def test_a_function_must_take_model_images_and_targets() -> None:
    with pytest.raises(TypeError, match="first three"):
        fresh().function("broken")(lambda model, x01: x01)


def test_the_session_registry_offers_the_decorator() -> None:
    assert callable(explainers.function)
