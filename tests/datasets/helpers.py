"""Small image writers shared by the datasets tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

#: Three real WordNet ids: tench (0), goldfish (1), great white shark (2).
WNIDS = ("n01440764", "n01443537", "n01484850")


def write_image(path: Path, seed: int, size: tuple[int, int] = (40, 30)) -> np.ndarray:
    """Write a small random RGB image (format from the extension); returns its pixels."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    fmt = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}[path.suffix.lower()]
    Image.fromarray(pixels).save(path, format=fmt)
    return pixels
