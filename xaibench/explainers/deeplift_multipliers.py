"""Exact DeepLIFT multipliers for the operations of a Vision Transformer.

DeepLIFT explains ``Δf = f(x) − f(x₀)`` by back-propagating *multipliers* ``m`` with
``Δy = Σᵢ mᵢ·Δxᵢ`` for every operation ``y(x)``. Linear operations pass their gradient (exact);
a non-linear operation needs a rule, and when every operation's rule satisfies its own
summation-to-delta, the chain rule makes the whole attribution complete:
``Σ attribution = f(x) − f(x₀)`` up to floating-point rounding.

All functions here work on a **two-stream batch**: the first half of the rows is the
explained inputs' activations, the second half the baselines' (row ``i`` of one half pairs with
row ``i`` of the other). ``halves(t)`` splits them, so ``Δ = t₁ − t₀``; the rules compute
their multipliers once per pair and apply them to both streams' gradients by broadcasting. Each rule is an ``autograd.Function`` whose forward returns the operation's real
output ``out`` unchanged and whose backward applies the rule's multipliers instead of the
Jacobian, so one ordinary ``backward`` computes DeepLIFT. ``softmax`` and ``layer_norm``
recompute the output from their own decomposition and raise ``RuleMismatch`` when it is not
``out`` (the module computes something else). Derivations: docs/explainers.md, "Exact
DeepLIFT on Vision Transformers".

* ``rescale`` — element-wise ``y = φ(x)``: ``m = Δy/Δx`` (the secant; the derivative at the
  midpoint where ``|Δx|`` is below ``RESCALE_TOL``).
* ``bilinear`` — ``y = B(a, b)`` bilinear (``q·kᵀ``, ``attn·v``):
  ``ΔB = B(Δa, b̄) + B(ā, Δb)`` with ``ā = (a + a₀)/2`` — the cross term ``B(Δa, Δb)`` shared
  equally, which is the Shapley value of the two operands and the exact path integral.
* ``softmax`` — ``p = e·r`` with ``e = exp(z − c)`` (rescale), ``s = Σe`` (linear),
  ``r = 1/s`` (rescale, secant ``−1/(s·s₀)`` in closed form) and the product ``e·r``
  (bilinear); ``c`` is one shift per row shared by both streams (softmax is invariant to it).
* ``layer_norm`` — ``y = γ·(c·r) + β`` with ``c = x − mean(x)`` (linear),
  ``v = mean(c²)`` (``Δc² = (c + c₀)·Δc``, exact), ``r = (v + ε)^(−1/2)`` (secant
  ``−r·r₀/(√u + √u₀)``, ``u = v + ε``, in closed form) and the product ``c·r`` (bilinear).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

#: Below this |Δx| the rescale rule uses the derivative at the midpoint instead of the secant
#: (float32 secants of tiny differences are noise; the completeness error this allows is at
#: most ``RESCALE_TOL · |φ'|`` per element).
RESCALE_TOL = 1e-6
#: A rule's own value may differ from the module's output by this much (relative to the
#: output's scale; 4 epsilons for bf16/fp16 outputs under autocast) before it is refused:
#: recomputing in another order rounds differently, a different function does not.
VALUE_TOLERANCE = 1e-3


class RuleMismatch(RuntimeError):
    """A DeepLIFT rule does not reproduce the module it replaces."""


def halves(t: Tensor) -> tuple[Tensor, Tensor]:
    """The explained stream's rows and the baseline stream's rows of ``t`` (detached)."""
    half = t.shape[0] // 2
    if 2 * half != t.shape[0]:
        raise RuntimeError(f"two-stream batch needs an even number of rows, got {t.shape[0]}")
    t = t.detach()
    if t.dtype in (torch.float16, torch.bfloat16):  # rules in float32 under autocast
        t = t.float()
    return t[:half], t[half:]


def _both(grad: Tensor, per_pair: Tensor) -> Tensor:
    """``grad`` (both streams) times ``per_pair`` (one value per pair, broadcast to both)."""
    paired_grad = grad.reshape(2, grad.shape[0] // 2, *grad.shape[1:])
    return (paired_grad * per_pair).reshape(grad.shape)


def _check(own: Tensor, out: Tensor, what: str) -> None:
    if not out.numel():
        return
    scale = float(out.abs().max())
    error = float((own - out.float()).abs().max())
    # bf16 / fp16 outputs (autocast) carry their own rounding: a few units of their epsilon.
    tolerance = max(VALUE_TOLERANCE, 4 * torch.finfo(out.dtype).eps)
    if not error <= tolerance * max(scale, 1.0):
        raise RuleMismatch(
            f"the exact DeepLIFT rule for {what} gives values {error:.3g} away from the "
            f"module's output (scale {scale:.3g}): the module computes something else"
        )


def _secant(d_out: Tensor, d_in: Tensor, at_midpoint: Callable[[Tensor], Tensor]) -> Tensor:
    """``Δout/Δin``; where ``|Δin| < RESCALE_TOL``, ``at_midpoint(mask)``: the derivative at
    the midpoint (only the masked entries are used)."""
    small = d_in.abs() < RESCALE_TOL
    secant = d_out / torch.where(small, torch.ones_like(d_in), d_in)
    if bool(small.any()):
        secant = torch.where(small, at_midpoint(small).to(secant.dtype), secant)
    return secant


class _Scaled(torch.autograd.Function):
    """``out`` forward; ``grad · m`` backward (one element-wise multiplier per pair)."""

    @staticmethod
    def forward(ctx: Any, inp: Tensor, out: Tensor, multiplier: Tensor) -> Tensor:
        ctx.save_for_backward(multiplier)
        return out.view_as(out)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
        (multiplier,) = ctx.saved_tensors
        return _both(grad, multiplier), None, None


def rescale(inp: Tensor, out: Tensor, derivative: Callable[[Tensor, Tensor], Tensor]) -> Tensor:
    """Rescale rule for an element-wise ``out = φ(inp)``. ``derivative(t, mask)`` returns
    ``φ'(t)`` (its entries outside ``mask`` are not used)."""
    (x, x0), (y, y0) = halves(inp), halves(out)
    multiplier = _secant(y - y0, x - x0, lambda mask: derivative((x + x0) / 2, mask))
    return _Scaled.apply(inp, out, multiplier)


class _Bilinear(torch.autograd.Function):
    """``out`` forward; backward ``(B(·, b̄)ᵀg, B(ā, ·)ᵀg)`` through ``vjp(g, ā, b̄)``."""

    @staticmethod
    def forward(ctx: Any, a: Tensor, b: Tensor, out: Tensor, vjp: Callable) -> Tensor:
        (a1, a0), (b1, b0) = halves(a), halves(b)
        ctx.save_for_backward((a1 + a0) / 2, (b1 + b0) / 2)
        ctx.vjp = vjp
        return out.view_as(out)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, Tensor, None, None]:
        a_bar, b_bar = ctx.saved_tensors
        paired_grad = grad.reshape(2, grad.shape[0] // 2, *grad.shape[1:])
        grad_a, grad_b = ctx.vjp(paired_grad, a_bar, b_bar)  # broadcast over the two streams
        return grad_a.reshape(2 * a_bar.shape[0], *a_bar.shape[1:]), grad_b.reshape(
            2 * b_bar.shape[0], *b_bar.shape[1:]
        ), None, None


def product_vjp(product: Callable[[Tensor, Tensor], Tensor]) -> Callable:
    """A ``vjp(g, ā, b̄)`` for any bilinear ``product`` by autograd (one extra product each)."""

    def vjp(grad: Tensor, a_bar: Tensor, b_bar: Tensor) -> tuple[Tensor, Tensor]:
        a_shape = grad.shape[: grad.ndim - a_bar.ndim] + a_bar.shape
        b_shape = grad.shape[: grad.ndim - b_bar.ndim] + b_bar.shape
        with torch.enable_grad():
            a = a_bar.expand(a_shape).clone().requires_grad_(True)
            b = b_bar.expand(b_shape).clone().requires_grad_(True)
            (grad_a,) = torch.autograd.grad(product(a, b_bar), a, grad)
            (grad_b,) = torch.autograd.grad(product(a_bar, b), b, grad)
        return grad_a, grad_b

    return vjp


def bilinear(a: Tensor, b: Tensor, out: Tensor, vjp: Callable) -> Tensor:
    """Shapley split of a bilinear ``out = B(a, b)``: gradients ``B(·, b̄)`` and ``B(ā, ·)``.

    ``vjp(g, ā, b̄)`` returns both vector–Jacobian products, ``g`` with a leading axis of 2
    (the streams) over ``ā``'s and ``b̄``'s shape (``product_vjp(B)`` builds one)."""
    return _Bilinear.apply(a, b, out, vjp)


class _Softmax(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, z: Tensor, out: Tensor, dim: int) -> Tensor:
        z1, z0 = halves(z)
        shift = torch.maximum(z1.amax(dim=dim, keepdim=True), z0.amax(dim=dim, keepdim=True))
        z1, z0 = z1 - shift, z0 - shift
        e1, e0 = z1.exp(), z0.exp()
        slope = _secant(e1 - e0, z1 - z0, lambda _mask: ((z1 + z0) / 2).exp())
        s1, s0 = e1.sum(dim=dim, keepdim=True), e0.sum(dim=dim, keepdim=True)
        _check(e1 / s1, out.detach()[: out.shape[0] // 2], "softmax")
        # p = e·r, r = 1/s: Δp = Δe·r̄ + ē·Δr, Δr = −Δs/(s·s₀), Δs = ΣΔe, Δe = slope·Δz.
        ctx.save_for_backward(slope, (e1 + e0) / 2, (1 / s1 + 1 / s0) / 2, -1 / (s1 * s0))
        ctx.dim = dim if dim < 0 else dim + 1  # on the paired view, with its leading stream axis
        return out.view_as(out)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
        slope, e_bar, r_bar, r_slope = ctx.saved_tensors
        paired_grad = grad.reshape(2, grad.shape[0] // 2, *grad.shape[1:])
        grad_e = paired_grad * r_bar + r_slope * (paired_grad * e_bar).sum(dim=ctx.dim, keepdim=True)
        return (grad_e * slope).reshape(grad.shape), None, None


def softmax(inp: Tensor, out: Tensor, dim: int) -> Tensor:
    """Exact DeepLIFT multipliers for ``out = softmax(inp, dim)`` (see the module doc)."""
    return _Softmax.apply(inp, out, dim)


def _rsqrt_secant(u1: Tensor, u0: Tensor) -> Tensor:
    """``Δ(u^(−1/2))/Δu = −r·r₀/(√u + √u₀)`` (exact, no cancellation), ``u > 0``."""
    return -(u1.rsqrt() * u0.rsqrt()) / (u1.sqrt() + u0.sqrt())


class _LayerNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, out: Tensor, dims: tuple[int, ...], eps: float,
                weight: Tensor | None, bias: Tensor | None) -> Tensor:
        x1, x0 = halves(x)
        c1, c0 = x1 - x1.mean(dim=dims, keepdim=True), x0 - x0.mean(dim=dims, keepdim=True)
        u1, u0 = (c1 * c1).mean(dim=dims, keepdim=True) + eps, (c0 * c0).mean(dim=dims, keepdim=True) + eps
        own = c1 * u1.rsqrt()
        if weight is not None:
            own = own * weight
        if bias is not None:
            own = own + bias
        _check(own, out.detach()[: out.shape[0] // 2], "LayerNorm")
        # n = c·r: Δn = Δc·r̄ + c̄·Δr; Δr = r_slope·Δu; Δu = mean((c + c₀)·Δc); Δc = Δx − mean(Δx).
        ctx.save_for_backward(c1 + c0, (u1.rsqrt() + u0.rsqrt()) / 2, _rsqrt_secant(u1, u0), weight)
        ctx.dims = tuple(d if d < 0 else d + 1 for d in dims)  # on the paired view
        return out.view_as(out)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        c_sum, r_bar, r_slope, weight = ctx.saved_tensors
        dims = ctx.dims
        shape = grad.shape
        grad = grad.reshape(2, shape[0] // 2, *shape[1:])
        if weight is not None:
            grad = grad * weight
        count = 1
        for d in dims:
            count *= grad.shape[d]
        grad_r = (grad * c_sum).sum(dim=dims, keepdim=True) / 2
        grad_c = grad * r_bar + (r_slope * grad_r / count) * c_sum
        grad_x = grad_c - grad_c.mean(dim=dims, keepdim=True)
        return grad_x.reshape(shape), None, None, None, None, None


def layer_norm(
    inp: Tensor,
    out: Tensor,
    dims: Sequence[int],
    eps: float,
    weight: Tensor | None,
    bias: Tensor | None,
) -> Tensor:
    """Exact DeepLIFT multipliers for LayerNorm over ``dims`` (affine ``weight``/``bias``
    broadcastable against ``inp``), see the module doc."""
    detached = (t.detach() if t is not None else None for t in (weight, bias))
    return _LayerNorm.apply(inp, out, tuple(dims), float(eps), *detached)
