"""eXIAA (explainable injection-based adversarial attack): black-box, one step.

Spec: ``/work/shared/specs/exiaa.md``; paper: seeds ``000``/``001`` sections 3–4.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor

from ..errors import ConfigError
from ..registry import attacks
from ..types import Attack, AttackContext, AttackOutput, Oracle
from .attack_images import (
    ATTACK_IMAGE_SOURCES,
    SOURCE_CLASS,
    SOURCE_POOL,
    AttackImages,
    attack_image_attributions,
    select_attack_images,
)
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

#: Where attack images come from (``attack_image_source``): see ``select_attack_images``.
AttackImageSource = Literal["class", "pool"]

#: Per-row columns of every injection-grid attack, in this order.
ROW_COLUMNS = (
    "alpha",
    "topk",
    "attack_image_rank",
    "attack_image_id",
    "running_up_class",
    "n_positive_entries",
    "k_entries",
    "source_class",
    "source_class_rank",
    "attack_image_label",
    "attack_image_source",
)


class InjectionGridAttack(Attack):
    """An α × top-k injection grid over the running-up class's attack images.

    Subclasses choose the source injected into the original and the entry ranking that
    defines ``I_k`` (``_sources``). Rows are ordered (source class rank, original, attack
    image, α, top-k).

    Ablation parameters (eXIAA paper Fig. 5 and appendix A): ``source_class_ranks`` lists the
    classes whose images are injected, by rank among the non-predicted classes (1 = the
    running-up class, the paper's attack; 2 = the third most likely class, …); with several,
    each original is attacked from each. ``first_attack_image`` skips the most confident
    attack images (10 with ``n_attack_images = 10``: the images ranked 11th–20th).

    ``attack_image_source`` (``"class"``, the paper, or ``"pool"``) chooses where the attack
    images come from: the pool images labelled with the source class, or the whole pool
    ranked by ``f`` of the source class (see :func:`select_attack_images`). Under ``"class"``
    a slot the class cannot fill falls back to the pool and its rows say so
    (``attack_image_source = "pool"``); ``attack_image_label`` is the image's label.
    """

    black_box = True
    needs_pool = True
    grid_axes = ("alpha", "topk")
    # Examples and attacked-faithfulness rows: the most confident attack image of each point.
    representative_row: ClassVar[dict[str, Any]] = {"attack_image_rank": 0}
    axis_titles: ClassVar[dict[str, str]] = {"alpha": "α", "topk": "top-k"}

    def __init__(
        self,
        alphas: Sequence[float] = PAPER_ALPHAS,
        topks: Sequence[float] = PAPER_TOPKS,
        n_attack_images: int = PAPER_N_ATTACK_IMAGES,
        source_class_ranks: Sequence[int] = (1,),
        first_attack_image: int = 0,
        attack_image_source: AttackImageSource = SOURCE_CLASS,
    ) -> None:
        owner = getattr(self, "name", type(self).__name__)
        self.alphas = validate_fractions(alphas, name="alphas", owner=owner, include_one=False)
        self.topks = validate_fractions(topks, name="topks", owner=owner, include_one=True)
        self.n_attack_images = validate_count(n_attack_images, name="n_attack_images", owner=owner)
        ranks = list(source_class_ranks) if isinstance(source_class_ranks, list | tuple) else None
        if not ranks or any(isinstance(r, bool) or not isinstance(r, int) or r < 1 for r in ranks) or len(set(ranks)) != len(ranks):
            raise ConfigError(
                f"{owner}: source_class_ranks must be a non-empty list of distinct integers ≥ 1 "
                f"(1 = the running-up class), got {source_class_ranks!r}"
            )
        if isinstance(first_attack_image, bool) or not isinstance(first_attack_image, int) or first_attack_image < 0:
            raise ConfigError(f"{owner}: first_attack_image must be an integer ≥ 0, got {first_attack_image!r}")
        if attack_image_source not in ATTACK_IMAGE_SOURCES:
            raise ConfigError(
                f"{owner}: attack_image_source must be one of "
                f"{', '.join(map(repr, ATTACK_IMAGE_SOURCES))}, got {attack_image_source!r}"
            )
        self.source_class_ranks = tuple(ranks)
        self.first_attack_image = int(first_attack_image)
        self.attack_image_source = attack_image_source

    def grid(self) -> list[dict[str, Any]]:
        return [{"alpha": alpha, "topk": topk} for alpha in self.alphas for topk in self.topks]

    def pool_note(self, pool_size: int) -> str | None:
        """Said at plan time when the pool cannot give every original ``n_attack_images`` images."""
        usable = max(pool_size - self.first_attack_image, 0)
        if self.n_attack_images < usable:
            return None
        return (
            f"n_attack_images = {self.n_attack_images}, but the pool holds {pool_size} images, so each original "
            f"gets at most {usable} attack images (one fewer where the original itself is in the pool; "
            "each row records its attack_image_id)"
        )

    def images_per_original(self) -> int:
        """One corrupted image per grid point, attack image and source class."""
        return len(self.grid()) * self.n_attack_images * len(self.source_class_ranks)

    def explained_per_original(self) -> int:
        """The attack images, explained once for each source class (shared with other attacks)."""
        return self.n_attack_images * len(self.source_class_ranks)

    def _sources(
        self, x01: Tensor, images: AttackImages, ranks: Tensor, context: AttackContext
    ) -> tuple[Tensor, Tensor]:  # pragma: no cover - abstract
        """``(sources B×A×C×H×W, entry ranks B×A×D)`` for the injection."""
        raise NotImplementedError

    def perturb(self, x01: Tensor, oracle: Oracle, context: AttackContext) -> AttackOutput:
        if x01.ndim != 4:
            raise ValueError(f"{self.name}: expected B×C×H×W images, got shape {tuple(x01.shape)}")
        outputs = []
        for class_rank in self.source_class_ranks:
            images = select_attack_images(
                oracle, context, self.n_attack_images, x01, attack=self.name,
                class_rank=class_rank, first=self.first_attack_image, source=self.attack_image_source,
            )
            attributions, ranks = attack_image_attributions(oracle, context, images)
            n_positive = positive_counts(attributions)  # B×A
            k = topk_entry_counts(n_positive, self.topks)  # B×A×T
            sources, position_ranks = self._sources(x01, images, ranks, context)
            corrupted = inject_grid(x01, sources, position_ranks, k, self.alphas)
            outputs.append(_assemble(corrupted, images, n_positive, k, self.alphas, self.topks))
        if len(outputs) == 1:
            return outputs[0]
        return AttackOutput(
            images=torch.cat([o.images for o in outputs]),
            origin=torch.cat([o.origin for o in outputs]),
            columns={name: [v for o in outputs for v in o.columns[name]] for name in ROW_COLUMNS},
        )


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
    source = images.running_up.tolist()
    running_up = (images.true_running_up if images.true_running_up is not None else images.running_up).tolist()
    n_positive_cpu, k_cpu = n_positive.cpu(), k.cpu()
    labels = images.labels.cpu() if images.labels is not None else torch.full((batch, slots), -1)
    from_class = images.from_class.cpu() if images.from_class is not None else torch.zeros(batch, slots, dtype=torch.bool)
    columns: dict[str, list[Any]] = {
        "alpha": [alphas[index] for index in i.tolist()],
        "topk": [topks[index] for index in j.tolist()],
        "attack_image_rank": [images.first + aa for aa in a_list],
        "attack_image_id": [images.ids[bb][aa] for bb, aa in zip(b_list, a_list, strict=True)],
        "running_up_class": [int(running_up[bb]) for bb in b_list],
        "n_positive_entries": n_positive_cpu[b, a].tolist(),
        "k_entries": k_cpu[b, a, j].tolist(),
        "source_class": [int(source[bb]) for bb in b_list],
        "source_class_rank": [images.class_rank] * len(b_list),
        "attack_image_label": labels[b, a].tolist(),
        "attack_image_source": [SOURCE_CLASS if flag else SOURCE_POOL for flag in from_class[b, a].tolist()],
    }
    assert tuple(columns) == ROW_COLUMNS
    return AttackOutput(images=rows, origin=b.to(rows.device), columns=columns)


@attacks.register("exiaa")
class ExIAA(InjectionGridAttack):
    """eXIAA: inject the running-up class's most salient features into the original.

    For an original ``x``: ``y* = argmax f(x)``, running-up class ``y_r = argmax_{j≠y*} f(x)``;
    attack images ``x̄`` = the ``n_attack_images`` pool images labelled ``y_r`` (original
    excluded) with the highest ``f_{y_r}``; ``z̄ = E(x̄, y_r)``; ``P = |{z̄ > 0}|``; for each top-k fraction ``t``,
    ``I_k`` = the ``k = ceil(t·P)`` largest positive entries of ``z̄`` (over C×H×W, ties to
    the lower flat index); ``x̂ = x`` except on ``I_k``, where
    ``x̂ = clip((1−α)·x + α·x̄, 0, 1)``. Uses only the oracle: one ``explain`` call per batch
    for the attack images (cached for other attacks of the batch), no gradients, one step.

    Parameters: ``alphas`` ⊂ (0, 1), ``topks`` ⊂ (0, 1], ``n_attack_images`` ≥ 1 (defaults:
    the paper's grid), ``attack_image_source`` ∈ {"class", "pool"} (default "class": the
    attack images are images *of* ``y_r``, the paper's ``X_{y_r}``; see the base class).
    Row columns: ``alpha, topk, attack_image_rank`` (0 = most confident),
    ``attack_image_id, running_up_class, n_positive_entries`` (P), ``k_entries`` (k),
    ``source_class`` and ``source_class_rank`` (the running-up class and 1 unless the
    ablation parameters ``source_class_ranks`` / ``first_attack_image`` say otherwise),
    ``attack_image_label`` (the attack image's dataset label, -1 if unknown) and
    ``attack_image_source`` ("class", or "pool" for the pool rule and for a fallback slot).
    """

    name = "exiaa"
    title = "eXIAA"
    summary = "black-box, one step: inject the running-up class's most salient features into the image"

    def images_per_original(self) -> int:
        """One corrupted image per grid point, attack image and source class."""
        return len(self.grid()) * self.n_attack_images * len(self.source_class_ranks)

    def explained_per_original(self) -> int:
        """The attack images, explained once for each source class (shared with other attacks)."""
        return self.n_attack_images * len(self.source_class_ranks)

    def _sources(
        self, x01: Tensor, images: AttackImages, ranks: Tensor, context: AttackContext
    ) -> tuple[Tensor, Tensor]:
        return images.pixels, ranks
