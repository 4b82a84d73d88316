"""Batched torch SSIM against scikit-image's Wang et al. (2004) configuration."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch
from skimage import data
from skimage.metrics import structural_similarity

from xaibench.metrics import SSIMMetric, ssim


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
    np.testing.assert_allclose(ssim(a, b).numpy(), skimage_ssim(a, b), atol=1e-6)


def test_real_photos_with_noise_blur_and_injection_match_skimage() -> None:
    clean = photo_crops()
    generator = torch.Generator().manual_seed(1)
    noisy = (clean + 0.05 * torch.randn(clean.shape, generator=generator)).clamp(0, 1)
    blurred = torch.nn.functional.avg_pool2d(clean, 3, stride=1, padding=1, count_include_pad=False)
    injected = clean.clone()
    mask = torch.rand(clean.shape, generator=generator) < 0.1
    injected[mask] = 0.9 * clean[mask] + 0.1 * clean.flip(0)[mask]
    for other in (noisy, blurred, injected):
        np.testing.assert_allclose(ssim(clean, other).numpy(), skimage_ssim(clean, other), atol=1e-6)


def test_identical_images_give_one_and_single_channel_works() -> None:
    clean = photo_crops()
    np.testing.assert_allclose(ssim(clean, clean).numpy(), 1.0, atol=1e-12)
    gray = clean[:, :1]
    other = gray.flip(-1)
    np.testing.assert_allclose(ssim(gray, other).numpy(), skimage_ssim(gray, other), atol=1e-6)


def test_chunking_does_not_change_values(monkeypatch: pytest.MonkeyPatch) -> None:
    clean = photo_crops()
    other = clean.flip(0)
    whole = ssim(clean, other)
    # The package attribute ``ssim`` is the function; the module is in sys.modules.
    monkeypatch.setattr(importlib.import_module("xaibench.metrics.ssim"), "_CHUNK_ELEMENTS", 1)
    assert torch.equal(ssim(clean, other), whole)


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
    np.testing.assert_allclose(values.numpy(), skimage_ssim(clean, clean.flip(0)), atol=1e-6)
