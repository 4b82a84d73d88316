"""The one training loop: seeded shuffling, optional flips, FPA / Rectangle, PGD; every caller.

Both the digits CNN's train-on-first-use (``training.digits``) and generic timm training
(``training.train``, ``xaibench train``) train through ``fit``. Every random draw comes from
a generator derived from the run's ``seed``, one per stream, so switching a method on or off
never changes the draws of another stream:

* shuffling: ``seed`` itself (a new ``randperm`` of the examples every epoch);
* horizontal flips: ``derived_seed(seed, "hflip")``;
* augmentation: ``derived_seed(seed, "augment")``;
* the PGD attack's random start: ``derived_seed(seed, "pgd")``.

The initial weights come from ``seeded_build(seed, …)``, which leaves the caller's global RNG
alone. The caller builds the optimiser (and the learning-rate schedule, stepped per batch).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..hashing import seed63
from .adversarial import PGD

T = TypeVar("T")

#: ``progress(epoch, epochs, loss)``: called after every epoch with the last batch's loss.
Progress = Callable[[int, int, float], Any]
#: ``load_batch(indices)``: the pixel-space images and int64 labels of those examples.
LoadBatch = Callable[[Tensor], tuple[Tensor, Tensor]]


def derived_seed(seed: int, salt: str) -> int:
    """An independent seed for one random stream (``salt``: "augment", "pgd", …) of run ``seed``."""
    return seed63(f"{int(seed)}:{salt}".encode())


def seeded_build(seed: int, build: Callable[[], T]) -> T:
    """``build()`` with the global torch RNG seeded by ``seed``, then restored (initial weights)."""
    # fork_rng: seeding the initialisation must not disturb the caller's global RNG.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def fit(
    model: nn.Module,
    n_examples: int,
    load_batch: LoadBatch,
    *,
    epochs: int,
    batch_size: int,
    optimizer: torch.optim.Optimizer,
    seed: int,
    augmenter: Callable[[Tensor, torch.Generator], Tensor] | None = None,
    attack: PGD | None = None,
    hflip: bool = False,
    schedule: Any = None,
    device: torch.device | None = None,
    progress: Progress | None = None,
) -> None:
    """Train ``model`` (pixel space in, logits out) in place on examples ``0 … n_examples − 1``.

    Per batch: load it (CPU), flip each image with probability 0.5 when ``hflip``, apply
    ``augmenter``, move to ``device``, then one optimiser step on the cross-entropy, or on
    ``attack.training_loss`` when ``attack`` is given. The model is in train mode during the
    epochs and left in eval mode.
    """
    shuffle = torch.Generator().manual_seed(seed)
    flip_generator = torch.Generator().manual_seed(derived_seed(seed, "hflip"))
    augment_generator = torch.Generator().manual_seed(derived_seed(seed, "augment"))
    attack_generator = torch.Generator().manual_seed(derived_seed(seed, "pgd"))
    loss = torch.zeros(())
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(n_examples, generator=shuffle)
        for batch in order.split(batch_size):
            images, targets = load_batch(batch)
            if hflip:
                flipped = torch.rand(len(targets), generator=flip_generator) < 0.5
                images = torch.where(flipped.view(-1, 1, 1, 1), images.flip(-1), images)
            if augmenter is not None:
                images = augmenter(images, augment_generator)
            if device is not None:
                images, targets = images.to(device), targets.to(device)
            optimizer.zero_grad(set_to_none=True)
            if attack is None:
                loss = F.cross_entropy(model(images), targets)
            else:
                # A CPU generator serves a CUDA model too: the random start is drawn on the
                # CPU and moved, so the stream is the same on every device.
                loss = attack.training_loss(model, images, targets, attack_generator)
            loss.backward()
            optimizer.step()
            if schedule is not None:
                schedule.step()
        if progress is not None:
            progress(epoch + 1, epochs, float(loss.detach()))
    model.eval()


__all__ = ["LoadBatch", "Progress", "derived_seed", "fit", "seeded_build"]
