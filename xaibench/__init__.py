"""xaibench: robustness and faithfulness benchmarks for post-hoc explanations of image classifiers."""

from __future__ import annotations

__version__ = "0.1.0"

from . import registry  # noqa: E402
from .errors import ConfigError, ResourceUnavailableError, XaibenchError  # noqa: E402

_BUILTINS_LOADED = False


def load_builtins() -> None:
    """Import the built-in plugins so their decorators fill the registries.

    Called by the registries on their first lookup (not on ``import xaibench``, which stays
    light: the command line answers ``--help`` and Ctrl-C without importing torch first)."""
    global _BUILTINS_LOADED
    if _BUILTINS_LOADED:
        return
    _BUILTINS_LOADED = True
    # ``training`` registers the models that train on first use (digits_cnn, …) and ``trained``.
    from . import attacks, datasets, explainers, metrics, models, training  # noqa: F401


_API = ("Results", "evaluate", "list_plugins", "load", "plan", "run")


def __getattr__(name: str):  # noqa: ANN202 - the Python API, imported on first use (import stays light)
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'xaibench' has no attribute {name!r}")


__all__ = ["ConfigError", "ResourceUnavailableError", "XaibenchError", "registry", "__version__", *_API]
