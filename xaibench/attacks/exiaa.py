"""eXIAA (explainable injection-based adversarial attack): black-box, one step.

Spec: ``/work/shared/specs/exiaa.md``; paper: seeds ``000``/``001`` sections 3–4.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from ..registry import attacks
from ..types import Attack, AttackContext, AttackOutput, Oracle
from .attack_images import AttackImages, attack_image_attributions, select_attack_images
from .injection import (
    PAPER_ALPHAS,
    PAPER_N_ATTACK_IMAGES,
    PAPER_TOPKS,
    inject_grid,
    positive_counts,
    topk_entry_counts,
    validate_count,
    validate_fractions,
)

#: Per-row columns of every injection-grid attack, in this order.
ROW_COLUMNS = (
    "alpha",
    "topk",
    "attack_image_rank",
    "attack_image_id",
    "running_up_class",
    "n_positive_entries",
    "k_entries",
)


class InjectionGridAttack(Attack):
    """An α × top-k injection grid over the running-up class's attack images.

    Subclasses choose the source injected into the original and the entry ranking that
    defines ``I_k`` (``_sources``). Rows are ordered (original, attack image, α, top-k).
    """

    black_box = True
    needs_pool = True

    def __init__(
        self,
        alphas: Sequence[float] = PAPER_ALPHAS,
        topks: Sequence[float] = PAPER_TOPKS,
        n_attack_images: int = PAPER_N_ATTACK_IMAGES,
    ) -> None:
        owner = getattr(self, "name", type(self).__name__)
        self.alphas = validate_fractions(alphas, name="alphas", owner=owner, include_one=False)
        self.topks = validate_fractions(topks, name="topks", owner=owner, include_one=True)
        self.n_attack_images = validate_count(n_attack_images, name="n_attack_images", owner=owner)

    def grid(self) -> list[dict[str, Any]]:
        return [{"alpha": alpha, "topk": topk} for alpha in self.alphas for topk in self.topks]

    def describe(self) -> dict[str, Any]:
        return {
            "attack": self.name,
            "alphas": list(self.alphas),
            "topks": list(self.topks),
            "n_attack_images": self.n_attack_images,
        }

    def _sources(
        self, x01: Tensor, images: AttackImages, ranks: Tensor, context: AttackContext
    ) -> tuple[Tensor, Tensor]:  # pragma: no cover - abstract
        """``(sources B×A×C×H×W, entry ranks B×A×D)`` for the injection."""
        raise NotImplementedError

    def perturb(self, x01: Tensor, oracle: Oracle, context: AttackContext) -> AttackOutput:
        if x01.ndim != 4:
            raise ValueError(f"{self.name}: expected B×C×H×W images, got shape {tuple(x01.shape)}")
        images = select_attack_images(oracle, context, self.n_attack_images, x01, attack=self.name)
        attributions, ranks = attack_image_attributions(oracle, context, images)
        n_positive = positive_counts(attributions)  # B×A
        k = topk_entry_counts(n_positive, self.topks)  # B×A×T
        sources, position_ranks = self._sources(x01, images, ranks, context)
        corrupted = inject_grid(x01, sources, position_ranks, k, self.alphas)
        return _assemble(corrupted, images, n_positive, k, self.alphas, self.topks)


def _assemble(
    corrupted: Tensor,
    images: AttackImages,
    n_positive: Tensor,
    k: Tensor,
    alphas: Sequence[float],
    topks: Sequence[float],
) -> AttackOutput:
    """Flatten ``B×A×N×T×C×H×W`` to rows with their columns; drop rows of empty slots."""
    batch, slots, n_alphas, n_topks = corrupted.shape[:4]
    b, a, i, j = (
        index.flatten()
        for index in torch.meshgrid(
            torch.arange(batch), torch.arange(slots), torch.arange(n_alphas), torch.arange(n_topks),
            indexing="ij",
        )
    )
    keep = images.valid[b, a]
    rows = corrupted.view(-1, *corrupted.shape[4:])
    if not bool(keep.all()):
        rows = rows[keep.to(rows.device)]
        b, a, i, j = b[keep], a[keep], i[keep], j[keep]
    b_list, a_list = b.tolist(), a.tolist()
    running_up = images.running_up.tolist()
    n_positive_cpu, k_cpu = n_positive.cpu(), k.cpu()
    columns: dict[str, list[Any]] = {
        "alpha": [alphas[index] for index in i.tolist()],
        "topk": [topks[index] for index in j.tolist()],
        "attack_image_rank": a_list,
        "attack_image_id": [images.ids[bb][aa] for bb, aa in zip(b_list, a_list, strict=True)],
        "running_up_class": [int(running_up[bb]) for bb in b_list],
        "n_positive_entries": n_positive_cpu[b, a].tolist(),
        "k_entries": k_cpu[b, a, j].tolist(),
    }
    assert tuple(columns) == ROW_COLUMNS
    return AttackOutput(images=rows, origin=b.to(rows.device), columns=columns)


@attacks.register("exiaa")
class ExIAA(InjectionGridAttack):
    """eXIAA: inject the running-up class's most salient features into the original.

    For an original ``x``: ``y* = argmax f(x)``, running-up class ``y_r = argmax_{j≠y*} f(x)``;
    attack images ``x̄`` = the ``n_attack_images`` pool images (original excluded) with the
    highest ``f_{y_r}``; ``z̄ = E(x̄, y_r)``; ``P = |{z̄ > 0}|``; for each top-k fraction ``t``,
    ``I_k`` = the ``k = ceil(t·P)`` largest positive entries of ``z̄`` (over C×H×W, ties to
    the lower flat index); ``x̂ = x`` except on ``I_k``, where
    ``x̂ = clip((1−α)·x + α·x̄, 0, 1)``. Uses only the oracle: one ``explain`` call per batch
    for the attack images (cached for other attacks of the batch), no gradients, one step.

    Parameters: ``alphas`` ⊂ (0, 1), ``topks`` ⊂ (0, 1], ``n_attack_images`` ≥ 1 (defaults:
    the paper's grid). Row columns: ``alpha, topk, attack_image_rank`` (0 = most confident),
    ``attack_image_id, running_up_class, n_positive_entries`` (P), ``k_entries`` (k).
    """

    name = "exiaa"

    def _sources(
        self, x01: Tensor, images: AttackImages, ranks: Tensor, context: AttackContext
    ) -> tuple[Tensor, Tensor]:
        return images.pixels, ranks
