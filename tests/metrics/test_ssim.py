"""Batched torch SSIM against scikit-image's Wang et al. (2004) configuration."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch
from skimage import data
from skimage.metrics import structural_similarity

from xaibench.metrics import SSIMMetric, ssim

pytestmark = pytest.mark.kernels

#: ``ssim`` computes in float32 (skimage in float64). Largest difference measured over these
#: tests: 1.1e-6 (the blurred coffee crop); 1e-7 or less on the 224 px cases.
ATOL = 2e-6


def skimage_ssim(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    return np.array([
        structural_similarity(
            x.double().numpy(), y.double().numpy(), channel_axis=0, data_range=1,
            gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
        )
        for x, y in zip(a, b, strict=True)
    ])


def photo_crops() -> torch.Tensor:
    """64×64 crops of real photos, C×H×W in [0, 1]."""
    crops = [data.chelsea()[100:164, 150:214], data.astronaut()[60:124, 180:244], data.coffee()[200:264, 300:364]]
    return torch.tensor(np.stack(crops), dtype=torch.float32).permute(0, 3, 1, 2) / 255


def test_random_pairs_match_skimage() -> None:
    generator = torch.Generator().manual_seed(0)
    a = torch.rand(5, 3, 17, 23, generator=generator)
    b = (a + 0.2 * torch.randn(a.shape, generator=generator)).clamp(0, 1)
    b[-1] = torch.rand(b[-1].shape, generator=generator)  # unrelated image
    np.testing.assert_allclose(ssim(a, b).numpy(), skimage_ssim(a, b), atol=ATOL)


def test_real_photos_with_noise_blur_and_injection_match_skimage() -> None:
    clean = photo_crops()
    generator = torch.Generator().manual_seed(1)
    noisy = (clean + 0.05 * torch.randn(clean.shape, generator=generator)).clamp(0, 1)
    blurred = torch.nn.functional.avg_pool2d(clean, 3, stride=1, padding=1, count_include_pad=False)
    injected = clean.clone()
    mask = torch.rand(clean.shape, generator=generator) < 0.1
    injected[mask] = 0.9 * clean[mask] + 0.1 * clean.flip(0)[mask]
    for other in (noisy, blurred, injected):
        np.testing.assert_allclose(ssim(clean, other).numpy(), skimage_ssim(clean, other), atol=ATOL)


def test_identical_images_give_one_and_single_channel_works() -> None:
    clean = photo_crops()
    np.testing.assert_allclose(ssim(clean, clean).numpy(), 1.0, atol=1e-12)
    gray = clean[:, :1]
    other = gray.flip(-1)
    np.testing.assert_allclose(ssim(gray, other).numpy(), skimage_ssim(gray, other), atol=ATOL)


def test_chunking_does_not_change_values(monkeypatch: pytest.MonkeyPatch) -> None:
    clean = photo_crops()
    other = clean.flip(0)
    whole = ssim(clean, other)
    # The package attribute ``ssim`` is the function; the module is in sys.modules.
    monkeypatch.setattr(importlib.import_module("xaibench.metrics.ssim"), "_CHUNK_ELEMENTS", 1)
    # One image per chunk runs other kernels (shapes) in float32: not bit-equal, but each
    # chunking is within ATOL of the float64 oracle, as every SSIM here.
    expected = skimage_ssim(clean, other)
    np.testing.assert_allclose(whole.numpy(), expected, rtol=0, atol=ATOL)
    np.testing.assert_allclose(ssim(clean, other).numpy(), expected, rtol=0, atol=ATOL)


def test_small_or_mismatched_images_are_errors() -> None:
    with pytest.raises(ValueError, match="at least 11"):
        ssim(torch.rand(2, 3, 10, 32), torch.rand(2, 3, 10, 32))
    with pytest.raises(ValueError, match="shapes differ"):
        ssim(torch.rand(2, 3, 16, 16), torch.rand(1, 3, 16, 16))
    with pytest.raises(ValueError, match="M×C×H×W"):
        ssim(torch.rand(3, 16, 16), torch.rand(3, 16, 16))


def test_metric_wraps_ssim() -> None:
    clean = photo_crops()
    metric = SSIMMetric()
    assert metric.higher_is_better and metric.needs == ("original", "corrupted")
    values = metric(original=clean, corrupted=clean.flip(0), probs_original=torch.ones(3, 2))
    np.testing.assert_allclose(values.numpy(), skimage_ssim(clean, clean.flip(0)), atol=ATOL)


def test_float32_matches_skimage_on_full_size_photos_blends_and_flat_images() -> None:
    """SSIM runs in float32 (3× cheaper than float64); it must stay within ATOL of skimage.

    The flat bright image is the hard case: uncentred float32 moments cancel there
    (``E[x²] − E[x]²`` with E[x] ≈ 1) and were 4e-5 off; the −0.5 shift fixes it.
    """
    photos = [data.chelsea(), data.astronaut(), data.coffee()]
    clean = torch.stack([
        torch.nn.functional.interpolate(
            torch.tensor(p).permute(2, 0, 1)[None].float() / 255, size=(224, 224), mode="bilinear", antialias=True
        )[0]
        for p in photos
    ]).clamp(0, 1)
    generator = torch.Generator().manual_seed(2)
    others = []
    for alpha in (0.03, 0.15, 0.5):  # eXIAA-style blends of 30% of the entries
        mask = torch.rand(clean.shape, generator=generator) < 0.3
        blended = clean.clone()
        blended[mask] = ((1 - alpha) * clean + alpha * clean.flip(0))[mask]
        others.append(blended)
    others.append(torch.rand(clean.shape, generator=generator))
    others.append(torch.full_like(clean, 0.999))
    others.append(0.2 + 1e-3 * torch.rand(clean.shape, generator=generator))
    for other in others:
        values = ssim(clean, other)
        assert values.dtype == torch.float64
        np.testing.assert_allclose(values.numpy(), skimage_ssim(clean, other), rtol=0, atol=ATOL)
        np.testing.assert_allclose(ssim(other, other).numpy(), 1.0, atol=1e-7)
