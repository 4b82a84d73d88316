"""Faithfulness metrics (specs/metrics.md): insertion, deletion, INFD and the MIF/LIF area.

Each metric implements ``xaibench.types.FaithfulnessMetric``: ``evaluate`` gets the model as
a logits function and returns per-image scores (float64) with their curves. Perturbed
images are built lazily from rank masks (``perturbation.masked_outputs``) and forwarded in
chunks of ``chunk_size`` images across all images and steps of the batch, so a chunk may
mix images; the values do not depend on the chunking or on the batch (tested).

Images whose attributions are not all finite get a NaN score (reported, not hidden).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Literal, get_args

import torch
from torch import Tensor

from ..errors import ConfigError
from ..registry import metrics
from ..types import FaithfulnessMetric, FaithfulnessResult
from .perturbation import (
    Reduction,
    blur,
    check_inputs,
    check_positive_int,
    check_reduction,
    finite_rows,
    masked_outputs,
    pixel_scores,
    rank_pixels,
    trapezoid_auc,
)

Protocol = Literal["default", "attexplore_reference"]
Canvas = Literal["blur", "zeros"]
PROTOCOLS: tuple[str, ...] = get_args(Protocol)
CANVASES: tuple[str, ...] = get_args(Canvas)


def _check_protocol(metric: str, protocol: str) -> str:
    if protocol not in PROTOCOLS:
        raise ConfigError(
            f"{metric}: protocol must be one of {', '.join(map(repr, PROTOCOLS))}, got {protocol!r}"
        )
    return protocol


# --------------------------------------------------------------------------------------
# Insertion / deletion (Petsiuk et al. 2018)
# --------------------------------------------------------------------------------------


class _CausalMetric(FaithfulnessMetric):
    """Shared insertion/deletion game: move from ``start`` to ``finish`` most-important-first.

    Default protocol: pixels are ranked by the reduced attribution (``reduction``), and
    ``ceil(H·W/steps)`` pixels (all channels) change per step; the softmax probability of
    ``target`` is recorded before the first step and after each one (``n + 1`` points,
    ``n = ceil(H·W / pixels_per_step)``); ``curve_x`` is the fraction of pixels changed and
    the score is the trapezoid area over it.

    ``protocol="attexplore_reference"`` is ``CausalMetric.evaluate`` of the AttEXplore/MFABA
    code (specs/attexplore.md §5.3): zeros as the substrate of both games, no channel
    reduction — each channel ranked by its raw signed value — and after ``k`` steps every
    pixel that is among the top ``k·pixels_per_step`` of *any* channel changed (the union of
    the three channels' blocks, all channels written); ``curve_x = k/n`` as its AUC.
    It scores ``target``: pass the predicted class, as the runner does. At 224×224 with the
    default ``steps = 224`` this is its 224 positions per step and 225 points.
    """

    mode: str  # "deletion" or "insertion"
    value_range = (0.0, 1.0)  # the area under a probability curve over [0, 1]

    def __init__(self, steps: int, reduction: str, protocol: str) -> None:
        self.steps = check_positive_int(self.name, "steps", steps)
        self.reduction = check_reduction(self.name, reduction)
        self.protocol = _check_protocol(self.name, protocol)
        if self.protocol == "attexplore_reference" and self.reduction != "abs":
            raise ConfigError(
                f"{self.name}: reduction={reduction!r} has no effect with "
                "protocol='attexplore_reference', which ranks each channel's raw values; "
                "leave reduction at its default"
            )

    def _canvas(self, x01: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def evaluate(
        self,
        forward: Callable[[Tensor], Tensor],
        x01: Tensor,
        attributions: Tensor,
        target: Tensor,
        *,
        seeds: Sequence[int],
        chunk_size: int = 8,
        multiplies_by_inputs: bool = False,
    ) -> FaithfulnessResult:
        check_inputs(self.name, x01, attributions, target, chunk_size)
        n_images, _, height, width = x01.shape
        pixels = height * width
        per_step = math.ceil(pixels / self.steps)
        n_steps = math.ceil(pixels / per_step)
        reference = self.protocol == "attexplore_reference"
        attributions = attributions.to(x01.device)
        if reference:
            # Per-channel ranks; a pixel changes once any channel's rank reaches it.
            raw = torch.nan_to_num(attributions.detach().to(torch.float64), nan=0.0, posinf=0.0, neginf=0.0)
            per_channel = rank_pixels(raw.flatten(0, 1).flatten(1)).view(n_images, -1, pixels)
            ranks = per_channel.min(dim=1).values
            canvas = torch.zeros_like(x01)
        else:
            ranks = rank_pixels(pixel_scores(attributions, x01, self.reduction, multiplies_by_inputs))
            canvas = self._canvas(x01)
        start, finish = (x01, canvas) if self.mode == "deletion" else (canvas, x01)

        points = n_steps + 1
        k = torch.arange(points)
        count = k * per_step  # ranks < count change; beyond H·W nothing is left to change
        image = torch.arange(n_images).repeat_interleave(points)
        values = masked_outputs(
            forward,
            start,
            finish,
            ranks,
            image,
            image,
            count.repeat(n_images),
            target.detach().to("cpu").long(),
            chunk_size=int(chunk_size),
            softmax=True,
        )
        curves = values.view(n_images, points)
        if reference:
            curve_x = k.to(torch.float64) / n_steps
        else:
            curve_x = count.clamp(max=pixels).to(torch.float64) / pixels
        scores = trapezoid_auc(curves, curve_x)
        scores[~finite_rows(attributions).cpu()] = math.nan
        return FaithfulnessResult(
            scores=scores,
            curves={self.name: curves},
            curve_x=curve_x,
            forward_images=n_images * points,
        )


@metrics.register("deletion")
class Deletion(_CausalMetric):
    """Deletion (Petsiuk et al. 2018): replace pixels by ``baseline`` most-important-first.

    Area under the target's softmax-probability curve, x normalised to [0, 1]; a faithful
    explanation makes the probability fall fast, so ``higher_is_better = False``.
    ``baseline`` is a pixel value in [0, 1] (0 = black; the reference protocol needs 0).
    """

    name = "deletion"
    title = "deletion"
    summary = "area under the target's probability as pixels are deleted most-important-first (Petsiuk et al. 2018)"
    higher_is_better = False
    mode = "deletion"

    def __init__(
        self, steps: int = 224, reduction: Reduction = "abs", baseline: float = 0.0, protocol: Protocol = "default"
    ) -> None:
        super().__init__(steps, reduction, protocol)
        if isinstance(baseline, bool) or not isinstance(baseline, int | float) or not 0.0 <= baseline <= 1.0:
            raise ConfigError(f"deletion: baseline must be a pixel value in [0, 1], got {baseline!r}")
        self.baseline = float(baseline)
        if self.protocol == "attexplore_reference" and self.baseline != 0.0:
            raise ConfigError(
                "deletion: protocol='attexplore_reference' deletes to zeros; "
                f"baseline={baseline!r} contradicts it"
            )

    def _canvas(self, x01: Tensor) -> Tensor:
        return torch.full((1, 1, 1, 1), self.baseline, dtype=x01.dtype, device=x01.device).expand_as(x01)


@metrics.register("insertion")
class Insertion(_CausalMetric):
    """Insertion (Petsiuk et al. 2018): reveal the image on a canvas most-important-first.

    ``canvas="blur"`` (default): RISE's blurred copy of the image (``gkern(11, 5)``, per
    channel, zero padding), computed in pixel space; ``"zeros"``: a black canvas. The
    reference protocol always uses zeros (its resolved parameters say so). Area under the target's
    softmax-probability curve; ``higher_is_better = True``.
    """

    name = "insertion"
    title = "insertion"
    summary = "area under the target's probability as pixels are revealed most-important-first (Petsiuk et al. 2018)"
    higher_is_better = True
    mode = "insertion"

    def __init__(
        self, steps: int = 224, reduction: Reduction = "abs", canvas: Canvas = "blur", protocol: Protocol = "default"
    ) -> None:
        super().__init__(steps, reduction, protocol)
        if canvas not in CANVASES:
            raise ConfigError(
                f"insertion: canvas must be one of {', '.join(map(repr, CANVASES))}, got {canvas!r}"
            )
        # The reference fixes a black substrate (§5.3); the default 'blur' cannot be told
        # apart from an explicit one, so it is overridden rather than rejected.
        self.canvas = "zeros" if self.protocol == "attexplore_reference" else canvas

    def _canvas(self, x01: Tensor) -> Tensor:
        return blur(x01) if self.canvas == "blur" else torch.zeros_like(x01)

    @classmethod
    def effective_params(cls, params: dict[str, Any]) -> dict[str, Any]:
        """The reference protocol inserts onto zeros whatever ``canvas`` says."""
        if params.get("protocol") == "attexplore_reference":
            return {**params, "canvas": "zeros"}
        return params


# --------------------------------------------------------------------------------------
# INFD (Yeh et al. 2019)
# --------------------------------------------------------------------------------------

#: The perturbation distributions of ``Infidelity`` (``perturbation=``).
Perturbation = Literal["gaussian", "noisy_baseline", "square_removal"]
INFD_PERTURBATIONS: tuple[str, ...] = get_args(Perturbation)

#: The parameters each perturbation reads beyond the shared ones; the others must stay at
#: their defaults (``Infidelity`` refuses them) and are left out of the resolved parameters.
_INFD_OWN_PARAMS = {
    "gaussian": ("sigma",),
    "noisy_baseline": ("baseline_sigma",),
    "square_removal": ("square_sizes", "square_value"),
}

#: Yeh et al.'s square side lengths in pixels: ``rads = np.arange(10) + 1`` in
#: ``get_exp_infid`` of their code (chihkuanyeh/saliency_evaluation, 28×28 MNIST).
YEH_SQUARE_SIZES = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10)


def infidelity_perturbations(seed: int, count: int, shape: Sequence[int], sigma: float) -> Tensor:
    """The ``count`` perturbations ``I`` of one image: ``sigma·N(0, 1)`` float32 on the CPU.

    Drawn one ``C×H×W`` sample at a time from ``torch.Generator().manual_seed(seed)``, so
    sample ``j`` never depends on how the samples are chunked. ``Infidelity`` (with its
    default ``perturbation="gaussian"``) draws exactly this sequence (lazily); tests use this
    function to build captum's perturbation bank. ``Infidelity.draws`` gives the draws of
    every perturbation.
    """
    generator = torch.Generator().manual_seed(int(seed))
    return torch.stack([torch.randn(tuple(shape), generator=generator) * sigma for _ in range(count)])


def square_placements(height: int, width: int, sizes: Sequence[int]) -> list[tuple[int, int]]:
    """``(size, number of positions)`` of each square size that fits in ``height × width``.

    The placements are numbered size by size, then row by row, then column by column — the
    order of Yeh et al.'s ``get_imageset`` loops — and ``Infidelity`` draws one uniformly.
    """
    return [(s, (height - s + 1) * (width - s + 1)) for s in sizes if s <= height and s <= width]


def _positive(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not (0.0 < value < math.inf):
        raise ConfigError(f"infidelity: {name} must be a positive number (pixel units), got {value!r}")
    return float(value)


@metrics.register("infidelity", aliases=("infd",))
class Infidelity(FaithfulnessMetric):
    """INFD: ``E_I[(Iᵀa − (f(x) − f(x − I)))²]``, ``f`` the target logit (Yeh et al. 2019).

    ``perturbation`` chooses the distribution of ``I`` (each draw comes from a generator
    seeded with the image's seed, one sample after the other):

    * ``"gaussian"`` (default, the spec): ``I = sigma·N(0, 1)`` per entry, pixel units, no
      clipping (``x − I`` may leave [0, 1] by a few σ).
    * ``"noisy_baseline"`` (Yeh et al.'s noisy baseline): the perturbed image is
      ``x̃ = clip(baseline_sigma·N(0, 1), 0, 1)`` per entry — independent of ``x`` — and
      ``I = x − x̃``. This is their code's ``set_zero_infid`` with every pixel perturbed:
      ``I = clip(x + 0.2·z, x − 1, x)``, i.e. ``x − I = clip(−0.2·z, 0, 1)``.
    * ``"square_removal"`` (Yeh et al.'s square removal): one square (all channels) is set
      to ``square_value``; its side and position are drawn uniformly among all placements of
      the ``square_sizes`` that fit (Yeh enumerates all of them with equal weight; sizes
      larger than the image are left out). ``I = x − x̃`` for raw attributions; when the
      explainer declares ``multiplies_by_inputs`` (``a`` already holds the input factor),
      ``I`` is the square's indicator, as Yeh's code pairs a binary ``I`` with the
      explanation times the input (``binary_I``).

    ``normalize=True`` (default) is Yeh's optimally scaled, scale-invariant variant (captum's
    ``normalize``): ``a`` is rescaled by ``β = Σ(Iᵀa)Δf / Σ(Iᵀa)²`` first (β = 0 when every
    ``Iᵀa`` is 0). Equal to ``captum.metrics.infidelity`` given the same ``(I, x̃)`` draws.
    ``higher_is_better = False``.
    """

    name = "infidelity"
    title = "INFD"
    summary = "infidelity: expected squared error of Iᵀa against the model's change under perturbations I (Yeh et al. 2019)"
    higher_is_better = False
    value_range = (0.0, None)

    def __init__(
        self,
        n_perturb_samples: int = 32,
        sigma: float = 0.01,
        normalize: bool = True,
        perturbation: Perturbation = "gaussian",
        baseline_sigma: float = 0.2,
        square_sizes: Sequence[int] = YEH_SQUARE_SIZES,
        square_value: float = 0.0,
    ) -> None:
        self.n_perturb_samples = check_positive_int(self.name, "n_perturb_samples", n_perturb_samples)
        self.sigma = _positive("sigma", sigma)
        if not isinstance(normalize, bool):
            raise ConfigError(f"infidelity: normalize must be true or false, got {normalize!r}")
        self.normalize = normalize
        if perturbation not in INFD_PERTURBATIONS:
            raise ConfigError(
                f"infidelity: perturbation must be one of {', '.join(map(repr, INFD_PERTURBATIONS))}, "
                f"got {perturbation!r}"
            )
        self.perturbation = perturbation
        self.baseline_sigma = _positive("baseline_sigma", baseline_sigma)
        if (
            isinstance(square_sizes, str | bytes)
            or not isinstance(square_sizes, Sequence)
            or not square_sizes
            or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in square_sizes)
            or len(set(square_sizes)) != len(square_sizes)
        ):
            raise ConfigError(
                f"infidelity: square_sizes must be a non-empty list of distinct positive side lengths "
                f"in pixels, got {square_sizes!r}"
            )
        self.square_sizes = tuple(int(s) for s in square_sizes)
        if (
            isinstance(square_value, bool)
            or not isinstance(square_value, int | float)
            or not 0.0 <= square_value <= 1.0
        ):
            raise ConfigError(f"infidelity: square_value must be a pixel value in [0, 1], got {square_value!r}")
        self.square_value = float(square_value)
        # A parameter of another perturbation would be silently ignored: say so.
        defaults = {"sigma": 0.01, "baseline_sigma": 0.2, "square_sizes": YEH_SQUARE_SIZES, "square_value": 0.0}
        current = {
            "sigma": self.sigma,
            "baseline_sigma": self.baseline_sigma,
            "square_sizes": self.square_sizes,
            "square_value": self.square_value,
        }
        for name in defaults:
            if name not in _INFD_OWN_PARAMS[perturbation] and current[name] != defaults[name]:
                raise ConfigError(
                    f"infidelity: {name} has no effect with perturbation={perturbation!r}; leave it at its default"
                )

    @classmethod
    def effective_params(cls, params: dict[str, Any]) -> dict[str, Any]:
        """The shared parameters and those of the chosen perturbation only."""
        own = _INFD_OWN_PARAMS.get(params.get("perturbation", "gaussian"), ())
        others = {name for names in _INFD_OWN_PARAMS.values() for name in names} - set(own)
        return {k: v for k, v in params.items() if k not in others}

    def _draw(
        self, generator: torch.Generator, image: Tensor, binary: bool, placements: list[tuple[int, int]]
    ) -> tuple[Tensor, Tensor]:
        """One sample for one ``C×H×W`` image: ``(x̃, I)``, ``x̃`` in the image's dtype and
        device, ``I`` float64 on that device (what ``Iᵀa`` uses)."""
        shape = tuple(image.shape)
        if self.perturbation == "gaussian":
            noise = (torch.randn(shape, generator=generator) * self.sigma).to(image.device)
            return image - noise.to(image.dtype), noise.to(torch.float64)
        if self.perturbation == "noisy_baseline":
            noisy = (torch.randn(shape, generator=generator) * self.baseline_sigma).clamp_(0.0, 1.0)
            perturbed = noisy.to(image.device, image.dtype)
            return perturbed, image.to(torch.float64) - perturbed.to(torch.float64)
        total = sum(count for _, count in placements)
        k = int(torch.randint(total, (1,), generator=generator))
        index = 0
        while k >= placements[index][1]:  # the size whose block of placement numbers holds k
            k -= placements[index][1]
            index += 1
        size = placements[index][0]
        top, left = divmod(k, shape[2] - size + 1)
        mask = torch.zeros((1, *shape[1:]), dtype=torch.bool, device=image.device)
        mask[:, top : top + size, left : left + size] = True
        perturbed = torch.where(mask, torch.tensor(self.square_value, dtype=image.dtype, device=image.device), image)
        if binary:
            return perturbed, mask.expand(shape).to(torch.float64)
        return perturbed, image.to(torch.float64) - perturbed.to(torch.float64)

    def _placements(self, shape: Sequence[int]) -> list[tuple[int, int]]:
        if self.perturbation != "square_removal":
            return []
        placements = square_placements(int(shape[-2]), int(shape[-1]), self.square_sizes)
        if not placements:
            raise ValueError(
                f"infidelity: no square size in {list(self.square_sizes)} fits a "
                f"{shape[-2]}×{shape[-1]} image"
            )
        return placements

    def draws(
        self, image: Tensor, seed: int, *, multiplies_by_inputs: bool = False, count: int | None = None
    ) -> tuple[Tensor, Tensor]:
        """The perturbed images ``x̃`` and the ``I`` (float64) that ``evaluate`` uses for one
        ``C×H×W`` image and its seed: ``count`` (default ``n_perturb_samples``) samples."""
        generator = torch.Generator().manual_seed(int(seed))
        placements = self._placements(image.shape)
        pairs = [
            self._draw(generator, image, multiplies_by_inputs, placements)
            for _ in range(self.n_perturb_samples if count is None else int(count))
        ]
        return torch.stack([p for p, _ in pairs]), torch.stack([i for _, i in pairs])

    def evaluate(
        self,
        forward: Callable[[Tensor], Tensor],
        x01: Tensor,
        attributions: Tensor,
        target: Tensor,
        *,
        seeds: Sequence[int],
        chunk_size: int = 8,
        multiplies_by_inputs: bool = False,
    ) -> FaithfulnessResult:
        check_inputs(self.name, x01, attributions, target, chunk_size)
        n_images = x01.shape[0]
        if len(seeds) != n_images:
            raise ValueError(f"infidelity: need one seed per image, got {len(seeds)} for {n_images}")
        samples = self.n_perturb_samples
        placements = self._placements(x01.shape)
        binary = bool(multiplies_by_inputs)
        target = target.detach().to("cpu").long()
        attributions = attributions.detach().to(x01.device)

        def target_logits(batch: Tensor, classes: Tensor) -> Tensor:
            with torch.no_grad():
                logits = forward(batch)
            return logits.gather(1, classes.to(logits.device).view(-1, 1)).squeeze(1).to("cpu", torch.float64)

        clean = torch.cat([
            target_logits(x01[rows], target[rows])
            for rows in (slice(b, b + chunk_size) for b in range(0, n_images, chunk_size))
        ])

        # Iᵀa and Δf per (image, sample); jobs run image-major so each image's generator is
        # consumed in sample order whatever the chunking.
        dot = torch.empty(n_images, samples, dtype=torch.float64)
        delta = torch.empty(n_images, samples, dtype=torch.float64)
        jobs = [(i, j) for i in range(n_images) for j in range(samples)]
        generator: torch.Generator | None = None
        for begin in range(0, len(jobs), chunk_size):
            chunk = jobs[begin : begin + chunk_size]
            perturbed_images, directions = [], []
            for i, j in chunk:
                if j == 0:
                    generator = torch.Generator().manual_seed(int(seeds[i]))
                assert generator is not None
                perturbed, direction = self._draw(generator, x01[i], binary, placements)
                perturbed_images.append(perturbed)
                directions.append(direction)
            rows = torch.tensor([i for i, _ in chunk])
            cols = torch.tensor([j for _, j in chunk])
            dot[rows, cols] = (
                (attributions[rows.to(x01.device)].to(torch.float64) * torch.stack(directions))
                .flatten(1)
                .sum(dim=1)
                .cpu()
            )
            delta[rows, cols] = clean[rows] - target_logits(torch.stack(perturbed_images), target[rows])

        if self.normalize:
            denominator = (dot * dot).sum(dim=1)
            beta = torch.where(denominator > 0, (dot * delta).sum(dim=1) / denominator.clamp_min(1e-300), 0.0)
            dot = beta.unsqueeze(1) * dot
        scores = ((dot - delta) ** 2).mean(dim=1)
        scores[~finite_rows(attributions).cpu()] = math.nan
        return FaithfulnessResult(scores=scores, forward_images=n_images * (1 + samples))


# --------------------------------------------------------------------------------------
# MIF / LIF area (Brocki & Chung, FPA)
# --------------------------------------------------------------------------------------


@metrics.register("mif_lif_area")
class MifLifArea(FaithfulnessMetric):
    """Area between the LIF and MIF perturbation curves (FPA paper, seed 003).

    Pixels (all channels) are set to 0 most-important-first (MIF) and
    least-important-first (LIF; the ranking of the negated scores, ties again to the lower
    pixel index) at fractions ``0, 1/S, …, 1`` of the pixels (``ceil(k·H·W/S)`` pixels at
    ``k/S``). The curves are the target logit divided by the unperturbed target logit of
    the same image (both start at 1); score = ``AUC(LIF) − AUC(MIF)`` (trapezoid over the
    fraction axis). A random ranking scores about 0; ``higher_is_better = True``.

    When the unperturbed target logit is ≤ 0 the normalisation flips or explodes the curves
    and the area's sign means nothing: that image's score is NaN (its curves are returned).

    ``value`` is what a masked pixel becomes, in pixel space (default 0, the spec). The FPA
    paper masks with 0 *in the network's normalised space*: for a model normalised with
    mean 0.5 / std 0.5 (inputs in [−1, 1]) that is ``value = 0.5`` (mid-grey).
    """

    name = "mif_lif_area"
    title = "MIF−LIF area"
    summary = "area between the least- and most-important-first masking curves of the target logit (FPA paper)"
    higher_is_better = True

    def __init__(self, fractions: int = 20, reduction: Reduction = "abs", value: float = 0.0) -> None:
        self.fractions = check_positive_int(self.name, "fractions", fractions)
        self.reduction = check_reduction(self.name, reduction)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= float(value) <= 1.0:
            raise ConfigError(f"{self.name}: value must be a number in [0, 1] (pixel space), got {value!r}")
        self.value = float(value)

    def evaluate(
        self,
        forward: Callable[[Tensor], Tensor],
        x01: Tensor,
        attributions: Tensor,
        target: Tensor,
        *,
        seeds: Sequence[int],
        chunk_size: int = 8,
        multiplies_by_inputs: bool = False,
    ) -> FaithfulnessResult:
        check_inputs(self.name, x01, attributions, target, chunk_size)
        n_images, _, height, width = x01.shape
        pixels = height * width
        s = self.fractions
        attributions = attributions.to(x01.device)
        scores = pixel_scores(attributions, x01, self.reduction, multiplies_by_inputs)
        # Rows 0..N-1: MIF ranks; rows N..2N-1: LIF ranks.
        ranks = torch.cat([rank_pixels(scores), rank_pixels(-scores)])
        counts = torch.tensor([(k * pixels + s - 1) // s for k in range(s + 1)])  # exact ceil

        # Per image: the clean image, the interior MIF and LIF points, the all-masked image
        # (the two curves share their end points, so they are forwarded once): 2·S images.
        interior = s - 1
        per_image = 2 + 2 * interior
        image = torch.arange(n_images).repeat_interleave(per_image)
        local_row = torch.cat([
            torch.zeros(1, dtype=torch.long),
            torch.zeros(interior, dtype=torch.long),
            torch.ones(interior, dtype=torch.long),
            torch.zeros(1, dtype=torch.long),
        ])
        rank_row = image + n_images * local_row.repeat(n_images)
        local_count = torch.cat([counts[:1], counts[1:s], counts[1:s], counts[s:]])
        values = masked_outputs(
            forward,
            x01,
            torch.full_like(x01, self.value),
            ranks,
            image,
            rank_row,
            local_count.repeat(n_images),
            target.detach().to("cpu").long(),
            chunk_size=int(chunk_size),
            softmax=False,
        ).view(n_images, per_image)
        clean, masked = values[:, :1], values[:, -1:]
        mif = torch.cat([clean, values[:, 1 : 1 + interior], masked], dim=1) / clean
        lif = torch.cat([clean, values[:, 1 + interior : 1 + 2 * interior], masked], dim=1) / clean
        curve_x = torch.arange(s + 1, dtype=torch.float64) / s
        area = trapezoid_auc(lif, curve_x) - trapezoid_auc(mif, curve_x)
        area[(clean.squeeze(1) <= 0) | ~finite_rows(attributions).cpu()] = math.nan
        return FaithfulnessResult(
            scores=area,
            curves={"mif": mif, "lif": lif},
            curve_x=curve_x,
            forward_images=n_images * per_image,
        )
