"""FPA (Algorithm 1 of the FPA paper) and Rectangle (random erasing): real properties.

The vectorised FPA mask is compared with a per-pixel loop written here from Algorithm 1,
fed the same random draws; rates are checked against their expectations with tolerances
from the binomial (and uniform) variances.
"""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats

from xaibench.errors import ConfigError
from xaibench.training.augment import FeaturePerturbation, FPADraws, RandomRectangle


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def reference_fpa_mask(draws: FPADraws, height: int, width: int) -> torch.Tensor:
    """Algorithm 1, literally: for every image and pixel, zero it with p1, and with p2 zero the
    s×s square whose top-left corner it is (``X[h:h+s, w:w+s]``, clipped at the border)."""
    assert draws.selected
    batch = draws.pixel.shape[0]
    mask = torch.zeros(batch, height, width, dtype=torch.bool)
    for k in range(batch):
        for h in range(height):
            for w in range(width):
                if draws.pixel[k, h, w]:
                    mask[k, h, w] = True
                if draws.start[k, h, w]:
                    s = int(draws.side[k, h, w])
                    mask[k, h : h + s, w : w + s] = True
    return mask


# --------------------------------------------------------------------------------------
# FPA
# --------------------------------------------------------------------------------------


def test_fpa_is_deterministic_given_the_generator() -> None:
    x = torch.rand(4, 3, 16, 16)
    fpa = FeaturePerturbation(p=1.0)
    a = fpa(x, generator(7))
    b = fpa(x, generator(7))
    c = fpa(x, generator(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_fpa_with_p_zero_is_the_identity() -> None:
    x = torch.rand(5, 3, 12, 12)
    fpa = FeaturePerturbation(p=0.0, p1_max=0.9, p2=0.5)
    gen = generator(0)
    for _ in range(20):
        assert torch.equal(fpa(x, gen), x)


def test_fpa_does_not_modify_its_input() -> None:
    x = torch.rand(3, 1, 10, 10) + 0.1
    before = x.clone()
    out = FeaturePerturbation(p=1.0, p1_max=0.5)(x, generator(1))
    assert torch.equal(x, before)
    assert (out == 0).any()


def test_fpa_selects_a_fraction_p_of_the_mini_batches() -> None:
    fpa = FeaturePerturbation(p=0.3)
    gen = generator(2)
    n = 2000
    selected = sum(fpa.draw(1, 8, 8, gen).selected for _ in range(n))
    sd = math.sqrt(0.3 * 0.7 / n)
    assert abs(selected / n - 0.3) < 4 * sd


def test_fpa_pixel_zeroing_rate_matches_the_expected_p1() -> None:
    # p2 = 0: only single pixels. Each selected batch draws p1 ~ U(0, p1_max) and zeroes each
    # pixel with p1, so the zeroed fraction has mean p1_max / 2 and, per batch, variance
    # Var(p1) + E[p1(1 − p1)] / n_pixels.
    p1_max, batches, shape = 0.25, 300, (4, 3, 16, 16)
    fpa = FeaturePerturbation(p=1.0, p1_max=p1_max, p2=0.0)
    gen = generator(3)
    x = torch.rand(shape) * 0.9 + 0.1  # no pixel is 0 before the augmentation
    fractions = []
    for _ in range(batches):
        out = fpa(x, gen)
        zero = out == 0
        # All channels of a pixel are zeroed together.
        assert torch.equal(zero.all(dim=1), zero.any(dim=1))
        fractions.append(float(zero[:, 0].float().mean()))
    n_pixels = shape[0] * shape[2] * shape[3]
    per_batch_var = p1_max**2 / 12 + (p1_max / 2 - p1_max**2 / 3) / n_pixels
    sd_of_mean = math.sqrt(per_batch_var / batches)
    assert abs(sum(fractions) / batches - p1_max / 2) < 4 * sd_of_mean


def test_fpa_draws_one_uniform_p1_per_batch_and_zeroes_pixels_at_that_rate() -> None:
    p1_max = 0.3
    fpa = FeaturePerturbation(p=1.0, p1_max=p1_max, p2=0.0)
    gen = generator(4)
    p1s = []
    for _ in range(400):
        draws = fpa.draw(2, 32, 32, gen)
        p1s.append(draws.p1)
        n = draws.pixel.numel()
        sd = math.sqrt(max(draws.p1 * (1 - draws.p1), 1e-12) / n)
        assert abs(float(draws.pixel.float().mean()) - draws.p1) < 5 * sd + 1e-9
    assert min(p1s) >= 0.0 and max(p1s) <= p1_max
    assert stats.kstest([p / p1_max for p in p1s], "uniform").pvalue > 1e-3


def test_fpa_squares_equal_the_per_pixel_reference() -> None:
    # p1 ≈ 0: every zeroed pixel comes from a square anchored at a start pixel.
    fpa = FeaturePerturbation(p=1.0, p1_max=1e-12, p2=0.05, s_max=4)
    gen = generator(5)
    for _ in range(5):
        draws = fpa.draw(6, 16, 20, gen)
        assert not draws.pixel.any()
        assert draws.start.any()
        mask = fpa.mask_from_draws(draws)
        assert torch.equal(mask, reference_fpa_mask(draws, 16, 20))
        # Every zeroed pixel lies in a square of side ≤ s_max whose anchor is up/left of it.
        for k, h, w in mask.nonzero().tolist():
            anchors = [
                (h - a, w - b)
                for a in range(4)
                for b in range(4)
                if h - a >= 0 and w - b >= 0 and draws.start[k, h - a, w - b]
                and int(draws.side[k, h - a, w - b]) > max(a, b)
            ]
            assert anchors, (k, h, w)


def test_fpa_full_algorithm_equals_the_reference_and_the_applied_batch() -> None:
    fpa = FeaturePerturbation(p=1.0, p1_max=0.25, p2=0.1, s_max=3)
    x = torch.rand(5, 3, 12, 9) * 0.9 + 0.1
    draws = fpa.draw(5, 12, 9, generator(6))
    mask = fpa.mask_from_draws(draws)
    assert torch.equal(mask, reference_fpa_mask(draws, 12, 9))
    # __call__ makes the same draws from the same generator state and zeroes exactly the mask.
    out = fpa(x, generator(6))
    assert torch.equal(out == 0, mask.unsqueeze(1).expand_as(x))
    assert torch.equal(out[~mask.unsqueeze(1).expand_as(x)], x[~mask.unsqueeze(1).expand_as(x)])


def test_fpa_squares_are_clipped_at_the_border() -> None:
    fpa = FeaturePerturbation(p=1.0, p1_max=0.0, p2=0.0, s_max=3)
    start = torch.zeros(1, 5, 5, dtype=torch.bool)
    start[0, 4, 3] = True  # a 3×3 square at the bottom edge, one column from the right
    side = torch.full((1, 5, 5), 3)
    draws = FPADraws(True, 0.0, torch.zeros_like(start), start, side)
    expected = torch.zeros(1, 5, 5, dtype=torch.bool)
    expected[0, 4, 3:5] = True
    assert torch.equal(fpa.mask_from_draws(draws), expected)


def test_fpa_writes_value_zero_like_the_mif_lif_metric() -> None:
    out = FeaturePerturbation(p=1.0, p1_max=0.5, p2=0.1)(torch.ones(2, 3, 8, 8), generator(9))
    assert set(out.unique().tolist()) == {0.0, 1.0}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"p": 1.5}, "p must be a probability"),
        ({"p": -0.1}, "p must be a probability"),
        ({"p1_max": 1.2}, "p1_max"),
        ({"p2": float("nan")}, "p2"),
        ({"s_max": 0}, "s_max"),
        ({"s_max": 2.5}, "s_max"),
    ],
)
def test_fpa_rejects_bad_parameters(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        FeaturePerturbation(**kwargs)


def test_fpa_requires_s_max_below_the_image_side() -> None:
    fpa = FeaturePerturbation(p=1.0, s_max=8)
    with pytest.raises(ConfigError, match="s_max < min"):
        fpa(torch.rand(1, 1, 8, 16), generator(0))
    fpa(torch.rand(1, 1, 9, 16), generator(0))  # 8 < 9 is fine


def test_fpa_rejects_a_non_batch() -> None:
    with pytest.raises(ValueError, match="B×C×H×W"):
        FeaturePerturbation()(torch.rand(3, 8, 8))


# --------------------------------------------------------------------------------------
# Rectangle
# --------------------------------------------------------------------------------------


def _rectangle_of(zero: torch.Tensor) -> tuple[int, int, int, int] | None:
    """(top, left, h, w) if the zero set is exactly one axis-aligned rectangle, else fail."""
    if not zero.any():
        return None
    rows = zero.any(dim=1).nonzero().squeeze(1)
    cols = zero.any(dim=0).nonzero().squeeze(1)
    top, bottom = int(rows.min()), int(rows.max())
    left, right = int(cols.min()), int(cols.max())
    box = torch.zeros_like(zero)
    box[top : bottom + 1, left : right + 1] = True
    assert torch.equal(zero, box), "the erased pixels are not one filled rectangle"
    return top, left, bottom - top + 1, right - left + 1


@pytest.mark.parametrize(("height", "width"), [(32, 32), (24, 40)])
def test_rectangle_erases_one_rectangle_in_range(height: int, width: int) -> None:
    erase = RandomRectangle(p=1.0)
    x = torch.rand(200, 3, height, width) * 0.9 + 0.1
    out = erase(x, generator(11))
    zero = out == 0
    assert torch.equal(zero.all(dim=1), zero.any(dim=1))  # channels together
    erased = 0
    tops = []
    for k in range(x.shape[0]):
        box = _rectangle_of(zero[k, 0])
        if box is None:
            continue
        erased += 1
        top, left, h, w = box
        assert 0.02 <= h * w / (height * width) <= 0.33
        assert 0.3 <= h / w <= 1 / 0.3
        if height > h:
            tops.append(top / (height - h))
    # With 10 attempts almost every image finds a rectangle that fits.
    assert erased >= 0.95 * x.shape[0]
    # The position is uniform over where the rectangle fits: mean relative offset ≈ 1/2.
    assert abs(sum(tops) / len(tops) - 0.5) < 4 * math.sqrt(1 / 12 / len(tops)) + 0.02


def test_rectangle_erases_a_fraction_p_of_the_images() -> None:
    erase = RandomRectangle(p=0.4)
    x = torch.ones(2000, 1, 16, 16)
    erased = (erase(x, generator(12)) == 0).flatten(1).any(dim=1).float().mean()
    # Slightly below p when an image's attempts all fail; never above.
    assert abs(float(erased) - 0.4) < 4 * math.sqrt(0.4 * 0.6 / 2000) + 0.01


def test_rectangle_is_deterministic_and_p_zero_is_the_identity() -> None:
    x = torch.rand(8, 3, 20, 20)
    erase = RandomRectangle(p=1.0)
    assert torch.equal(erase(x, generator(3)), erase(x, generator(3)))
    assert not torch.equal(erase(x, generator(3)), erase(x, generator(4)))
    assert torch.equal(RandomRectangle(p=0.0)(x, generator(3)), x)


def test_rectangle_rejects_bad_parameters() -> None:
    with pytest.raises(ConfigError, match="probability"):
        RandomRectangle(p=2.0)
    with pytest.raises(ConfigError, match="area"):
        RandomRectangle(area=(0.5, 0.1))
    with pytest.raises(ConfigError, match="aspect"):
        RandomRectangle(aspect=(0.0, 1.0))
