"""The generic registry: decorator registration, lookup errors, parameters."""

from __future__ import annotations

from typing import Literal

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


# -- typed parameters ----------------------------------------------------------------------


def typed_registry() -> Registry[type]:
    registry: Registry[type] = Registry("explainers", runtime_args=("classifier",))

    @registry.register("typed")
    class Typed:
        def __init__(
            self,
            classifier: object,
            flag: bool = False,
            steps: int = 4,
            scale: float = 0.5,
            mode: Literal["fast", "exact"] = "fast",
            levels: list[float] = (0.1, 0.2),  # type: ignore[assignment]
            size: tuple[int, int] = (8, 8),
            cap: int | None = None,
            anything=None,  # noqa: ANN001 - unannotated on purpose
        ):
            pass

    @registry.register("needs_count")
    class NeedsCount:
        def __init__(self, classifier: object, count: int):
            pass

    return registry


def test_types_are_displayed_as_written() -> None:
    specs = {p.name: p for p in typed_registry().params("typed")}
    assert specs["levels"].type_name == "list[float]"
    assert specs["size"].type_name == "tuple[int, int]"
    assert specs["mode"].type_name == "Literal['fast', 'exact']"
    assert specs["cap"].type_name == "int | None"
    assert specs["anything"].type_name == "any"
    assert specs["mode"].choices == ("fast", "exact")
    assert specs["levels"].describe() == "levels: list[float] = [0.1, 0.2]"
    assert "classifier" not in specs  # a runtime argument, not a parameter


def test_a_bool_takes_only_true_or_false() -> None:
    registry = typed_registry()
    registry.validate_params("typed", {"flag": True})
    for value in ("yes", 1, 1.0):
        with pytest.raises(ConfigError) as error:
            registry.validate_params("typed", {"flag": value}, where="explainers[0]")
        message = str(error.value)
        assert "[explainers[0]]" in message and "'typed'" in message and "'flag'" in message
        assert "bool" in message and repr(value) in message and "true or false" in message


def test_an_int_takes_whole_numbers_only_and_converts_them() -> None:
    registry = typed_registry()
    with pytest.raises(ConfigError, match=r"'steps' expects int .*2\.9"):
        registry.validate_params("typed", {"steps": 2.9})
    with pytest.raises(ConfigError, match="'steps' expects int"):
        registry.validate_params("typed", {"steps": True})
    converted = registry.coerce_params("typed", {"steps": 3.0})
    assert converted == {"steps": 3} and type(converted["steps"]) is int
    assert registry.coerce_params("typed", {"steps": 3})["steps"] == 3


def test_floats_strings_sequences_and_optionals() -> None:
    registry = typed_registry()
    # A float takes an int as it is (no conversion: recorded numbers stay what was written).
    assert registry.coerce_params("typed", {"scale": 2}) == {"scale": 2}
    with pytest.raises(ConfigError, match="'scale' expects float"):
        registry.validate_params("typed", {"scale": "0.5"})
    assert registry.coerce_params("typed", {"levels": [1, 0.5]}) == {"levels": [1, 0.5]}
    with pytest.raises(ConfigError, match=r"'levels' expects list\[float\]"):
        registry.validate_params("typed", {"levels": ["a"]})
    with pytest.raises(ConfigError, match=r"'levels' expects list\[float\]"):
        registry.validate_params("typed", {"levels": 0.1})
    assert registry.coerce_params("typed", {"size": [4, 6.0]}) == {"size": [4, 6]}
    with pytest.raises(ConfigError, match=r"tuple\[int, int\]"):
        registry.validate_params("typed", {"size": [4, 6, 8]})
    assert registry.coerce_params("typed", {"cap": None, "anything": object}) == {"cap": None, "anything": object}
    assert registry.coerce_params("typed", {"cap": 5.0}) == {"cap": 5}
    with pytest.raises(ConfigError, match=r"'cap' expects int \| None"):
        registry.validate_params("typed", {"cap": "five"})


def test_a_literal_error_lists_the_choices() -> None:
    with pytest.raises(ConfigError) as error:
        typed_registry().validate_params("typed", {"mode": "slow"})
    message = str(error.value)
    assert "expects one of 'fast', 'exact'" in message and "'slow'" in message


def test_resolved_params_merge_defaults_and_are_jsonable() -> None:
    import json

    registry = typed_registry()
    resolved = registry.resolved_params("typed", {"steps": 6.0, "mode": "exact"})
    assert resolved == {
        "flag": False, "steps": 6, "scale": 0.5, "mode": "exact", "levels": [0.1, 0.2], "size": [8, 8],
        "cap": None, "anything": None,
    }
    json.dumps(resolved)
    with pytest.raises(ConfigError, match="needs the parameter count: int"):
        registry.resolved_params("needs_count", {})
    assert registry.resolved_params("needs_count", {"count": 2}) == {"count": 2}


def test_a_plugin_can_say_which_parameters_it_uses() -> None:
    registry: Registry[type] = Registry("metrics")

    @registry.register("switch")
    class Switch:
        def __init__(self, kind: Literal["a", "b"] = "a", a_level: float = 1.0, b_level: float = 2.0):
            pass

        @classmethod
        def effective_params(cls, params: dict) -> dict:
            unused = "b_level" if params["kind"] == "a" else "a_level"
            return {k: v for k, v in params.items() if k != unused}

    assert registry.resolved_params("switch", {}) == {"kind": "a", "a_level": 1.0}
    assert registry.resolved_params("switch", {"kind": "b"}) == {"kind": "b", "b_level": 2.0}


def test_builtin_plugins_reject_bad_types_from_suites() -> None:
    from xaibench.registry import attacks, explainers, metrics

    with pytest.raises(ConfigError, match="'abs' expects bool"):
        explainers.validate_params("saliency", {"abs": "yes"})
    with pytest.raises(ConfigError, match="riemann_trapezoid', 'gausslegendre'"):
        explainers.validate_params("integrated_gradients", {"method": "simpson"})
    assert explainers.coerce_params("integrated_gradients", {"n_steps": 16.0}) == {"n_steps": 16}
    with pytest.raises(ConfigError, match=r"'alphas' expects list\[float\]"):
        attacks.validate_params("exiaa", {"alphas": ["0.1"]})
    with pytest.raises(ConfigError, match="'steps' expects int"):
        metrics.validate_params("deletion", {"steps": 2.5})
    agi = explainers.coerce_params("agi", {"classes": [1, 2]})
    assert agi == {"classes": [1, 2]}


def test_origin_of_a_plugin_registered_outside_xaibench() -> None:
    registry: Registry[type] = Registry("attacks")
    registry.register("local")(type("Local", (), {"__module__": "my_private_attacks.grid"}))
    assert registry.origin("local") == "my_private_attacks"
    assert registry.version("local") is None
    from xaibench.registry import attacks

    assert attacks.origin("exiaa") == "xaibench" and attacks.version("exiaa")


def test_list_shows_titles_summaries_and_typed_parameters() -> None:
    from typer.testing import CliRunner

    from xaibench.cli import app

    result = CliRunner().invoke(app, ["list", "attacks"])
    assert result.exit_code == 0, result.output
    assert "eXIAA" in result.output and "baseline of exiaa" in result.output
    assert "alphas: list[float] = [0.03" in result.output
    assert "attack_image_source: Literal['class', 'pool'] = 'class'" in result.output
    result = CliRunner().invoke(app, ["list", "explainers"])
    assert "Integrated Gradients" in result.output and "from xaibench" in result.output
    assert "nt_type: Literal['smoothgrad', 'smoothgrad_sq', 'vargrad']" in result.output
