"""Training-time occlusion augmentations on pixel-space mini-batches: FPA and Rectangle.

Both transforms take a ``B×C×H×W`` batch in pixel space ``[0, 1]`` and return a new tensor
(the input is never modified) in which some pixels, all channels together, are set to
``value``. Every random draw comes from the ``torch.Generator`` passed in, so a seeded
generator gives the same batch every time.

``value`` defaults to ``0.0`` on purpose: FPA's point is to show the model, during training,
the very perturbation the faithfulness evaluation applies later, and the MIF/LIF metric
(``mif_lif_area``) and the deletion curves set removed pixels to ``0`` in pixel space. Since
``Classifier`` normalises inside ``forward``, pixel ``0`` is what reaches the network as
``(0 − mean) / std`` in both places. Change ``value`` only together with the metric's baseline.

* ``FeaturePerturbation``: Algorithm 1 of Brocki & Chung (FPA, seed 003), vectorised.
* ``RandomRectangle``: random erasing (Zhong et al., AAAI 2020), the paper's "Rectangle"
  baseline, vectorised over the batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import ConfigError

#: The paper's settings (Appendix A / Sec. 3). CIFAR-10 (32×32) is our default because the
#: digits models run at 32×32; ImageNet and Food101 (224×224) used the second row.
FPA_CIFAR10 = {"p": 0.5, "p1_max": 0.25, "p2": 0.1, "s_max": 3}
FPA_IMAGENET = {"p": 0.5, "p1_max": 0.3, "p2": 0.01, "s_max": 10}


def _check_batch(name: str, x: Tensor) -> None:
    if x.ndim != 4:
        raise ValueError(f"{name}: expected a B×C×H×W batch, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name}: expected floating-point pixels, got {x.dtype}")


def _check_probability(name: str, key: str, value: float, *, closed_top: bool = True) -> float:
    value = float(value)
    top_ok = value <= 1.0 if closed_top else value < 1.0
    if not (value >= 0.0 and top_ok) or math.isnan(value):
        interval = "[0, 1]" if closed_top else "[0, 1)"
        raise ConfigError(f"{name}: {key} must be a probability in {interval}, got {value!r}")
    return value


def _draw_device(x: Tensor, generator: torch.Generator | None) -> torch.device:
    # torch.rand with a generator must draw on the generator's device; the masks move to x's.
    return generator.device if generator is not None else x.device


@dataclass(frozen=True)
class FPADraws:
    """The random draws FPA makes for one mini-batch (``selected`` False: nothing else drawn).

    ``pixel``: ``B×H×W`` bool, pixels zeroed one by one (probability ``p1``);
    ``start``: ``B×H×W`` bool, pixels where a square starts (probability ``p2``);
    ``side``: ``B×H×W`` int64 in ``1..s_max``, the side of the square starting there
    (drawn for every pixel, read only where ``start`` is set).
    """

    selected: bool
    p1: float
    pixel: Tensor | None
    start: Tensor | None
    side: Tensor | None


class FeaturePerturbation:
    """Feature perturbation augmentation (FPA), Algorithm 1 of Brocki & Chung, on a mini-batch.

    With probability ``p`` the mini-batch is selected. In a selected batch one
    ``p1 ~ U(0, p1_max)`` is drawn for the whole batch; then, independently for every pixel
    of every image, the pixel (all channels) is set to ``value`` with probability ``p1``, and
    with probability ``p2`` an ``s×s`` square of ``value`` starts at that pixel, ``s`` uniform
    in ``{1, …, s_max}``, extending right and down and clipped at the border (the paper's
    ``X[w:w+s, h:h+s]``). The order of the two steps does not matter: both write ``value``.

    Vectorised: three tensor draws per batch, then for each side ``s`` the squares of that
    side are painted at once by a stride-1 ``s×s`` max-pool of their start mask, padded by
    ``s − 1`` on the top and left so that the window ending at a pixel covers the starts
    up to ``s − 1`` rows above and columns to the left of it (the squares' top-left anchors).

    Defaults are the paper's CIFAR-10 setting (32×32 images): ``p=0.5, p1_max=0.25,
    p2=0.1, s_max=3``. For ImageNet and Food101 (224×224) the paper used ``p1_max=0.3,
    p2=0.01, s_max=10`` (``FPA_IMAGENET``). ``value`` must be what the faithfulness metric
    writes for a removed pixel: ``0`` in pixel space (see the module docstring).
    """

    def __init__(
        self,
        p: float = 0.5,
        p1_max: float = 0.25,
        p2: float = 0.1,
        s_max: int = 3,
        value: float = 0.0,
    ):
        name = "FPA"
        self.p = _check_probability(name, "p", p)
        self.p1_max = _check_probability(name, "p1_max", p1_max)
        self.p2 = _check_probability(name, "p2", p2)
        if isinstance(s_max, bool) or int(s_max) != s_max or int(s_max) < 1:
            raise ConfigError(f"{name}: s_max must be an integer ≥ 1, got {s_max!r}")
        self.s_max = int(s_max)
        self.value = float(value)
        if not math.isfinite(self.value):
            raise ConfigError(f"{name}: value must be finite, got {value!r}")

    def params(self) -> dict[str, float | int]:
        return {"p": self.p, "p1_max": self.p1_max, "p2": self.p2, "s_max": self.s_max, "value": self.value}

    def __repr__(self) -> str:
        return "FeaturePerturbation(" + ", ".join(f"{k}={v!r}" for k, v in self.params().items()) + ")"

    def check_size(self, height: int, width: int) -> None:
        """Algorithm 1 requires ``s_max < min(W, H)``."""
        if self.s_max >= min(height, width):
            raise ConfigError(
                f"FPA: s_max must be smaller than the image's shorter side (Algorithm 1 requires "
                f"s_max < min(W, H)); got s_max={self.s_max} for {height}×{width} images"
            )

    def draw(
        self, batch: int, height: int, width: int, generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
    ) -> FPADraws:
        """Every random draw for one mini-batch, in a fixed order (selection, p1, masks)."""
        self.check_size(height, width)
        device = generator.device if generator is not None else torch.device(device)
        selected = bool(torch.rand((), generator=generator, device=device) < self.p)
        if not selected:
            return FPADraws(False, 0.0, None, None, None)
        p1 = float(torch.rand((), generator=generator, device=device)) * self.p1_max
        shape = (batch, height, width)
        pixel = torch.rand(shape, generator=generator, device=device) < p1
        start = torch.rand(shape, generator=generator, device=device) < self.p2
        side = torch.randint(1, self.s_max + 1, shape, generator=generator, device=device)
        return FPADraws(True, p1, pixel, start, side)

    def mask_from_draws(self, draws: FPADraws) -> Tensor | None:
        """``B×H×W`` bool: the pixels set to ``value`` (``None`` for an unselected batch)."""
        if not draws.selected:
            return None
        assert draws.pixel is not None and draws.start is not None and draws.side is not None
        mask = draws.pixel.clone()
        for s in range(1, self.s_max + 1):
            starts = (draws.start & (draws.side == s)).unsqueeze(1)
            if not bool(starts.any()):
                continue
            padded = F.pad(starts.float(), (s - 1, 0, s - 1, 0))  # left, right, top, bottom
            mask |= F.max_pool2d(padded, kernel_size=s, stride=1).squeeze(1) > 0
        return mask

    def mask(
        self, batch: int, height: int, width: int, generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
    ) -> Tensor | None:
        """``B×H×W`` bool mask of one mini-batch (``None`` when the batch is not selected)."""
        return self.mask_from_draws(self.draw(batch, height, width, generator, device))

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """The augmented batch: a new tensor, or ``x`` itself when the batch is not selected."""
        _check_batch("FPA", x)
        batch, _, height, width = x.shape
        mask = self.mask(batch, height, width, generator, _draw_device(x, generator))
        if mask is None:
            return x
        return x.masked_fill(mask.to(x.device).unsqueeze(1), self.value)


class RandomRectangle:
    """Random erasing (Zhong et al. 2020), the FPA paper's "Rectangle" baseline.

    Each image is erased with probability ``p``: one rectangle of area ``S_e = U(sl, sh)·H·W``
    and aspect ratio ``r_e = h/w ~ U(r1, r2)`` (Zhong's defaults ``sl=0.02, sh=0.33,
    r1=0.3, r2=1/0.3``), at a uniformly random position where it fits, is set to ``value``
    (all channels). Zhong et al. redraw until the rectangle fits; here ``attempts`` draws are
    made per image at once and the first one that fits is used (sides rounded to whole
    pixels, and an attempt counts only if its rounded area fraction and aspect ratio are
    still inside the ranges). An image whose attempts all fail is left as it is (torchvision's
    ``RandomErasing`` does the same; with 10 attempts this is rare). Vectorised over the batch:
    the masks are broadcast comparisons of row and column indices with each rectangle's
    bounds. ``value`` is ``0`` for the same reason as in ``FeaturePerturbation``.
    """

    def __init__(
        self,
        p: float = 0.5,
        area: tuple[float, float] = (0.02, 0.33),
        aspect: tuple[float, float] = (0.3, 1 / 0.3),
        value: float = 0.0,
        attempts: int = 10,
    ):
        name = "Rectangle"
        self.p = _check_probability(name, "p", p)
        low, high = (float(a) for a in area)
        if not 0.0 < low <= high <= 1.0:
            raise ConfigError(f"{name}: area must satisfy 0 < low ≤ high ≤ 1, got {area!r}")
        r_low, r_high = (float(r) for r in aspect)
        if not 0.0 < r_low <= r_high:
            raise ConfigError(f"{name}: aspect must satisfy 0 < low ≤ high, got {aspect!r}")
        if int(attempts) < 1:
            raise ConfigError(f"{name}: attempts must be ≥ 1, got {attempts!r}")
        self.area = (low, high)
        self.aspect = (r_low, r_high)
        self.value = float(value)
        self.attempts = int(attempts)

    def params(self) -> dict[str, object]:
        return {"p": self.p, "area": list(self.area), "aspect": list(self.aspect), "value": self.value}

    def __repr__(self) -> str:
        return "RandomRectangle(" + ", ".join(f"{k}={v!r}" for k, v in self.params().items()) + ")"

    def boxes(
        self, batch: int, height: int, width: int, generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """Per image: ``erased`` (bool) and ``top, left, h, w`` (int64) of its rectangle."""
        device = generator.device if generator is not None else torch.device(device)
        k = self.attempts
        erased = torch.rand(batch, generator=generator, device=device) < self.p
        u_area = torch.rand(batch, k, generator=generator, device=device, dtype=torch.float64)
        u_aspect = torch.rand(batch, k, generator=generator, device=device, dtype=torch.float64)
        u_top = torch.rand(batch, k, generator=generator, device=device, dtype=torch.float64)
        u_left = torch.rand(batch, k, generator=generator, device=device, dtype=torch.float64)
        total = height * width
        target = (self.area[0] + (self.area[1] - self.area[0]) * u_area) * total
        ratio = self.aspect[0] + (self.aspect[1] - self.aspect[0]) * u_aspect
        h = torch.sqrt(target * ratio).round().long()
        w = torch.sqrt(target / ratio).round().long()
        fraction = (h * w).double() / total
        real_ratio = h.double() / w.clamp(min=1).double()
        ok = (
            (h >= 1) & (w >= 1) & (h <= height) & (w <= width)
            & (fraction >= self.area[0]) & (fraction <= self.area[1])
            & (real_ratio >= self.aspect[0]) & (real_ratio <= self.aspect[1])
        )
        # The first attempt that fits: argmax of a bool row is its first True.
        first = ok.to(torch.uint8).argmax(dim=1, keepdim=True)
        erased &= ok.any(dim=1)
        h = h.gather(1, first).squeeze(1)
        w = w.gather(1, first).squeeze(1)
        # Uniform top-left among the positions where the rectangle fits.
        top = (u_top.gather(1, first).squeeze(1) * (height - h + 1)).floor().long().clamp(min=0)
        left = (u_left.gather(1, first).squeeze(1) * (width - w + 1)).floor().long().clamp(min=0)
        top = torch.minimum(top, (height - h).clamp(min=0))
        left = torch.minimum(left, (width - w).clamp(min=0))
        return erased, top, left, h, w

    def mask(
        self, batch: int, height: int, width: int, generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
    ) -> Tensor:
        """``B×H×W`` bool: the erased pixels (all False for images that are not erased)."""
        erased, top, left, h, w = self.boxes(batch, height, width, generator, device)
        rows = torch.arange(height, device=top.device).view(1, height, 1)
        cols = torch.arange(width, device=top.device).view(1, 1, width)
        inside_rows = (rows >= top.view(-1, 1, 1)) & (rows < (top + h).view(-1, 1, 1))
        inside_cols = (cols >= left.view(-1, 1, 1)) & (cols < (left + w).view(-1, 1, 1))
        return inside_rows & inside_cols & erased.view(-1, 1, 1)

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """The augmented batch (a new tensor)."""
        _check_batch("Rectangle", x)
        batch, _, height, width = x.shape
        mask = self.mask(batch, height, width, generator, _draw_device(x, generator))
        return x.masked_fill(mask.to(x.device).unsqueeze(1), self.value)


AUGMENTATIONS = ("none", "fpa", "rectangle")


def build_augmentation(
    augmentation: str,
    *,
    fpa_p: float = FPA_CIFAR10["p"],
    fpa_p1_max: float = FPA_CIFAR10["p1_max"],
    fpa_p2: float = FPA_CIFAR10["p2"],
    fpa_s_max: int = FPA_CIFAR10["s_max"],
    rectangle_p: float = 0.5,
    value: float = 0.0,
) -> FeaturePerturbation | RandomRectangle | None:
    """The transform named ``augmentation`` ("none" → ``None``); ``value`` is the
    non-informative pixel value it writes (pixel space; 0.5 = the FPA paper's 0 in [−1, 1])."""
    if augmentation == "none":
        return None
    if augmentation == "fpa":
        return FeaturePerturbation(p=fpa_p, p1_max=fpa_p1_max, p2=fpa_p2, s_max=fpa_s_max, value=value)
    if augmentation == "rectangle":
        return RandomRectangle(p=rectangle_p, value=value)
    raise ConfigError(
        f"unknown augmentation {augmentation!r}; expected one of {', '.join(AUGMENTATIONS)}"
    )


__all__ = [
    "AUGMENTATIONS",
    "FPA_CIFAR10",
    "FPA_IMAGENET",
    "FPADraws",
    "FeaturePerturbation",
    "RandomRectangle",
    "build_augmentation",
]
