"""to_model_pixels: ImageNet-eval resize + centre crop, against independent implementations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from xaibench.datasets import to_model_pixels


def _chelsea() -> np.ndarray:
    import skimage.data

    return skimage.data.chelsea()


def _pil_reference(array: np.ndarray, crop: tuple[int, int]) -> torch.Tensor:
    """Short side → round(min(crop)·256/224) (bicubic), centre crop, /255: written out by hand."""
    image = Image.fromarray(array)
    short = round(min(crop) * 256 / 224)
    w, h = image.size
    new_w, new_h = (short, int(short * h / w)) if w <= h else (int(short * w / h), short)
    image = image.resize((new_w, new_h), Image.Resampling.BICUBIC)
    top, left = int(round((new_h - crop[0]) / 2)), int(round((new_w - crop[1]) / 2))
    image = image.crop((left, top, left + crop[1], top + crop[0]))
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)


@pytest.mark.parametrize("crop", [(64, 64), (224, 224), (56, 72), (36, 40)])
def test_matches_a_hand_written_pil_resize_and_crop(crop: tuple[int, int]) -> None:
    chelsea = _chelsea()
    pixels = to_model_pixels(chelsea, crop, channels=3)
    assert pixels.shape == (3, *crop) and pixels.dtype == torch.float32
    assert torch.equal(pixels, _pil_reference(chelsea, crop))


def test_matches_torchvision_eval_transform() -> None:
    transforms = pytest.importorskip("torchvision.transforms")
    chelsea = _chelsea()
    reference = transforms.Compose(
        [
            transforms.Resize(256, interpolation=transforms.InterpolationMode.BICUBIC),
            transforms.CenterCrop(224),
            transforms.ToTensor(),
        ]
    )(Image.fromarray(chelsea))
    assert torch.allclose(to_model_pixels(chelsea, (224, 224)), reference, atol=1e-7)
    # The same from a PIL image as from an array.
    assert torch.equal(to_model_pixels(Image.fromarray(chelsea), 224), to_model_pixels(chelsea, 224))


def test_grayscale_is_repeated_and_colour_averaged() -> None:
    chelsea = _chelsea()
    gray = chelsea.mean(axis=2).round().astype(np.uint8)
    repeated = to_model_pixels(gray, (32, 32), channels=3)
    assert repeated.shape == (3, 32, 32)
    assert torch.equal(repeated[0], repeated[1]) and torch.equal(repeated[1], repeated[2])
    assert torch.equal(repeated[:1], to_model_pixels(gray, (32, 32), channels=1))
    one = to_model_pixels(chelsea, (32, 32), channels=1)
    assert one.shape == (1, 32, 32)
    assert torch.allclose(one[0], to_model_pixels(chelsea, (32, 32)).mean(dim=0))


def test_alpha_is_dropped() -> None:
    chelsea = _chelsea()
    alpha = np.random.default_rng(0).integers(0, 256, chelsea.shape[:2], dtype=np.uint8)
    rgba = np.dstack([chelsea, alpha])
    expected = to_model_pixels(chelsea, (48, 48))
    assert torch.equal(to_model_pixels(rgba, (48, 48)), expected)
    assert torch.equal(to_model_pixels(Image.fromarray(rgba, mode="RGBA"), (48, 48)), expected)


def test_float_and_16_bit_inputs_agree_with_uint8() -> None:
    chelsea = _chelsea()
    expected = to_model_pixels(chelsea, (40, 40))
    as_float = to_model_pixels(chelsea.astype(np.float64) / 255.0, (40, 40))
    as_uint16 = to_model_pixels(chelsea.astype(np.uint16) * 257, (40, 40))
    for pixels in (as_float, as_uint16):
        assert pixels.dtype == torch.float32 and pixels.shape == expected.shape
        assert 0.0 <= float(pixels.min()) and float(pixels.max()) <= 1.0
        # uint8 resizing rounds to 1/255; float resizing does not.
        assert float((pixels - expected).abs().max()) <= 1.0 / 255 + 1e-6


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="channels"):
        to_model_pixels(np.zeros((8, 8), np.uint8), (4, 4), channels=2)
    with pytest.raises(ValueError, match="input_size"):
        to_model_pixels(np.zeros((8, 8), np.uint8), (0, 4))
    with pytest.raises(ValueError, match="shape"):
        to_model_pixels(np.zeros((2, 8, 8, 3), np.uint8), (4, 4))


def test_a_tall_crop_that_does_not_fit_is_covered_not_padded() -> None:
    # 300×451 → short side round(33·256/224) = 38 is shorter than the 40-pixel crop height:
    # the image is scaled up to cover the crop rather than padded with black.
    pixels = to_model_pixels(_chelsea(), (40, 33))
    assert pixels.shape == (3, 40, 33)
    assert bool((pixels[:, 0].sum(dim=0) > 0).all()) and bool((pixels[:, -1].sum(dim=0) > 0).all())
