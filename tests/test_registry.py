"""The generic registry: decorator registration, lookup errors, parameters."""

from __future__ import annotations

import pytest

from xaibench.errors import ConfigError, UnknownPluginError
from xaibench.registry import Registry


def test_register_lookup_aliases_and_did_you_mean() -> None:
    registry: Registry[type] = Registry("attacks")

    @registry.register("shift", aliases=("translate",))
    class Shift:
        def __init__(self, pixels: int = 2, wrap: bool = False):
            pass

    assert registry.get("shift") is Shift and registry.get("translate") is Shift
    assert Shift.name == "shift"
    with pytest.raises(UnknownPluginError, match="Did you mean 'shift'") as info:
        registry.get("shfit")
    assert "Known attacks: shift" in str(info.value)
    assert [p.describe() for p in registry.params("shift")] == ["pixels: int = 2", "wrap: bool = False"]


def test_a_subclass_does_not_inherit_its_parents_registered_name() -> None:
    registry: Registry[type] = Registry("explainers")

    @registry.register("base_method")
    class Base:
        pass

    @registry.register()
    class Variant(Base):
        pass

    assert registry.get("base_method") is Base
    assert registry.get("Variant") is Variant


def test_duplicate_names_are_refused() -> None:
    registry: Registry[type] = Registry("metrics")
    registry.register("m")(type("A", (), {}))
    with pytest.raises(ValueError, match="already registered"):
        registry.register("m")(type("B", (), {}))


def test_parameter_validation_names_what_is_expected() -> None:
    registry: Registry[type] = Registry("attacks")

    @registry.register("needs_k")
    class NeedsK:
        def __init__(self, k: int, alpha: float = 0.1):
            pass

    registry.validate_params("needs_k", {"k": 3})
    with pytest.raises(ConfigError, match="needs the parameter k: int"):
        registry.validate_params("needs_k", {})
    with pytest.raises(ConfigError, match="Did you mean 'alpha'"):
        registry.validate_params("needs_k", {"k": 1, "alfa": 0.2})
