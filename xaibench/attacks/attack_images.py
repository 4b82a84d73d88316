"""eXIAA phases one and two: running-up class, attack images, and their explanations.

Shared by every attack that injects from the running-up class's attack images (``exiaa``
and the ``gaussian_noise`` baseline, which uses the same entries). The attack images'
explanations ``E(x̄, y_r)`` and their entry rankings are cached in ``context.cache`` so the
second attack of a batch costs no explain call.

Which images are attack images (``attack_image_source``, docs/attacks.md):

* ``"class"`` (the paper: ``x̄ = argmax_{x' ∈ X_{y_r}} f_{y_r}(x')``): the pool images
  *labelled* with the source class, most confident first; when the pool has fewer usable
  images of that class than the slots ask for (none at all when the labels are unknown),
  the remaining slots are filled from the rest of the pool ranked as under ``"pool"``, and
  those slots are marked as fallbacks (``attack_image_source = "pool"`` on their rows).
* ``"pool"``: the whole pool ranked by ``f_{y_r}``, whatever the labels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import ConfigError
from ..types import UNKNOWN_LABEL, AttackContext, Oracle
from .injection import descending_ranks

#: ``context.cache`` keys. The first two map ``(attack image id, running-up class)`` to the
#: attack image's attribution (``C×H×W``) and its entry ranks (``D``).
CACHE_ATTRIBUTIONS = "attack_image_attributions"
CACHE_RANKS = "attack_image_ranks"
CACHE_POOL_PROBS = "pool_probs"

#: Values of the ``attack_image_source`` parameter and row column.
SOURCE_CLASS = "class"
SOURCE_POOL = "pool"
ATTACK_IMAGE_SOURCES = (SOURCE_CLASS, SOURCE_POOL)


def running_up_classes(probs: Tensor) -> tuple[Tensor, Tensor]:
    """``y* = argmax f(x)`` and ``y_r = argmax_{j ≠ y*} f(x)`` per row (first index on ties)."""
    if probs.ndim != 2 or probs.shape[1] < 2:
        raise ValueError(f"running_up_classes: need N×K probabilities with K ≥ 2, got {tuple(probs.shape)}")
    predicted = probs.argmax(dim=1)
    others = probs.to(torch.float64).scatter(1, predicted.unsqueeze(1), -math.inf)
    return predicted, others.argmax(dim=1)


def ranked_class(probs: Tensor, rank: int) -> Tensor:
    """The class of the given rank per row: 0 = predicted, 1 = running-up, 2 = the next, …

    Ties go to the lower class index (a stable sort), as :func:`running_up_classes`.
    """
    if not 0 <= rank < probs.shape[1]:
        raise ConfigError(
            f"class rank {rank} does not exist for a model with {probs.shape[1]} classes "
            f"(ranks 1 … {probs.shape[1] - 1} are the classes other than the predicted one)"
        )
    order = torch.sort(probs.detach().to(torch.float64), dim=1, descending=True, stable=True).indices
    return order[:, rank]


@dataclass
class AttackImages:
    """The attack images chosen for a batch of ``B`` originals, ``A`` slots each.

    Slot ``a`` holds the ``(first + a)``-th attack image for the original's source class: the
    running-up class (``class_rank = 1``, the paper's choice) or the class of another rank.
    ``valid[b, a]`` is False where the pool had fewer usable images for original ``b`` (its
    ids are ``None``, pixels zeros); such slots produce no rows. ``labels[b, a]`` is the
    image's dataset label (``UNKNOWN_LABEL`` if unknown); ``from_class[b, a]`` is True where
    the class rule found an image of the source class, False for the ``"pool"`` rule and for
    a fallback slot.
    """

    original_ids: list[str]
    predicted: Tensor  # B
    running_up: Tensor  # B: the source class (the running-up class when class_rank = 1)
    pool_index: Tensor  # B×A (pool row; meaningless where not valid)
    valid: Tensor  # B×A bool
    ids: list[list[str | None]]
    pixels: Tensor  # B×A×C×H×W
    class_rank: int = 1  # rank of the source class (1 = running-up)
    first: int = 0  # confidence rank of slot 0 (0 = the most confident image)
    true_running_up: Tensor | None = None  # B: the running-up class, whatever class_rank is
    labels: Tensor | None = None  # B×A: the attack images' labels (UNKNOWN_LABEL if unknown)
    from_class: Tensor | None = None  # B×A bool: chosen among the images of the source class
    source: str = SOURCE_CLASS  # the rule: "class" or "pool"

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.valid.shape)  # type: ignore[return-value]


def pool_probabilities(oracle: Oracle, context: AttackContext) -> Tensor:
    """``context.pool_probs``, or the oracle's predictions on the pool computed once per batch."""
    if context.pool_probs is not None:
        return context.pool_probs
    if CACHE_POOL_PROBS not in context.cache:
        assert context.pool is not None
        everything = torch.arange(len(context.pool))
        context.cache[CACHE_POOL_PROBS] = oracle.predict(context.pool.images(everything))
    return context.cache[CACHE_POOL_PROBS]


def pool_labels(context: AttackContext) -> Tensor:
    """One label per pool row (``UNKNOWN_LABEL`` where unknown), as a CPU ``long`` tensor.

    ``context.pool_labels``, else an ``ImageBatch`` pool's own labels, else all unknown.
    """
    assert context.pool is not None
    labels = context.pool_labels
    if labels is None:
        labels = getattr(context.pool, "labels", None)
    if labels is None:
        return torch.full((len(context.pool),), UNKNOWN_LABEL, dtype=torch.long)
    labels = torch.as_tensor(labels).to("cpu", torch.long).reshape(-1)
    if labels.numel() != len(context.pool):
        raise ValueError(
            f"context.pool_labels has {labels.numel()} labels for a pool of {len(context.pool)} images"
        )
    return labels


def select_attack_images(
    oracle: Oracle,
    context: AttackContext,
    n_attack_images: int,
    x01: Tensor,
    *,
    attack: str,
    class_rank: int = 1,
    first: int = 0,
    source: str = SOURCE_CLASS,
) -> AttackImages:
    """Per original: ``n_attack_images`` attack images for the source class ``y_r``.

    ``source = "class"`` (the paper): the pool images labelled ``y_r`` with the highest
    ``f_{y_r}``, then — only for slots the class cannot fill (too few usable images of
    ``y_r``, or unknown labels) — the other pool images with the highest ``f_{y_r}``, marked
    as fallbacks (``from_class`` False). In other words, the candidates are ordered images
    of ``y_r`` first, each group by ``f_{y_r}`` descending. ``source = "pool"``: the whole
    pool by ``f_{y_r}``, whatever the labels (``from_class`` all False).

    The original itself (matched by id) is never an attack image. Ties in confidence go to
    the lower pool index. With fewer usable pool images than asked, all of them are used;
    an original with none raises ``ConfigError``. Labels outside ``[0, K)`` never match a
    class (so ``UNKNOWN_LABEL`` images are only ever fallbacks).

    Ablations (eXIAA paper Fig. 5 and appendix A): ``class_rank`` takes the attack images of
    the class of that rank instead of the running-up class (1); ``first`` skips the ``first``
    most confident images (``first = 10`` with 10 images: those ranked 11th–20th).
    """
    batch = x01.shape[0]
    if len(context.original_ids) != batch:
        raise ValueError(
            f"{attack}: context.original_ids has {len(context.original_ids)} ids for {batch} images"
        )
    if context.probs.shape[0] != batch:
        raise ValueError(f"{attack}: context.probs has {context.probs.shape[0]} rows for {batch} images")
    if source not in ATTACK_IMAGE_SOURCES:
        raise ConfigError(
            f"{attack}: attack_image_source must be one of {', '.join(map(repr, ATTACK_IMAGE_SOURCES))}, "
            f"got {source!r}"
        )
    pool = context.pool
    if pool is None or len(pool) == 0:
        raise ConfigError(
            f"{attack} needs an image pool to take attack images from, and the context has none"
        )
    pool_probs = pool_probabilities(oracle, context)
    labels = pool_labels(context)
    predicted, true_running_up = running_up_classes(context.probs)
    running_up = true_running_up if class_rank == 1 else ranked_class(context.probs, class_rank).to(predicted.device)

    scores = pool_probs.detach().to("cpu", torch.float64)[:, running_up.cpu()].T.contiguous()  # B×N
    pool_rows: dict[str, list[int]] = {}
    for row, image_id in enumerate(pool.ids):
        pool_rows.setdefault(image_id, []).append(row)
    is_self = torch.zeros(scores.shape, dtype=torch.bool)
    for b, image_id in enumerate(context.original_ids):
        is_self[b, pool_rows.get(image_id, [])] = True
    scores.masked_fill_(is_self, -math.inf)
    available = (~is_self).sum(dim=1)
    if int(available.min()) == 0:
        b = int(available.argmin())
        raise ConfigError(
            f"{attack}: the image pool ({len(pool)} images) has no image other than the original "
            f"{context.original_ids[b]!r} to take attack images from; use a larger dataset"
        )

    if int(available.max()) <= first:
        raise ConfigError(
            f"{attack}: first_attack_image={first} skips every usable pool image "
            f"(at most {int(available.max())}); use a larger pool or a smaller first_attack_image"
        )
    slots = min(n_attack_images, int(available.max()) - first)
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices  # B×N, by f_{y_r}
    if source == SOURCE_CLASS:
        in_class = (labels.unsqueeze(0) == running_up.cpu().unsqueeze(1)) & ~is_self  # B×N
        # Images of the source class first, each group still by f_{y_r} (a stable sort).
        order = order.gather(1, torch.sort((~in_class).gather(1, order).to(torch.uint8), dim=1, stable=True).indices)
    else:
        in_class = torch.zeros_like(is_self)
    pool_index = order[:, first : first + slots]
    valid = torch.arange(first, first + slots).unsqueeze(0) < available.unsqueeze(1)
    pool_index = torch.where(valid, pool_index, 0)
    from_class = in_class.gather(1, pool_index) & valid
    chosen_labels = torch.where(valid, labels[pool_index], UNKNOWN_LABEL)
    ids = [
        [pool.ids[i] if ok else None for i, ok in zip(row, keep, strict=True)]
        for row, keep in zip(pool_index.tolist(), valid.tolist(), strict=True)
    ]
    pixels = pool.images(pool_index).to(x01.device, x01.dtype)
    pixels = pixels * valid.to(pixels.device, pixels.dtype).view(batch, slots, 1, 1, 1)
    return AttackImages(
        original_ids=list(context.original_ids),
        predicted=predicted.to(x01.device),
        running_up=running_up.to(x01.device),
        pool_index=pool_index,
        valid=valid,
        ids=ids,
        pixels=pixels,
        class_rank=class_rank,
        first=first,
        true_running_up=true_running_up.to(x01.device),
        labels=chosen_labels,
        from_class=from_class,
        source=source,
    )


def attack_image_attributions(
    oracle: Oracle, context: AttackContext, images: AttackImages
) -> tuple[Tensor, Tensor]:
    """``z̄ = E(x̄, y_r)`` (``B×A×C×H×W``) and its entry ranks (``B×A×D``), cached.

    All pairs not yet in ``context.cache`` are explained in **one** ``oracle.explain`` call.
    The key is (attack image id, running-up class): the attribution depends on nothing else,
    so two originals sharing an attack image and running-up class share one explanation.
    Invalid slots get zero attributions (no positive entries, so nothing is injected).
    """
    attributions_cache: dict[tuple[str, int], Tensor] = context.cache.setdefault(CACHE_ATTRIBUTIONS, {})
    ranks_cache: dict[tuple[str, int], Tensor] = context.cache.setdefault(CACHE_RANKS, {})
    running_up = images.running_up.tolist()
    # (original row, slot) of the first occurrence of each attack image not yet explained.
    missing: dict[tuple[str, int], tuple[int, int]] = {}
    for b, row_ids in enumerate(images.ids):
        for slot, image_id in enumerate(row_ids):
            key = (image_id, int(running_up[b]))
            if image_id is not None and key not in attributions_cache and key not in missing:
                missing[key] = (b, slot)

    device = images.pixels.device
    if missing:
        originals, slots = zip(*missing.values(), strict=True)
        pixels = images.pixels[list(originals), list(slots)]
        targets = torch.tensor([key[1] for key in missing], dtype=torch.long, device=device)
        explained = oracle.explain(pixels, targets).detach().to(device)
        if explained.shape != pixels.shape:
            raise ValueError(
                f"oracle.explain returned shape {tuple(explained.shape)} for inputs {tuple(pixels.shape)}"
            )
        explained_ranks = descending_ranks(explained)
        for i, key in enumerate(missing):
            attributions_cache[key] = explained[i]
            ranks_cache[key] = explained_ranks[i]

    batch, slots = images.shape
    sample_shape = images.pixels.shape[2:]
    zero_attribution = torch.zeros(sample_shape, dtype=images.pixels.dtype, device=device)
    identity_ranks = descending_ranks(zero_attribution)  # stable sort of ties: 0, 1, 2, …
    attributions, ranks = [], []
    for b in range(batch):
        for a in range(slots):
            image_id = images.ids[b][a]
            if image_id is None:
                attributions.append(zero_attribution)
                ranks.append(identity_ranks)
            else:
                key = (image_id, int(running_up[b]))
                attributions.append(attributions_cache[key].to(device, images.pixels.dtype))
                ranks.append(ranks_cache[key].to(device))
    stacked = torch.stack(attributions).view(batch, slots, *sample_shape)
    return stacked, torch.stack(ranks).view(batch, slots, -1)
