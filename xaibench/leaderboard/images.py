"""Example images for the page: attribution heatmaps as small palette PNGs, stored images
scaled down, and the colour bar of the heatmaps as CSS."""

from __future__ import annotations

import io
import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.colors as mcolors  # noqa: E402
import numpy as np  # noqa: E402


def heatmap_png(values: np.ndarray, vmax: float, colormap: str = "inferno") -> bytes:
    """An attribution heatmap (Σ_c |a|) as a small palette PNG on the scale 0 … ``vmax``."""
    from PIL import Image

    scale = vmax if vmax > 0 and math.isfinite(vmax) else 1.0
    normalized = np.clip(np.nan_to_num(values / scale), 0.0, 1.0)
    image = Image.fromarray(np.round(normalized * 255).astype(np.uint8), mode="L").convert("P")
    # One byte per pixel: the colour map's 256 entries are the palette.
    palette = matplotlib.colormaps[colormap](np.linspace(0.0, 1.0, 256), bytes=True)[:, :3]
    image.putpalette(palette.ravel().tolist())
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def fit_png(payload: bytes, max_side: int) -> bytes | None:
    """``payload`` (a PNG) scaled down to at most ``max_side`` pixels; None if unreadable."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(payload)) as image:
            image.load()
            if max(image.size) <= max_side:
                return payload
            image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
            image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
            buffer = io.BytesIO()
            image.save(buffer, format="PNG", optimize=True)
            return buffer.getvalue()
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError):
        return None


def colormap_css(name: str = "inferno", stops: int = 6) -> str:
    """A CSS gradient of the heatmap colour map (the examples' colour bar)."""
    cmap = matplotlib.colormaps[name]
    return ", ".join(mcolors.to_hex(cmap(i / (stops - 1))) for i in range(stops))
