"""``imagenet``: an ImageNet validation folder, ``<root>/<wnid>/<image>.JPEG``.

Labels are the standard 1000-class indices (timm's ``ImageNetInfo``), so they line up with
any ImageNet classifier's logits.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import ClassVar

from ..errors import ResourceUnavailableError
from ..registry import datasets
from .folder import ImageFolder

ENV_VAR = "XAIBENCH_IMAGENET"
LAYOUT = "<root>/<wnid>/<image>.JPEG, e.g. <root>/n01440764/ILSVRC2012_val_00000293.JPEG"


@lru_cache(maxsize=1)
def imagenet_classes() -> tuple[dict[str, int], dict[int, str]]:
    """WordNet id → class index, and class index → description ("tench, Tinca tinca")."""
    from timm.data import ImageNetInfo  # imported here: timm is slow to import

    info = ImageNetInfo()
    wnids = info.label_names()
    index = {wnid: i for i, wnid in enumerate(wnids)}
    descriptions = {i: info.index_to_description(i) for i in range(len(wnids))}
    return index, descriptions


def _how_to_fix() -> str:
    return (
        f"Expected layout: {LAYOUT} (one folder per class, named by WordNet id). "
        f"Provide the folder with --data PATH or the environment variable {ENV_VAR}=PATH. "
        f"Without ImageNet, this runs offline: xaibench run --suite quickstart"
    )


@datasets.register("imagenet")
class ImageNet(ImageFolder):
    """ImageNet validation images in WordNet-id class folders; ``root`` or ``$XAIBENCH_IMAGENET``."""

    name: ClassVar[str] = "imagenet"

    def __init__(
        self,
        root: str | None = None,
        *,
        input_size: int | tuple[int, int] = (224, 224),
        channels: int = 3,
    ):
        super().__init__(root, input_size=input_size, channels=channels)  # type: ignore[arg-type]

    def _resolve_root(self, root: str | os.PathLike[str] | None) -> Path:
        if root is None or str(root) == "":
            root = os.environ.get(ENV_VAR) or None
            if root is None:
                raise ResourceUnavailableError(
                    f"ImageNet validation images not found: no path was given (no 'root' "
                    f"parameter, no --data, and {ENV_VAR} is not set). {_how_to_fix()}"
                )
        path = Path(os.path.expanduser(str(root)))
        if not path.is_dir():
            raise ResourceUnavailableError(
                f"ImageNet validation images not found: the folder {path} does not exist. "
                f"{_how_to_fix()}"
            )
        return path

    def _class_labels(self, folders: list[str]) -> dict[str, int]:
        wnid_index, descriptions = imagenet_classes()
        self.label_names = dict(descriptions)
        labels = {}
        for folder in folders:
            if folder in wnid_index:
                labels[folder] = wnid_index[folder]
            else:
                self._skip_folder(folder, "not an ImageNet WordNet id")
        return labels

    def _no_images_message(self) -> str:
        return (
            f"ImageNet validation images not found: no images in WordNet-id folders under "
            f"{self.root} (a flat folder of ILSVRC2012_val_*.JPEG must first be sorted into "
            f"class folders). {_how_to_fix()}"
        )
