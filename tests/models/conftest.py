"""Fixtures for the model-zoo tests: no hub access, a private cache, one digits training."""

from __future__ import annotations

import os

# Before anything imports huggingface_hub: these tests must never touch the network.
os.environ["HF_HUB_OFFLINE"] = "1"

from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from xaibench.models import load_model  # noqa: E402
from xaibench.types import Classifier  # noqa: E402


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    # Re-assert per test: another test module may have changed the process environment.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def xaibench_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private ``XAIBENCH_CACHE`` for the whole session (trained weights land here)."""
    path = tmp_path_factory.mktemp("xaibench-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XAIBENCH_CACHE", str(path))
        yield path


@pytest.fixture(scope="session")
def digits_classifier(xaibench_cache: Path) -> Classifier:
    """The default digits CNN, trained once per session into the private cache."""
    return load_model("digits_cnn")


@pytest.fixture()
def empty_hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point huggingface_hub at an empty cache, so a developer's own cache cannot leak in."""
    from huggingface_hub import constants

    cache = tmp_path / "hf-hub"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache
