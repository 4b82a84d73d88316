"""timm attention through modules: the softmax and both matmuls become hookable.

timm's ``Attention`` computes ``softmax(q·kᵀ)·v`` with fused SDPA, or with a functional
``softmax`` and two ``@`` products: nothing an explainer can hook. Inside
``routed_attention(model)`` every timm ``Attention`` block runs its unfused path through
three child modules instead:

* ``xb_scores`` (``AttentionScores``): ``q·kᵀ`` — bilinear in the two token streams;
* ``xb_softmax`` (``AttentionSoftmax``): the softmax over keys (the attention map);
* ``xb_mix`` (``AttentionMix``): ``attn·v`` — bilinear again.

The block's fused-attention switch (timm's own ``fused_attn`` attribute) is turned off and
restored on exit, the child modules and the instance ``forward`` are removed, so the model
is exactly what it was before. The routed forward computes the same function as timm's
unfused path (the tests compare the logits); a block whose options it does not model
(a gated block, or a timm release whose ``Attention`` lost the attributes used here) raises
``UnsupportedAttention`` rather than computing something else.
"""

from __future__ import annotations

import types
from collections.abc import Iterator
from contextlib import contextmanager

from torch import Tensor, nn


class UnsupportedAttention(RuntimeError):
    """A timm attention block the routed forward cannot reproduce exactly."""


class AttentionScores(nn.Module):
    """``q·kᵀ`` per head (``q`` already scaled): ``…×L×d`` and ``…×L×d`` → ``…×L×L``."""

    def forward(self, q: Tensor, k: Tensor) -> Tensor:
        return q @ k.transpose(-2, -1)


class AttentionSoftmax(nn.Module):
    """The softmax over the key axis: scores → attention map (rows sum to 1)."""

    def forward(self, scores: Tensor) -> Tensor:
        return scores.softmax(dim=-1)


class AttentionMix(nn.Module):
    """``attn·v``: ``…×L×L`` and ``…×L×d`` → ``…×L×d``."""

    def forward(self, attn: Tensor, v: Tensor) -> Tensor:
        return attn @ v


_CHILDREN = {"xb_scores": AttentionScores, "xb_softmax": AttentionSoftmax, "xb_mix": AttentionMix}
_NEEDED = ("qkv", "q_norm", "k_norm", "attn_drop", "norm", "proj", "proj_drop", "num_heads", "head_dim", "scale")


def attention_classes() -> tuple[type[nn.Module], ...]:
    """timm's attention classes this module can route (empty when timm is not imported)."""
    import sys

    module = sys.modules.get("timm.layers.attention")
    cls = getattr(module, "Attention", None) if module is not None else None
    return (cls,) if isinstance(cls, type) else ()


def attention_blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, block)`` for every timm attention block of ``model``, in forward order."""
    classes = attention_classes()
    if not classes:
        return []
    return [(name, m) for name, m in model.named_modules() if isinstance(m, classes)]


def has_attention(model: nn.Module) -> bool:
    """Whether ``model`` has self-attention blocks the attention explainers can read."""
    return bool(attention_blocks(model))


def check_supported(name: str, block: nn.Module) -> None:
    missing = [attr for attr in _NEEDED if not hasattr(block, attr)]
    if missing:
        raise UnsupportedAttention(
            f"attention block {name!r} ({type(block).__module__}.{type(block).__name__}) lacks "
            f"{', '.join(missing)}: this timm release's Attention is not the one xaibench routes"
        )
    if getattr(block, "gate", None) is not None:
        raise UnsupportedAttention(f"attention block {name!r} is gated; gated attention is not routed")


def _routed_forward(self: nn.Module, x: Tensor, attn_mask: Tensor | None = None, is_causal: bool = False) -> Tensor:
    if attn_mask is not None or is_causal:
        raise UnsupportedAttention("routed attention takes no attention mask (image models use none)")
    batch, length, _ = x.shape
    qkv = self.qkv(x).reshape(batch, length, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)
    q, k = self.q_norm(q), self.k_norm(k)
    attn = self.xb_softmax(self.xb_scores(q * self.scale, k))
    out = self.xb_mix(self.attn_drop(attn), v)
    out = self.norm(out.transpose(1, 2).reshape(batch, length, self.num_heads * self.head_dim))
    return self.proj_drop(self.proj(out))


@contextmanager
def routed_attention(model: nn.Module) -> Iterator[list[tuple[str, nn.Module]]]:
    """Route every timm attention block of ``model`` through hookable modules (see module doc).

    Yields the ``(name, block)`` list; each block has the children ``xb_scores``,
    ``xb_softmax`` and ``xb_mix`` while inside. Nesting on the same model is refused.
    """
    blocks = attention_blocks(model)
    for name, block in blocks:
        check_supported(name, block)
        if hasattr(block, "xb_softmax"):
            raise RuntimeError(f"attention block {name!r} is already routed (nested routed_attention)")
    saved = [(block, block.__dict__.get("fused_attn", None), "fused_attn" in block.__dict__) for _, block in blocks]
    try:
        for _, block in blocks:
            block.fused_attn = False
            for child, cls in _CHILDREN.items():
                block.add_module(child, cls())
            block.forward = types.MethodType(_routed_forward, block)
        yield blocks
    finally:
        for block, fused, had_own in saved:
            for child in _CHILDREN:
                if child in block._modules:
                    del block._modules[child]
            block.__dict__.pop("forward", None)
            if had_own:
                block.fused_attn = fused
            else:
                block.__dict__.pop("fused_attn", None)
