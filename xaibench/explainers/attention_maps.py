"""Attention-aware explainers for Vision Transformers: attention rollout and Chefer et al.

Both read the attention maps ``A`` (N×heads×L×L, rows sum to 1) of every timm ``Attention``
block, in forward order, through ``attention_routing.routed_attention`` (a forward hook on
each block's ``xb_softmax``), and return one value per patch token, laid on the patch grid
(``patch_embed.grid_size``), upsampled bilinearly (``align_corners=False``, as the CAM family
and Captum's ``LayerAttribution.interpolate``) to the image size and repeated over the image
channels. Maps are **not** normalised (the reference code scales them to a maximum of 1).

* ``attention_rollout`` (Abnar & Zuidema, 2020, "Quantifying Attention Flow in
  Transformers"; the reference implementation is jacobgil/vit-explain): per block the heads
  are fused (``head_fusion``: mean, max or min over heads), optionally the ``discard_ratio``
  lowest entries are set to 0, the residual is added, ``Â = (A + I)`` with rows renormalised
  to sum to 1 (``= 0.5·A + 0.5·I`` for mean fusion without discarding), and
  ``R = Â_B ⋯ Â_2 Â_1``. Class-agnostic: the target is ignored.
* ``chefer_attention`` (Chefer, Gur & Wolf, ICCV 2021, "Generic Attention-model
  Explainability …", the self-attention rule): ``R = I``; per block in order
  ``Ā = mean_heads (∇A ⊙ A)⁺`` with ``∇A = ∂y_t/∂A`` (``y_t`` the target logit) and
  ``R ← R + Ā·R``. Target-specific; the gradients of every block come from one forward +
  backward for the whole batch.

The map is the class token's row of ``R`` over the patch tokens (all ``num_prefix_tokens``
— class, distillation, register tokens — are skipped). A model that does not pool its class
token (``global_pool`` other than ``"token"``, e.g. ``"avg"``, or no class token at all)
reads out the **mean of the patch tokens' rows** of ``R`` instead: the tokens its prediction
is pooled from.

Images are independent in a ViT (no batch statistics in eval mode), and every matrix product
here is per image, so an image's map does not depend on the rest of its batch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from ..registry import explainers
from ..types import Classifier, Explainer
from ._common import check_choice, finish, prepare
from .attention_routing import (
    UnsupportedAttention,
    attention_blocks,
    check_supported,
    routed_attention,
)

HeadFusion = Literal["mean", "max", "min"]


def _network(classifier: nn.Module) -> nn.Module:
    network = getattr(classifier, "model", None)
    return network if isinstance(network, nn.Module) else classifier


def attention_incompatibility(owner: str, classifier: nn.Module) -> str | None:
    """Why ``owner`` cannot explain ``classifier`` (no routable timm attention), or None."""
    network = _network(classifier)
    model = getattr(classifier, "name", type(network).__name__)
    blocks = attention_blocks(network)
    if not blocks:
        return (
            f"{owner} needs a Vision Transformer with timm Attention blocks; {model!r} has none "
            "— use saliency/grad_cam or another gradient or perturbation explainer"
        )
    for name, block in blocks:
        try:
            check_supported(name, block)
        except UnsupportedAttention as exc:
            return f"{owner} cannot read the attention of {model!r}: {exc}"
    return None


def _readout(network: nn.Module) -> tuple[int, bool]:
    """``(prefix tokens, read the class token's row)`` for ``network``.

    The class token's row when the network has prefix tokens and pools the class token
    (timm ``global_pool == "token"``; a network without the attribute counts as pooling it);
    otherwise the mean of the patch tokens' rows.
    """
    prefix = int(getattr(network, "num_prefix_tokens", 0) or 0)
    pool = getattr(network, "global_pool", "token")
    has_class = getattr(network, "cls_token", True) is not None
    return prefix, prefix >= 1 and has_class and pool in ("token", None)


def _patch_grid(network: nn.Module, n: int, image_size: tuple[int, int], input_size: tuple[int, int] | None) -> tuple[int, int]:
    """The ``h×w`` patch grid of ``n`` patch tokens (``patch_embed.grid_size``; at another
    image size than the classifier's, the same patch stride; else a square)."""
    grid = getattr(getattr(network, "patch_embed", None), "grid_size", None)
    if grid is not None and len(grid) == 2:
        h, w = int(grid[0]), int(grid[1])
        if h * w != n and input_size is not None:
            h = round(image_size[0] * h / input_size[0])
            w = round(image_size[1] * w / input_size[1])
        if h * w == n:
            return h, w
    side = int(round(n**0.5))
    if n > 0 and side * side == n:
        return side, side
    raise ConfigError(f"cannot lay {n} attention tokens on a patch grid (patch_embed.grid_size = {grid})")


class _AttentionExplainer(Explainer):
    """Shared plumbing: refusal, the routed forward with a hook per block, the read-out."""

    is_random = False
    has_completeness = False
    uses_baseline = False
    multiplies_by_inputs = False

    @classmethod
    def incompatibility(cls, classifier: nn.Module) -> str | None:
        return attention_incompatibility(getattr(cls, "name", cls.__name__), classifier)

    def _check(self) -> None:
        reason = self.incompatibility(self.classifier)
        if reason:
            raise ConfigError(reason)

    def _routed_run(self, x: Tensor, on_map: Callable[[int, Tensor], None]) -> Tensor:
        """The logits of ``x``; ``on_map(i, A_i)`` is called with each block's attention map
        (N×heads×L×L, in forward order) as it is computed."""
        network = _network(self.classifier)
        seen: list[int] = []

        def hook(index: int) -> Callable[..., None]:
            def record(_module: nn.Module, _inputs: Any, output: Tensor) -> None:
                seen.append(index)
                on_map(index, output)

            return record

        handles = []
        with routed_attention(network) as blocks:
            try:
                handles = [block.xb_softmax.register_forward_hook(hook(i)) for i, (_, block) in enumerate(blocks)]
                logits = self.classifier(x)
            finally:
                for handle in handles:
                    handle.remove()
        if seen != list(range(len(blocks))):
            raise ConfigError(
                f"{self.name}: the attention blocks of {getattr(self.classifier, 'name', '?')!r} ran in the "
                f"order {seen}, not once each in module order; attention explainers need a plain ViT"
            )
        return logits

    def _to_image(self, relevance: Tensor, x01: Tensor) -> Tensor:
        """``N×L×L`` token relevance → its read-out row over the patches, as an N×C×H×W map."""
        network = _network(self.classifier)
        prefix, class_row = _readout(network)
        length = relevance.shape[-1]
        patches = relevance[:, 0, prefix:] if class_row else relevance[:, prefix:, prefix:].mean(dim=1)
        h, w = _patch_grid(network, length - prefix, tuple(x01.shape[-2:]), getattr(self.classifier, "input_size", None))
        heat = patches.reshape(-1, 1, h, w).float()
        up = F.interpolate(heat, size=tuple(x01.shape[-2:]), mode="bilinear", align_corners=False)
        return finish(up.expand(-1, x01.shape[1], -1, -1).contiguous(), x01)


def _same_length(name: str, maps: list[Tensor], length: int) -> None:
    if any(m.shape[-1] != length for m in maps):
        raise ConfigError(f"{name}: the attention blocks attend over different numbers of tokens; not a plain ViT")


@explainers.register("attention_rollout")
class AttentionRolloutExplainer(_AttentionExplainer):
    """Attention rollout (Abnar & Zuidema, 2020): the product of the blocks' attention maps,
    each with the residual added, read from the class token's row. Class-agnostic.

    ``head_fusion`` fuses the heads of a block (``mean``, ``max``, ``min``); ``discard_ratio``
    (in [0, 1)) sets the ``⌊ratio·L²⌋`` lowest entries of each fused L×L map to 0 before the
    residual is added, never those of the class token's column (as jacobgil/vit-explain;
    ties are broken by position, so the choice is deterministic).
    """

    title = "Attention Rollout"
    summary = "product of the blocks' head-fused attention maps plus identity; class token's row (class-agnostic)"
    needs_gradients = False

    @classmethod
    def passes_per_image(cls, params: dict[str, Any]) -> tuple[int, int]:
        return 1, 0

    def __init__(self, classifier: Classifier, head_fusion: HeadFusion = "mean", discard_ratio: float = 0.0):
        check_choice("attention_rollout", "head_fusion", head_fusion, get_args(HeadFusion))
        try:
            ratio = float(discard_ratio)
        except (TypeError, ValueError):
            raise ConfigError(f"attention_rollout: discard_ratio must be a number, got {discard_ratio!r}") from None
        if not 0.0 <= ratio < 1.0:
            raise ConfigError(f"attention_rollout: discard_ratio must be in [0, 1), got {discard_ratio!r}")
        super().__init__(classifier, head_fusion=head_fusion, discard_ratio=ratio)
        self.head_fusion = head_fusion
        self.discard_ratio = ratio

    def _fuse(self, attention: Tensor) -> Tensor:
        attention = attention.float()
        if self.head_fusion == "mean":
            return attention.mean(dim=1)
        if self.head_fusion == "max":
            return attention.amax(dim=1)
        return attention.amin(dim=1)

    def _discard(self, fused: Tensor, protect_class_column: bool) -> Tensor:
        n, length, _ = fused.shape
        flat = fused.reshape(n, length * length).clone()
        key = flat
        candidates = length * length
        if protect_class_column:
            key = flat.clone()
            key.view(n, length, length)[:, :, 0] = float("inf")
            candidates -= length
        count = min(int(length * length * self.discard_ratio), candidates)
        if count > 0:
            order = torch.sort(key, dim=1, stable=True).indices[:, :count]
            flat.scatter_(1, order, 0.0)
        return flat.view(n, length, length)

    def explain(self, x01: Tensor, target: Tensor) -> Tensor:
        """The rollout map; ``target`` is checked (one per image) but does not change it."""
        self._check()
        x, _ = prepare(self.classifier, x01, target)
        _, class_row = _readout(_network(self.classifier))
        state: dict[str, Tensor] = {}

        def fold(_index: int, attention: Tensor) -> None:
            fused = self._fuse(attention.detach())
            if "rollout" in state:
                _same_length(self.name, [state["rollout"]], fused.shape[-1])
            if self.discard_ratio > 0:
                fused = self._discard(fused, protect_class_column=class_row)
            eye = torch.eye(fused.shape[-1], device=fused.device, dtype=fused.dtype)
            residual = fused + eye
            residual = residual / residual.sum(dim=-1, keepdim=True)
            previous = state.get("rollout")
            state["rollout"] = residual if previous is None else residual @ previous

        with torch.no_grad():
            self._routed_run(x, fold)
        return self._to_image(state["rollout"], x01)


@explainers.register("chefer_attention")
class CheferAttentionExplainer(_AttentionExplainer):
    """Chefer, Gur & Wolf (ICCV 2021), the self-attention relevance rule: ``R = I``, then per
    block ``R ← R + mean_heads((∂y/∂A ⊙ A)⁺)·R``; the class token's row over the patches.

    ``∂y/∂A`` is the gradient of the target logit with respect to each block's attention map
    (the softmax output), all blocks from one forward + backward of the whole batch; the
    model's weights get no gradient.
    """

    title = "Chefer Attention Relevance"
    summary = "gradient-weighted attention (∇A⊙A)⁺ averaged over heads, propagated R ← R + Ā·R (Chefer et al. 2021)"
    needs_gradients = True

    @classmethod
    def passes_per_image(cls, params: dict[str, Any]) -> tuple[int, int]:
        return 1, 1

    def __init__(self, classifier: Classifier):
        super().__init__(classifier)

    def explain(self, x01: Tensor, target: Tensor) -> Tensor:
        self._check()
        x, t = prepare(self.classifier, x01, target)
        maps: list[Tensor] = []
        with torch.enable_grad():
            # The input needs a gradient so that the attention maps are in the graph even when
            # the model's weights are frozen; only the maps' gradients are computed.
            x.requires_grad_(True)
            logits = self._routed_run(x, lambda _index, attention: maps.append(attention))
            score = logits.gather(1, t.view(-1, 1)).sum()
            grads = torch.autograd.grad(score, maps, allow_unused=True)
        if any(g is None for g in grads):
            raise ValueError(f"{self.name}: the logits do not depend on every attention map")
        length = maps[0].shape[-1]
        _same_length(self.name, maps, length)
        relevance = torch.eye(length, device=x.device, dtype=torch.float32).expand(x.shape[0], -1, -1)
        for attention, grad in zip(maps, grads, strict=True):
            weighted = (grad.float() * attention.detach().float()).clamp_min(0).mean(dim=1)
            relevance = relevance + weighted @ relevance
        return self._to_image(relevance, x01)
