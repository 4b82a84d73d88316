"""DeepLIFT with an exact rule on every non-linear operation of a timm Vision Transformer.

``ExactDeepLift(model).attribute(x, baselines, target)`` runs the explained images and the
baselines as one two-stream batch (``[x…; baseline…]``), replaces the output of every hooked
module by a straight-through tensor carrying its DeepLIFT multiplier
(``deeplift_multipliers``), and back-propagates the target logit once. Attention is routed
through modules first (``attention_routing``), so the two attention matmuls and the softmax get
rules too. Hooked, by module type:

* element-wise activations (``deeplift_rules.elementwise_activation_classes``: GELU, ReLU6,
  SiLU, …) — rescale;
* ``nn.LayerNorm`` and its subclasses, including timm's ``LayerNorm2d`` (normalised over
  the channel axis) — the exact LayerNorm rule;
* the attention softmax and ``nn.Softmax`` — the exact softmax rule;
* the attention matmuls ``q·kᵀ`` and ``attn·v`` — the bilinear (Shapley) split.

Every other module is linear in a ViT (``Linear``, the patch convolution, reshapes,
LayerScale, token pooling, additions), and its gradient is its exact multiplier. The
LayerNorm and softmax rules check, at every call, that their own decomposition reproduces the
module's output, so a timm release that changes what a module computes raises
``RuleMismatch`` instead of attributing a different function.

Unlike Captum's hooks, the rules keep no per-module state: a module that runs twice in one
forward pass gets a rule at each call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from . import deeplift_multipliers as rules
from .attention_routing import AttentionMix, AttentionScores, AttentionSoftmax, routed_attention
from .deeplift_multipliers import RuleMismatch
from .deeplift_rules import elementwise_activation_classes

__all__ = ["ExactDeepLift", "RuleMismatch", "exact_rules", "rule_for"]

Hook = Callable[[nn.Module, tuple, Tensor], Tensor]


def _named(module: nn.Module, rule: Callable[[], Tensor]) -> Tensor:
    try:
        return rule()
    except RuleMismatch as exc:
        raise RuleMismatch(f"{type(module).__name__}: {exc}") from None


def _elementwise_hook(module: nn.Module, inputs: tuple, out: Tensor) -> Tensor:
    # Parameter-free (or scalar-parameter) activations are evaluated at the masked entries
    # only; a per-channel one (PReLU) needs its input's shape, so all of it.
    per_entry = all(p.numel() <= 1 for p in module.parameters())

    def derivative(t: Tensor, mask: Tensor) -> Tensor:
        with torch.enable_grad():
            point = (t[mask] if per_entry else t).detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(module.forward(point).sum(), point)
        if not per_entry:
            return grad
        return torch.zeros_like(t).masked_scatter(mask, grad)

    return rules.rescale(inputs[0], out, derivative)


def _layer_norm_dims(module: nn.LayerNorm, inp: Tensor) -> tuple[int, ...]:
    shape = tuple(module.normalized_shape)
    if tuple(inp.shape[-len(shape) :]) == shape:
        return tuple(range(inp.ndim - len(shape), inp.ndim))
    if len(shape) == 1 and inp.ndim == 4 and inp.shape[1] == shape[0]:  # timm LayerNorm2d
        return (1,)
    raise RuleMismatch(f"LayerNorm over {shape} does not match an input of shape {tuple(inp.shape)}")


def _layer_norm_hook(module: nn.Module, inputs: tuple, out: Tensor) -> Tensor:
    inp = inputs[0]
    dims = _layer_norm_dims(module, inp)
    view = [1] * inp.ndim
    for d, size in zip(dims, module.normalized_shape, strict=True):
        view[d] = size
    weight = module.weight.view(view) if module.weight is not None else None
    bias = module.bias.view(view) if module.bias is not None else None
    return _named(module, lambda: rules.layer_norm(inp, out, dims, module.eps, weight, bias))


def _softmax_hook(module: nn.Module, inputs: tuple, out: Tensor) -> Tensor:
    dim = getattr(module, "dim", -1)
    dim = -1 if dim is None else dim
    return _named(module, lambda: rules.softmax(inputs[0], out, dim))


def _scores_vjp(grad: Tensor, q_bar: Tensor, k_bar: Tensor) -> tuple[Tensor, Tensor]:
    """``q·kᵀ``: ``∂/∂q = g·k̄``, ``∂/∂k = gᵀ·q̄``."""
    return grad @ k_bar, grad.transpose(-2, -1) @ q_bar


def _mix_vjp(grad: Tensor, attn_bar: Tensor, v_bar: Tensor) -> tuple[Tensor, Tensor]:
    """``attn·v``: ``∂/∂attn = g·v̄ᵀ``, ``∂/∂v = attn̄ᵀ·g``."""
    return grad @ v_bar.transpose(-2, -1), attn_bar.transpose(-2, -1) @ grad


def _scores_hook(module: nn.Module, inputs: tuple, out: Tensor) -> Tensor:
    return rules.bilinear(inputs[0], inputs[1], out, _scores_vjp)


def _mix_hook(module: nn.Module, inputs: tuple, out: Tensor) -> Tensor:
    return rules.bilinear(inputs[0], inputs[1], out, _mix_vjp)


def rule_for(module: nn.Module) -> Hook | None:
    """The forward hook that gives ``module`` its exact rule, or None (linear / unknown)."""
    if isinstance(module, AttentionScores):
        return _scores_hook
    if isinstance(module, AttentionMix):
        return _mix_hook
    if isinstance(module, AttentionSoftmax | nn.Softmax):
        return _softmax_hook
    if isinstance(module, nn.LayerNorm):
        return _layer_norm_hook
    if isinstance(module, tuple(elementwise_activation_classes())):
        return _elementwise_hook
    return None


@contextmanager
def exact_rules(model: nn.Module) -> Iterator[list[str]]:
    """Inside: attention routed and every known non-linear module's output ruled.

    Yields the names of the ruled modules. Everything is undone on exit.
    """
    with ExitStack() as stack:
        stack.enter_context(routed_attention(model))
        handles: list[RemovableHandle] = []
        names = []
        for name, module in model.named_modules():
            hook = rule_for(module)
            if hook is not None:
                handles.append(module.register_forward_hook(hook))
                names.append(name)
        stack.callback(lambda: [h.remove() for h in handles])
        yield names


class ExactDeepLift:
    """DeepLIFT (SHAP over several baselines) with the exact rules above."""

    def __init__(self, model: nn.Module):
        self.model = model

    def attribute(self, x: Tensor, baselines: Tensor, target: Tensor) -> Tensor:
        """Mean over baselines of DeepLIFT's ``multiplier × (x − baseline)``; shape of ``x``.

        ``x``: ``N×…``; ``baselines``: ``K×…``; ``target``: ``N`` class indices. The forward
        sees ``2·N·K`` rows.
        """
        n, k = x.shape[0], baselines.shape[0]
        inputs = x.detach().repeat_interleave(k, dim=0)
        bases = baselines.detach().repeat(n, *([1] * (x.ndim - 1)))
        stream = torch.cat([inputs, bases]).requires_grad_(True)
        rows = target.repeat_interleave(k).view(-1, 1)
        with exact_rules(self.model), torch.enable_grad():
            logits = self.model(stream)
            chosen = logits[: n * k].gather(1, rows).sum()
            (grad,) = torch.autograd.grad(chosen, stream)
        attributions = grad[: n * k] * (inputs - bases)
        return attributions.view(n, k, *x.shape[1:]).mean(dim=1)
