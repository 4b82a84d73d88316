"""``samples``: real colour photos that installed packages ship, available offline.

scikit-image's ``skimage.data`` photos, matplotlib's ``grace_hopper.jpg`` and scikit-learn's
``china.jpg`` / ``flower.jpg``. They carry no ImageNet label (``-1``): each photo is a class of
its own for sampling. Some ``skimage.data`` images are fetched from the network on first
use; those that cannot be had are left out with a warning (once per process).
"""

from __future__ import annotations

import difflib
import importlib.util
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..errors import ConfigError, ResourceUnavailableError
from ..registry import datasets
from ..types import UNKNOWN_LABEL
from .base import Dataset


def _skimage(name: str, item: int | None = None) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import skimage.data

        image = getattr(skimage.data, name)()
        return image[item] if item is not None else image

    return load


def _matplotlib(file_name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from matplotlib.cbook import get_sample_data
        from PIL import Image

        with Image.open(get_sample_data(file_name, asfileobj=False)) as image:
            return np.asarray(image.convert("RGB"))

    return load


def _sklearn(file_name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from PIL import Image

        # Read the shipped JPEG directly, as load_sample_image does: importing
        # sklearn.datasets costs ~1.5 s and would decode every sample image.
        spec = importlib.util.find_spec("sklearn")
        if spec is None or not spec.submodule_search_locations:
            raise ImportError("scikit-learn is not installed")
        package = Path(next(iter(spec.submodule_search_locations)))
        with Image.open(package / "datasets" / "images" / file_name) as image:
            return np.asarray(image.convert("RGB"))

    return load


#: Every colour photo the dataset knows, in listing order. Synthetic images (colorwheel,
#: logo), grayscale ones and duplicates (``skimage.data.cat`` is chelsea) are left out, and so
#: is ``skin``, which needs a download: a photo that loads on one machine and not on another
#: would change which originals a seed samples.
CATALOGUE: dict[str, Callable[[], np.ndarray]] = {
    "skimage:astronaut": _skimage("astronaut"),
    "skimage:chelsea": _skimage("chelsea"),
    "skimage:coffee": _skimage("coffee"),
    "skimage:rocket": _skimage("rocket"),
    "skimage:motorcycle_left": _skimage("stereo_motorcycle", 0),
    "skimage:motorcycle_right": _skimage("stereo_motorcycle", 1),
    "skimage:immunohistochemistry": _skimage("immunohistochemistry"),
    "skimage:hubble_deep_field": _skimage("hubble_deep_field"),
    "skimage:retina": _skimage("retina"),
    "matplotlib:grace_hopper": _matplotlib("grace_hopper.jpg"),
    "sklearn:china": _sklearn("china.jpg"),
    "sklearn:flower": _sklearn("flower.jpg"),
}

# Decoded photos (read-only) and the reasons photos could not be had, per process: a photo
# that needs the network is tried once, not on every construction.
_CACHE: dict[str, np.ndarray] = {}
_UNAVAILABLE: dict[str, str] = {}


def photo(image_id: str) -> np.ndarray:
    """The decoded ``H×W×3`` uint8 photo (cached); raises ``ResourceUnavailableError``."""
    if image_id in _CACHE:
        return _CACHE[image_id]
    if image_id in _UNAVAILABLE:
        raise ResourceUnavailableError(f"sample photo {image_id} is unavailable: {_UNAVAILABLE[image_id]}")
    if image_id not in CATALOGUE:
        raise ConfigError(f"unknown sample photo {image_id!r}. Known: {', '.join(CATALOGUE)}.")
    try:
        image = np.asarray(CATALOGUE[image_id]())
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:
        # Network fetchers fail in many ways (ImportError without pooch, OSError offline, …),
        # and under pytest skimage raises pytest's Skipped (a BaseException), which would
        # silently skip whatever test merely built the samples dataset.
        # The first sentence is enough: skimage's pooch message runs to several lines.
        detail = str(exc).split(". ")[0].strip()
        reason = f"needs a download or failed to load ({type(exc).__name__}: {detail})"
        _UNAVAILABLE[image_id] = reason
        warnings.warn(f"xaibench: samples: skipping {image_id}: {reason}", RuntimeWarning, stacklevel=2)
        raise ResourceUnavailableError(f"sample photo {image_id} is unavailable: {reason}") from exc
    image = np.ascontiguousarray(image[..., :3] if image.ndim == 3 else image)
    image.flags.writeable = False  # shared by every dataset instance
    _CACHE[image_id] = image
    return image


def available_photos() -> list[str]:
    """Ids of the catalogue photos that load on this machine (decodes each once per process)."""
    available = []
    for image_id in CATALOGUE:
        try:
            photo(image_id)
        except ResourceUnavailableError:
            continue
        available.append(image_id)
    return available


def _resolve_names(names: Sequence[str]) -> list[str]:
    """Full ids or short names ("chelsea") → catalogue ids, in the order given, deduplicated."""
    by_short: dict[str, list[str]] = {}
    for image_id in CATALOGUE:
        by_short.setdefault(image_id.split(":", 1)[1], []).append(image_id)
    resolved: list[str] = []
    for name in names:
        if name in CATALOGUE:
            image_id = name
        elif len(by_short.get(name, [])) == 1:
            image_id = by_short[name][0]
        else:
            close = difflib.get_close_matches(name, [*CATALOGUE, *by_short], n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"unknown sample photo {name!r} for dataset 'samples'.{hint} Available: "
                f"{', '.join(available_photos())} (or their short names, e.g. 'chelsea')."
            )
        if image_id not in resolved:
            resolved.append(image_id)
    return resolved


@datasets.register("samples")
class Samples(Dataset):
    """Real colour photos shipped by scikit-image, matplotlib and scikit-learn (offline)."""

    name: ClassVar[str] = "samples"

    def __init__(
        self,
        names: list[str] | None = None,
        *,
        input_size: int | tuple[int, int] = (224, 224),
        channels: int = 3,
    ):
        if isinstance(names, str):
            names = [names]
        if names is not None and len(names) == 0:
            raise ConfigError(
                "dataset 'samples': names must list at least one photo, or be left out for all"
            )
        super().__init__(
            input_size=input_size, channels=channels, names=None if names is None else list(names)
        )
        wanted = list(CATALOGUE) if names is None else _resolve_names(names)
        for image_id in wanted:
            try:
                photo(image_id)
            except ResourceUnavailableError:
                self.skipped.append((image_id, _UNAVAILABLE[image_id]))
                continue
            self.ids.append(image_id)
            self.labels.append(UNKNOWN_LABEL)
        if not self.ids:
            raise ResourceUnavailableError(
                f"samples: none of the requested photos load on this machine "
                f"({'; '.join(f'{i}: {r}' for i, r in self.skipped)})"
            )

    def _read(self, index: int) -> np.ndarray:
        return photo(self.ids[index])

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "ids": list(self.ids)}
