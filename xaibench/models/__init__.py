"""The model zoo: architectures, weight loading, factories registered in
``xaibench.registry.models``, and ``load_model``.

Every model is a ``Classifier`` (pixel space ``[0, 1]`` in, logits out). Build models with
``load_model``: it also runs the attribution hygiene and freezes the weights. This package
never trains and never imports ``xaibench.training``: the models that train on first use
(the digits CNNs) and the ``trained`` model are registered by ``xaibench.training``, which
``xaibench.load_builtins`` imports.
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError, UnknownPluginError
from ..registry import models
from ..types import Classifier
from . import efficientnet_lite as _efficientnet_lite  # noqa: F401  (registers the factories)
from . import timm_models as _timm_models  # noqa: F401
from .digits_cnn import digits_arrays
from .hygiene import prepare_for_attribution


def load_model(name: str, **params: Any) -> Classifier:
    """Build model ``name`` with ``params``, ready for attribution.

    Registry names come first; any other name timm knows is built by the ``timm`` factory
    with ``arch=name``. The result is in eval mode, its parameters do not require gradients
    (explainers need input gradients only), in-place flags are cleared and reused modules
    are recorded in ``classifier.reused_modules``.
    """
    try:
        key = models.resolve(name)
    except UnknownPluginError:
        import timm

        if not timm.is_model(name):
            raise
        if "arch" in params:
            raise ConfigError(
                f"model {name!r} is a timm architecture; do not also pass arch={params['arch']!r}"
            ) from None
        key, params = "timm", {"arch": name, **params}
    models.validate_params(key, params)
    classifier = models.get(key)(**params)
    if not isinstance(classifier, Classifier):
        raise TypeError(
            f"model factory {key!r} returned {type(classifier).__name__}, expected a Classifier"
        )
    classifier.eval()
    classifier.requires_grad_(False)
    prepare_for_attribution(classifier)
    return classifier


__all__ = ["Classifier", "digits_arrays", "load_model", "prepare_for_attribution"]
