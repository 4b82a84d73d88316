"""``imagenet``: an ImageNet validation folder in any common layout (``imagenet_layouts``).

WordNet-id class folders, the official flat ``ILSVRC2012_val_*`` folder with the devkit's
ground truth or Kaggle's ``LOC_val_solution.csv``, or flat ``<wnid>_*`` files; the layout is
detected and recorded. Labels are the standard 1000-class indices (timm's ``ImageNetInfo``),
so they line up with any ImageNet classifier's logits.
"""

from __future__ import annotations

import os
import warnings
from functools import lru_cache
from pathlib import Path
from typing import ClassVar

from ..errors import ResourceUnavailableError
from ..registry import datasets
from .folder import ImageFolder
from .imagenet_layouts import LayoutError, Listing, layouts_text, list_layout

ENV_VAR = "XAIBENCH_IMAGENET"
#: Skipped files named in the listing warning (all of them are in ``skipped``).
WARN_EXAMPLES = 5


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
        f"Accepted layouts (detected automatically): {layouts_text()}. "
        f"Provide the folder with --data PATH or the environment variable {ENV_VAR}=PATH. "
        f"Without ImageNet, this runs offline: xaibench run --suite quickstart"
    )


@datasets.register("imagenet")
class ImageNet(ImageFolder):
    """ImageNet validation images (any layout of ``imagenet_layouts``); ``root`` or ``$XAIBENCH_IMAGENET``.

    ``labels``: a devkit ground-truth txt or a ``LOC_val_solution.csv`` for a flat
    ``ILSVRC2012_val_*`` folder, instead of searching for one. ``layout`` and
    ``labels_source`` say what was detected (and land in ``describe()``).
    """

    name: ClassVar[str] = "imagenet"

    def __init__(
        self,
        root: str | None = None,
        *,
        labels: str | None = None,
        input_size: int | tuple[int, int] = (224, 224),
        channels: int = 3,
    ):
        self._labels_file = labels
        self.layout = ""
        self.labels_source = ""
        super().__init__(root, input_size=input_size, channels=channels)  # type: ignore[arg-type]
        if labels is not None:
            self.params["labels"] = labels

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

    def _build_index(self) -> None:
        wnid_index, descriptions = imagenet_classes()
        self.label_names = dict(descriptions)
        try:
            listing = list_layout(str(self.root), wnid_index, self._labels_file)
        except LayoutError as exc:
            raise ResourceUnavailableError(f"{exc} {_how_to_fix()}") from None
        self.layout, self.labels_source = listing.layout, listing.labels_source
        if self._labels_file is not None and listing.layout in ("wnid-folders", "wnid-prefixed-flat"):
            warnings.warn(
                f"xaibench: {self.name}: ignoring labels = {self._labels_file!r}: the labels of "
                f"{self.root} come from its {listing.labels_source}",
                RuntimeWarning,
                stacklevel=3,
            )
        for path, item_id, label in listing.items:
            self.paths.append(path)
            self.ids.append(f"{self.name}:{item_id}")
            self.labels.append(label)
        for folder, reason in listing.skipped_folders:
            self._skip_folder(folder, reason)
        self._skip_files(listing)

    def _skip_files(self, listing: Listing) -> None:
        """Record the files the listing left out; one warning names the first few."""
        if not listing.skipped_files:
            return
        self.skipped.extend(listing.skipped_files)
        shown = "; ".join(f"{os.path.basename(p)} ({r})" for p, r in listing.skipped_files[:WARN_EXAMPLES])
        more = len(listing.skipped_files) - WARN_EXAMPLES
        warnings.warn(
            f"xaibench: {self.name}: skipping {len(listing.skipped_files)} image(s) under {self.root} "
            f"(layout {listing.layout}, labels from {listing.labels_source}): {shown}"
            + (f"; and {more} more (see 'skipped' in the manifest)" if more > 0 else ""),
            RuntimeWarning,
            stacklevel=3,
        )

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "layout": self.layout, "labels_source": self.labels_source}
