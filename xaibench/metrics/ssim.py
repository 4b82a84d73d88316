"""Batched SSIM (Wang et al. 2004), matching scikit-image's Gaussian-window SSIM.

``ssim(a, b)`` equals, per image,
``skimage.metrics.structural_similarity(a, b, channel_axis=0, data_range=1,
gaussian_weights=True, sigma=1.5, use_sample_covariance=False)``:
an 11-tap Gaussian window (σ = 1.5, truncated at 3.5σ like ``scipy.ndimage``), population
covariance, K1 = 0.01, K2 = 0.03, data range 1, the mean over the *valid* region (skimage
filters with reflect padding and then crops the (11 − 1)/2 = 5 px border, which is the same
thing), then the mean over channels. The filter is separable (two 1-D passes per map).
"""

from __future__ import annotations

import torch
from torch import Tensor

SIGMA = 1.5
TRUNCATE = 3.5
K1 = 0.01
K2 = 0.03
#: ``2·int(3.5·σ + 0.5) + 1``, skimage's (and scipy.ndimage's) window for σ = 1.5.
WINDOW_SIZE = 2 * int(TRUNCATE * SIGMA + 0.5) + 1

# Image elements per chunk; the peak is ~20 float32 tensors of this size (≈ 80 MB).
_CHUNK_ELEMENTS = 1_000_000

#: Subtracted from every pixel before the local moments are taken (and added back to the
#: local means). Variances are shift-invariant, and centring the ``[0, 1]`` range on zero
#: keeps ``E[x²] − E[x]²`` from cancelling catastrophically in float32 on bright, flat
#: regions (uncentred float32 was 4e-5 off skimage on a flat 0.999 image; centred, ≤ 4e-7).
_SHIFT = 0.5


def gaussian_window(
    sigma: float = SIGMA, truncate: float = TRUNCATE, dtype: torch.dtype = torch.float64
) -> Tensor:
    """The normalised 1-D Gaussian kernel ``scipy.ndimage.gaussian_filter`` uses."""
    radius = int(truncate * sigma + 0.5)
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    weights = torch.exp(-0.5 * (offsets / sigma) ** 2)
    return (weights / weights.sum()).to(dtype)


def _valid_filter(maps: Tensor, window: list[float]) -> Tensor:
    """Separable 'valid' correlation of the last two dims with the same 1-D window.

    Weighted sums of shifted views, accumulated in place: the same values as a depthwise
    ``conv2d`` but much faster on the CPU (a one-channel ``conv2d`` was ~20× slower in
    float32) and no unfold copies.
    """
    taps = len(window)
    rows = maps.shape[-2] - taps + 1
    vertical = maps[..., 0:rows, :] * window[0]
    for offset in range(1, taps):
        vertical.add_(maps[..., offset : offset + rows, :], alpha=window[offset])
    cols = maps.shape[-1] - taps + 1
    filtered = vertical[..., 0:cols] * window[0]
    for offset in range(1, taps):
        filtered.add_(vertical[..., offset : offset + cols], alpha=window[offset])
    return filtered


def ssim(a: Tensor, b: Tensor, *, data_range: float = 1.0) -> Tensor:
    """SSIM of each pair of images, ``M×C×H×W`` each (values in ``[0, data_range]``) → ``M``.

    Computed in float32 on pixels shifted by −0.5 (see ``_SHIFT``) and returned as float64,
    in chunks of images to bound memory. Within 1.1e-6 of scikit-image's float64 values on
    photos, noise, blends and flat images (tests/metrics/test_ssim.py); float64 cost ~3× more
    time (about 9% of a saliency run's wall time on 2 CPU cores, docs/performance.md).
    Raises ``ValueError`` for mismatched shapes and for images smaller than the 11 px window.
    """
    if a.shape != b.shape:
        raise ValueError(f"ssim: shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    if a.ndim != 4:
        raise ValueError(f"ssim: expected M×C×H×W tensors, got shape {tuple(a.shape)}")
    rows, channels, height, width = a.shape
    if height < WINDOW_SIZE or width < WINDOW_SIZE:
        raise ValueError(
            f"ssim: images must be at least {WINDOW_SIZE}×{WINDOW_SIZE} px for the Gaussian "
            f"window (σ = {SIGMA}); got {height}×{width}"
        )
    if rows == 0:
        return torch.empty(0, dtype=torch.float64, device=a.device)

    window = gaussian_window().tolist()
    c1 = (K1 * data_range) ** 2
    c2 = (K2 * data_range) ** 2
    shift = _SHIFT * data_range

    per_image = channels * height * width
    chunk = max(1, _CHUNK_ELEMENTS // per_image)
    results = []
    for start in range(0, rows, chunk):
        x = a[start : start + chunk].to(torch.float32) - shift
        y = b[start : start + chunk].to(torch.float32) - shift
        # The five maps (x, y, x², y², xy) filtered together: one pass of shifted adds.
        maps = torch.stack([x, y, x * x, y * y, x * y])
        ux, uy, uxx, uyy, uxy = _valid_filter(maps, window).unbind(dim=0)
        vx = uxx - ux * ux
        vy = uyy - uy * uy
        vxy = uxy - ux * uy
        ux = ux + shift  # the window sums to 1, so the shift comes back out of the means
        uy = uy + shift
        numerator = (2 * ux * uy + c1) * (2 * vxy + c2)
        denominator = (ux * ux + uy * uy + c1) * (vx + vy + c2)
        results.append((numerator / denominator).mean(dim=(-2, -1)).mean(dim=1).double())
    return torch.cat(results)


def ssim_window_ok(height: int, width: int) -> bool:
    """Whether an image of this size is large enough for :func:`ssim`."""
    return min(height, width) >= WINDOW_SIZE
