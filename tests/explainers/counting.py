"""A classifier wrapper that counts forward and backward rows (pass-count tests)."""

from __future__ import annotations

import torch
from torch import nn


class Counting(nn.Module):
    """Counts the rows the wrapped classifier sees in forwards and in backwards.

    A backward is counted once per ``autograd.grad``/``backward`` that reaches the output, so
    two vector-Jacobian products on one forward count twice. ``keep_inputs`` records inputs.
    """

    def __init__(self, inner: nn.Module, keep_inputs: bool = False):
        super().__init__()
        self.inner = inner
        self.num_classes = inner.num_classes
        self.mean, self.std = inner.mean, inner.std
        self.forward_rows = 0
        self.backward_rows = 0
        self.sizes: set[tuple[int, int]] = set()
        self.keep_inputs = keep_inputs
        self.inputs: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.inner(x)
        rows = int(x.shape[0])
        self.forward_rows += rows
        self.sizes.add((int(x.shape[-2]), int(x.shape[-1])))
        if self.keep_inputs:
            self.inputs.append(x.detach().clone())
        if out.requires_grad:
            out.register_hook(lambda grad: self._backward(rows))
        return out

    def _backward(self, rows: int) -> None:
        self.backward_rows += rows
