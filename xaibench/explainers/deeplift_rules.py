"""DeepLIFT rescale rules for the element-wise activations Captum does not know.

Captum's ``DeepLift`` hooks only the module types listed in the private dict
``captum.attr._core.deep_lift.SUPPORTED_NON_LINEAR``, matched by *exact* type (no
subclasses). Every other activation (``nn.ReLU6``, ``nn.GELU``, ``nn.SiLU``,
``nn.Hardswish``, ``nn.Mish`` and timm's own ``GELU``, ``Sigmoid``, ``Tanh``, …) passes plain
gradients, so DeepLIFT silently degrades to ``gradient × (input − baseline)`` and loses
completeness. EfficientNet-Lite0 (ReLU6 throughout) is such a model.

For an element-wise activation ``y_i = φ(x_i)`` the rescale rule (multiplier
``Δy_i / Δx_i``) is exact, so this module registers Captum's own ``nonlinear`` rule for every
such class. Non-element-wise operations (LayerNorm, the attention softmax of ViTs, products
such as squeeze-excitation gates) stay linearised and Captum's max-pool rule stays what it
is: those models keep a completeness gap, which the results report instead of hiding.

It also fixes how Captum (≤ 0.9.0) attaches the rule, in ``CloneHookDeepLiftShap``: Captum
puts the gradient-rewriting tensor hook on the hooked module's *input tensor*, which
replaces that tensor's whole gradient. Two common patterns then go wrong silently:

* adjacent hooked modules (``ReLU → MaxPool`` in ResNet and VGG stems, ``GELU → ReLU6``): the
  first module records its output gradient before the second has rewritten it (Captum issue
  #1104; fixed upstream by PR #1843, after 0.9.0);
* an activation whose input is also used elsewhere (``act(y) + y``): the other paths'
  gradient is dropped.

``CloneHookDeepLiftShap`` hands each hooked module a clone of its input and hooks the clone,
so the rule rewrites only the gradient that flows through that module.

This relies on private Captum APIs (checked against captum 0.9.0); the tests compare with
stock Captum so a Captum change that breaks it is caught.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import torch
from captum.attr import DeepLift, DeepLiftShap
from captum.attr._core import deep_lift as _deep_lift
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

#: Captum's rules as shipped, snapshotted before this module adds anything (for tests and
#: for reporting which rules are ours).
STOCK_RULES: dict[type[nn.Module], object] = dict(_deep_lift.SUPPORTED_NON_LINEAR)

# Element-wise activation classes of torch (Captum already covers ReLU, ELU, LeakyReLU,
# Sigmoid, Tanh, Softplus; they are listed anyway so the list states the whole contract).
_TORCH_ELEMENTWISE: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.ReLU6,
    nn.ELU,
    nn.CELU,
    nn.SELU,
    nn.LeakyReLU,
    nn.PReLU,  # per-channel slope, still one input element per output element
    nn.RReLU,  # a fixed slope in eval mode
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Hardtanh,
    nn.Sigmoid,
    nn.Tanh,
    nn.Softplus,
    nn.Softsign,
    nn.LogSigmoid,
    nn.Tanhshrink,
    nn.Softshrink,
    nn.Hardshrink,
    nn.Threshold,
)

# timm's own element-wise activation classes (module path, class names). Looked up by name so
# a timm release that renames one only drops that rule.
_TIMM_ELEMENTWISE: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "timm.layers.activations",
        (
            "Swish",
            "Mish",
            "Sigmoid",
            "Tanh",
            "HardSwish",
            "HardSigmoid",
            "HardMish",
            "GELU",
            "GELUTanh",
            "QuickGELU",
            "PReLU",
        ),
    ),
    (
        "timm.layers.activations_me",
        ("SwishMe", "MishMe", "HardSwishMe", "HardSigmoidMe", "HardMishMe"),
    ),
    ("timm.models.metaformer", ("SquaredReLU", "StarReLU")),  # s·relu(x)² + b, scalar s, b
    ("timm.models.nfnet", ("GammaAct",)),  # γ·act(x)
)


def elementwise_activation_classes() -> list[type[nn.Module]]:
    """Every element-wise activation class this module knows about (torch and timm).

    timm classes are looked up only in modules already imported: importing timm costs
    seconds, and a model built from timm has imported them already (``import timm`` loads
    every architecture). The explainer registers again at each call, so a model created
    after the explainer is covered too.
    """
    classes: list[type[nn.Module]] = list(_TORCH_ELEMENTWISE)
    for module_name, names in _TIMM_ELEMENTWISE:
        module = sys.modules.get(module_name)
        if module is None:
            continue
        for name in names:
            cls = getattr(module, name, None)
            if isinstance(cls, type) and issubclass(cls, nn.Module) and cls not in classes:
                classes.append(cls)
    return classes


def register_elementwise_rules() -> list[type]:
    """Give every element-wise activation Captum's rescale rule; idempotent.

    Existing entries (Captum's own, or a rule a user registered) are kept. Returns the
    element-wise classes that now have a rule. The dict is read at call time, so a test that
    swaps in a copy of ``STOCK_RULES`` gets the rules added to that copy.
    """
    rules = _deep_lift.SUPPORTED_NON_LINEAR
    classes = elementwise_activation_classes()
    for cls in classes:
        rules.setdefault(cls, _deep_lift.nonlinear)
    return classes


def added_rules() -> list[type]:
    """The classes that have a DeepLIFT rule now but not in stock Captum."""
    return [cls for cls in _deep_lift.SUPPORTED_NON_LINEAR if cls not in STOCK_RULES]


def hooked_types() -> tuple[type, ...]:
    """The module types Captum's DeepLIFT hooks right now (exact-type match)."""
    return tuple(_deep_lift.SUPPORTED_NON_LINEAR)


def _single(value: Tensor | tuple[Tensor, ...], what: str) -> Tensor:
    if isinstance(value, tuple):
        if len(value) != 1:
            raise RuntimeError(f"DeepLIFT rules need modules with one {what} tensor")
        return value[0]
    return value


def _hook_through_clone(
    module: nn.Module, rule_hook: Callable[[nn.Module, Tensor, Tensor], Tensor]
) -> list[RemovableHandle]:
    """Like Captum's ``_register_backward_hook``, but the input hook sits on a private clone.

    The clone is used by ``module`` only, so its gradient is exactly the gradient through
    ``module``; rewriting it leaves other uses of the input (and the previous hooked module's
    output gradient) alone. For an in-place module the clone is modified in place: a hook
    registered before an in-place op receives the gradient of the value before it.
    """
    grad_out: dict[torch.device, Tensor] = {}

    def capture_output_grad(grad: Tensor) -> None:
        grad_out[grad.device] = grad

    def forward_hook(_module: nn.Module, _inputs: object, outputs: Tensor | tuple[Tensor, ...]) -> None:
        _single(outputs, "output").register_hook(capture_output_grad)

    def pre_hook(mod: nn.Module, inputs: Tensor | tuple[Tensor, ...]) -> Tensor:
        private = _single(inputs, "input").clone()

        def rewrite_input_grad(grad: Tensor) -> Tensor | None:
            if grad.device not in grad_out:
                return None
            return rule_hook(mod, grad, grad_out[grad.device])

        private.register_hook(rewrite_input_grad)
        return private

    return [module.register_forward_pre_hook(pre_hook), module.register_forward_hook(forward_hook)]


class _CloneHooks:
    """Captum's DeepLIFT hook registration with each rule hooked on a clone of the input."""

    def _register_hooks(self, module: nn.Module, attribute_to_layer_input: bool = True) -> None:
        if not self._can_register_hook(module):  # type: ignore[attr-defined]
            return
        # Same order as Captum: record input/output first, then the gradient hooks.
        self.forward_handles.append(module.register_forward_hook(self._forward_hook))  # type: ignore[attr-defined]
        self.forward_handles.append(module.register_forward_pre_hook(self._forward_pre_hook))  # type: ignore[attr-defined]
        self.backward_handles.extend(_hook_through_clone(module, self._backward_hook))  # type: ignore[attr-defined]


class CloneHookDeepLiftShap(_CloneHooks, DeepLiftShap):
    """Captum's ``DeepLiftShap`` with each rule hooked on a clone of the module's input."""


class CloneHookDeepLift(_CloneHooks, DeepLift):
    """Captum's ``DeepLift`` (one baseline) with each rule hooked on a clone of the input."""
