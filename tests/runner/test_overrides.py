"""Command-line overrides of a suite's models, explainers and class count (``--model``,
``--explainer``, ``--n-classes``; ``xaibench.run(..., models=[...])``)."""

from __future__ import annotations

import pytest

from xaibench.errors import ConfigError, UnknownPluginError
from xaibench.runner.suite import load_suite


def test_model_override_replaces_the_suites_models_keeping_their_entries() -> None:
    suite = load_suite("imagenet-fragility", {"models": ["efficientnet_lite1", "efficientnet_lite0"]})
    assert [m.name for m in suite.models] == ["efficientnet_lite1", "efficientnet_lite0"]
    original = load_suite("imagenet-fragility")
    assert "efficientnet_lite1" not in [m.name for m in original.models]
    assert next(m for m in original.models if m.name == "efficientnet_lite0") == suite.models[1]


def test_model_override_refuses_unknown_and_repeated_models() -> None:
    with pytest.raises(UnknownPluginError, match="efficientnet_lite9"):
        load_suite("imagenet-fragility", {"models": ["efficientnet_lite9"]})
    with pytest.raises(ConfigError, match="given twice"):
        load_suite("imagenet-fragility", {"models": ["efficientnet_lite0", "efficientnet-lite0"]})


def test_explainer_override_keeps_only_the_chosen_in_suite_order() -> None:
    suite = load_suite("imagenet-lite-fragility", {"explainers": ["smoothgrad", "saliency"]})
    assert [e.label for e in suite.explainers] == ["saliency", "smoothgrad"]
    with pytest.raises(ConfigError, match="Did you mean 'saliency'") as error:
        load_suite("imagenet-lite-fragility", {"explainers": ["salency"]})
    assert "integrated_gradients" in str(error.value) and error.value.file == "--explainer"


def test_n_classes_override_and_its_blame() -> None:
    assert load_suite("imagenet-lite-fragility", {"n_classes": 16}).n_classes == 16
    assert load_suite("imagenet-lite-fragility").n_classes == 500
    with pytest.raises(ConfigError, match="--n-classes"):
        load_suite("imagenet-lite-fragility", {"n_classes": 0})


def test_python_api_refuses_an_unknown_override(tmp_path) -> None:
    import xaibench

    with pytest.raises(ConfigError, match="unknown override.*n_clases"):
        xaibench.run("quickstart", tmp_path / "out", n_clases=3)
    with pytest.raises(ConfigError, match="unknown override"):
        xaibench.plan("quickstart", tmp_path / "out", model=["x"])


def test_the_reduced_real_data_suite_differs_from_the_full_one_only_in_its_grid() -> None:
    from pathlib import Path

    reduced = load_suite(str(Path(__file__).parents[2] / "docs/examples/imagenet-lite-fragility-reduced.toml"))
    full = load_suite("imagenet-lite-fragility")
    assert [m.key() for m in reduced.models] == [m.key() for m in full.models]
    assert [e.key() for e in reduced.explainers] == [e.key() for e in full.explainers]
    assert (reduced.seed, reduced.n_classes, reduced.pool_size, reduced.images_per_unit) == (
        full.seed, full.n_classes, full.pool_size, full.images_per_unit
    )
    for small, large in zip(reduced.attacks, full.attacks, strict=True):
        assert small.name == large.name and small.params["n_attack_images"] == large.params["n_attack_images"]
        assert set(small.params["alphas"]) < set(large.params["alphas"])
        assert set(small.params["topks"]) < set(large.params["topks"])
