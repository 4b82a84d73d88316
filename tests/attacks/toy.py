"""A tiny deterministic oracle made of plain functions (no ``nn.Module``), and a context."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from xaibench.types import AttackContext, ImageBatch, Oracle

SHAPE = (3, 16, 16)
N_CLASSES = 6


@dataclass
class ToyModel:
    """``predict`` = softmax of a fixed linear map; ``explain`` = weight × input
    (gradient × input of the linear logit). Counts how often each function is invoked."""

    seed: int = 0
    predict_invocations: int = 0
    explain_invocations: int = 0
    explain_batches: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        generator = torch.Generator().manual_seed(self.seed)
        entries = SHAPE[0] * SHAPE[1] * SHAPE[2]
        self.weight = torch.randn(N_CLASSES, entries, generator=generator) / entries**0.5 * 8

    def predict(self, x: Tensor) -> Tensor:
        self.predict_invocations += 1
        return torch.softmax(x.flatten(1) @ self.weight.T, dim=1)

    def explain(self, x: Tensor, target: Tensor) -> Tensor:
        self.explain_invocations += 1
        self.explain_batches.append(int(x.shape[0]))
        return self.weight[target].view_as(x) * (x - 0.3)

    def oracle(self) -> Oracle:
        return Oracle(self.predict, self.explain)


def make_pool(n: int = 10, seed: int = 1, *, bounds: bool = True) -> ImageBatch:
    """``n`` random images; with ``bounds``, rows at exactly 1 and 0 (clipping exercised),
    without, values in ``[0.05, 0.95]`` (every injected entry visibly changes)."""
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.rand(n, *SHAPE, generator=generator)
    if bounds:
        pixels[:, :, :2] = 1.0
        pixels[:, :, -2:] = 0.0
    else:
        pixels = 0.05 + 0.9 * pixels
    return ImageBatch([f"img{i}" for i in range(n)], pixels, torch.full((n,), -1))


def make_context(
    model: ToyModel, pool: ImageBatch, original_rows: list[int], *, seed: int = 7
) -> tuple[Tensor, AttackContext]:
    """Originals taken from the pool (so the pool contains them), with their context."""
    x = pool.pixels[original_rows].clone()
    pool_probs = torch.softmax(pool.pixels.flatten(1) @ model.weight.T, dim=1)
    context = AttackContext(
        original_ids=[pool.ids[i] for i in original_rows],
        probs=pool_probs[original_rows].clone(),
        pool=pool,
        pool_probs=pool_probs,
        seed=seed,
    )
    return x, context


def sub_context(context: AttackContext, rows: list[int]) -> AttackContext:
    """The context of a sub-batch, with a fresh cache."""
    return AttackContext(
        original_ids=[context.original_ids[i] for i in rows],
        probs=context.probs[rows],
        pool=context.pool,
        pool_probs=context.pool_probs,
        seed=context.seed,
    )
