"""xaibench: robustness and faithfulness benchmarks for post-hoc explanations of image classifiers."""

from __future__ import annotations

__version__ = "0.1.0"

from . import registry  # noqa: E402
from .errors import ConfigError, ResourceUnavailableError, XaibenchError  # noqa: E402

_BUILTINS_LOADED = False


def load_builtins() -> None:
    """Import the built-in plugins so their decorators fill the registries."""
    global _BUILTINS_LOADED
    if _BUILTINS_LOADED:
        return
    _BUILTINS_LOADED = True
    # ``training`` registers the models that train on first use (digits_cnn, …) and ``trained``.
    from . import attacks, datasets, explainers, metrics, models, training  # noqa: F401


load_builtins()

__all__ = ["ConfigError", "ResourceUnavailableError", "XaibenchError", "registry", "__version__"]
