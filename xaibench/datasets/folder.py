"""``image_folder``: one sub-folder per class, images inside (torchvision's ImageFolder layout)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import ClassVar

from PIL import Image

from ..errors import ResourceUnavailableError
from ..registry import datasets
from .base import Dataset

#: Extensions accepted, compared case-insensitively (ImageNet ships ``.JPEG``).
IMAGE_EXTENSIONS = frozenset({".jpeg", ".jpg", ".png"})


def _list_images(folder: str) -> list[str]:
    """File names of the images directly inside ``folder``, sorted for determinism."""
    with os.scandir(folder) as entries:
        names = [
            entry.name
            for entry in entries
            if not entry.name.startswith(".")
            and os.path.splitext(entry.name)[1].lower() in IMAGE_EXTENSIONS
            and entry.is_file()
        ]
    return sorted(names)


def _list_class_folders(root: str) -> list[str]:
    with os.scandir(root) as entries:
        return sorted(e.name for e in entries if not e.name.startswith(".") and e.is_dir())


@datasets.register("image_folder")
class ImageFolder(Dataset):
    """Images in ``<root>/<class>/<image>.{jpg,jpeg,png}``; labels are the sorted folder index.

    Only the images directly inside each class folder are listed (one ``scandir`` per
    folder, no decoding), so listing a 50,000-image folder is cheap.
    """

    name: ClassVar[str] = "image_folder"
    decode_threads: ClassVar[int] = max(1, min(4, os.cpu_count() or 1))

    def __init__(
        self,
        root: str,
        *,
        input_size: int | tuple[int, int] = (224, 224),
        channels: int = 3,
    ):
        super().__init__(input_size=input_size, channels=channels)
        self.root = self._resolve_root(root)
        self.params["root"] = str(self.root)
        self.paths: list[str] = []
        self._build_index()

    # -- hooks for subclasses ------------------------------------------------------------
    def _resolve_root(self, root: str | os.PathLike[str] | None) -> Path:
        if root is None or str(root) == "":
            raise ResourceUnavailableError(f"{self.name}: the parameter 'root' is required")
        path = Path(os.path.expanduser(str(root)))
        if not path.is_dir():
            raise ResourceUnavailableError(
                f"{self.name}: the folder {path} does not exist. Expected layout: "
                f"<root>/<class>/<image>.jpg (one sub-folder per class)."
            )
        return path

    def _class_labels(self, folders: list[str]) -> dict[str, int]:
        """Folder name → label. Folders left out of the mapping are not listed."""
        self.label_names = dict(enumerate(folders))
        return {folder: index for index, folder in enumerate(folders)}

    def _no_images_message(self) -> str:
        return (
            f"{self.name}: no images found under {self.root}. Expected layout: "
            f"<root>/<class>/<image>.jpg (extensions {', '.join(sorted(IMAGE_EXTENSIONS))})."
        )

    # -- listing -------------------------------------------------------------------------
    def _build_index(self) -> None:
        root = str(self.root)
        folders = _list_class_folders(root)
        labels = self._class_labels(folders)
        for folder in folders:
            if folder not in labels:
                continue
            directory = os.path.join(root, folder)
            for file_name in _list_images(directory):
                self.paths.append(os.path.join(directory, file_name))
                self.ids.append(f"{self.name}:{folder}/{file_name}")
                self.labels.append(labels[folder])
        if not self.paths:
            raise ResourceUnavailableError(self._no_images_message())

    def _skip_folder(self, folder: str, reason: str) -> None:
        where = os.path.join(str(self.root), folder)
        warnings.warn(f"xaibench: {self.name}: skipping folder {where} ({reason})", RuntimeWarning, stacklevel=4)
        self.skipped.append((where, reason))

    # -- loading -------------------------------------------------------------------------
    def source(self, index: int) -> str:
        return self.paths[index]

    def _read(self, index: int) -> Image.Image:
        with Image.open(self.paths[index]) as image:
            # convert() forces the full decode inside the try of Dataset._load_one, so a
            # truncated file fails here rather than later; CMYK/grayscale JPEGs become RGB.
            return image.convert("RGB")

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "root": str(self.root)}
