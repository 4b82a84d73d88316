"""The Gaussian-noise baseline of the eXIAA paper, on eXIAA's own grid."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, get_args

import torch
from torch import Tensor

from ..errors import ConfigError
from ..registry import attacks
from ..types import AttackContext
from .attack_images import SOURCE_CLASS, AttackImages
from .exiaa import AttackImageSource, InjectionGridAttack
from .injection import PAPER_ALPHAS, PAPER_N_ATTACK_IMAGES, PAPER_TOPKS

Positions = Literal["same", "random"]
POSITIONS: tuple[str, ...] = get_args(Positions)


@attacks.register("gaussian_noise")
class GaussianNoise(InjectionGridAttack):
    """Baseline: Gaussian noise on as many entries as eXIAA changes ("adding Gaussian noise
    to the original image", eXIAA paper section 4), at the same α and top-k.

    Definition. For original ``x`` and each of eXIAA's attack images ``x̄`` (same running-up
    class, same selection, same cached explanation ``z̄ = E(x̄, y_r)``), with
    ``P = |{z̄ > 0}|`` and ``k = ceil(t·P)`` for top-k fraction ``t`` — exactly eXIAA's
    entry count — the corrupted image is eXIAA's injection with the source replaced by
    noise: ``source = x + σ·ε``, ``ε ~ N(0, 1)`` of shape C×H×W, so

        x̂ = x except on J_k, where x̂ = clip((1−α)·x + α·(x + σ·ε), 0, 1) = clip(x + α·σ·ε, 0, 1)

    i.e. Gaussian noise of standard deviation ``α·σ`` added to ``k`` entries. ``J_k`` is
    eXIAA's ``I_k`` (the ``k`` largest positive entries of ``z̄``) when ``positions="same"``,
    or ``k`` distinct entries drawn uniformly at random when ``positions="random"`` (one
    random order per (original, attack image); the sets for increasing top-k are nested).
    One ``ε`` per (original, attack image), shared by all α and top-k, drawn from
    ``context.generator(original_id, attack_image_id, "gaussian_noise")``; the random order
    from ``context.generator(original_id, attack_image_id, "gaussian_noise", "positions")``.
    So results do not depend on the batch an image is in, and ``ε`` is the same for both
    position choices.

    Parameters: ``alphas`` ⊂ (0, 1), ``topks`` ⊂ (0, 1], ``n_attack_images`` ≥ 1 (as
    eXIAA), ``sigma`` > 0 (default 0.25), ``positions`` ∈ {"same", "random"}. Row columns
    are eXIAA's: ``alpha, topk, attack_image_rank, attack_image_id, running_up_class,
    n_positive_entries, k_entries, source_class, source_class_rank, attack_image_label,
    attack_image_source``; so are the ablation parameters ``source_class_ranks`` and
    ``first_attack_image``, and ``attack_image_source`` (default "class"), which must match
    the eXIAA attack it is compared with for the two to share attack images.
    """

    name = "gaussian_noise"
    title = "Gaussian noise"
    summary = "baseline of eXIAA: Gaussian noise on as many entries as eXIAA changes, at the same α and top-k"
    baseline_of = "exiaa"

    def __init__(
        self,
        alphas: Sequence[float] = PAPER_ALPHAS,
        topks: Sequence[float] = PAPER_TOPKS,
        n_attack_images: int = PAPER_N_ATTACK_IMAGES,
        sigma: float = 0.25,
        positions: Positions = "same",
        source_class_ranks: Sequence[int] = (1,),
        first_attack_image: int = 0,
        attack_image_source: AttackImageSource = SOURCE_CLASS,
    ) -> None:
        super().__init__(
            alphas=alphas, topks=topks, n_attack_images=n_attack_images,
            source_class_ranks=source_class_ranks, first_attack_image=first_attack_image,
            attack_image_source=attack_image_source,
        )
        if isinstance(sigma, bool) or not isinstance(sigma, int | float) or not (
            math.isfinite(sigma) and sigma > 0
        ):
            raise ConfigError(f"gaussian_noise: sigma must be a finite number > 0, got {sigma!r}")
        if positions not in POSITIONS:
            raise ConfigError(
                f"gaussian_noise: positions must be one of {', '.join(map(repr, POSITIONS))}, "
                f"got {positions!r}"
            )
        self.sigma = float(sigma)
        self.positions = positions

    def _sources(
        self, x01: Tensor, images: AttackImages, ranks: Tensor, context: AttackContext
    ) -> tuple[Tensor, Tensor]:
        batch, slots = images.shape
        sample_shape = x01.shape[1:]
        entries = ranks.shape[-1]
        noise = torch.zeros(batch, slots, *sample_shape, dtype=x01.dtype)
        random_ranks = torch.zeros(batch, slots, entries, dtype=ranks.dtype) if self.positions == "random" else None
        # One draw per (original, attack image) pair, from a generator seeded by their ids,
        # so a pair gets the same noise in any batch (a loop over pairs, not pixels).
        for b, original_id in enumerate(images.original_ids):
            for a, attack_id in enumerate(images.ids[b]):
                if attack_id is None:
                    continue
                generator = context.generator(original_id, attack_id, "gaussian_noise")
                noise[b, a] = torch.randn(sample_shape, generator=generator, dtype=torch.float32)
                if random_ranks is not None:
                    generator = context.generator(original_id, attack_id, "gaussian_noise", "positions")
                    order = torch.randperm(entries, generator=generator)
                    random_ranks[b, a, order] = torch.arange(entries, dtype=ranks.dtype)
        sources = x01.unsqueeze(1) + self.sigma * noise.to(x01.device)
        if random_ranks is None:
            return sources, ranks
        return sources, random_ranks.to(ranks.device)
