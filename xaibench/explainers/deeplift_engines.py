"""Which DeepLIFT implementation explains a model: the exact ViT rules or Captum's.

``rules="exact"``: ``deeplift_exact`` (every non-linear operation of a timm ViT has an exact
multiplier). ``rules="captum"``: Captum's DeepLIFT with xaibench's element-wise rescale rules
hooked through clones (``deeplift_rules``). ``rules="auto"``: exact where Captum's rules
would linearise something the exact rules cover (timm attention, LayerNorm, softmax), Captum
otherwise, so convolutional models keep the implementation (and numbers) they always had.
"""

from __future__ import annotations

from typing import Literal, Protocol, get_args

from torch import Tensor, nn

from .attention_routing import has_attention
from .deeplift_exact import ExactDeepLift
from .deeplift_rules import CloneHookDeepLift, CloneHookDeepLiftShap

RulesKind = Literal["auto", "exact", "captum"]
RULES_KINDS: tuple[str, ...] = get_args(RulesKind)


class DeepLiftEngine(Protocol):
    def attribute(self, x: Tensor, baselines: Tensor, target: Tensor) -> Tensor: ...


def needs_exact_rules(classifier: nn.Module) -> bool:
    """Whether Captum's rules would linearise an operation the exact rules cover."""
    if has_attention(classifier):
        return True
    return any(isinstance(m, nn.LayerNorm | nn.Softmax) for m in classifier.modules())


def choose_rules(classifier: nn.Module, rules: str) -> str:
    """``rules`` with ``"auto"`` resolved for ``classifier``: ``"exact"`` or ``"captum"``."""
    if rules != "auto":
        return rules
    return "exact" if needs_exact_rules(classifier) else "captum"


class CaptumEngine:
    """Captum's DeepLIFT SHAP over ≥ 2 baselines, plain DeepLIFT over one."""

    def __init__(self, classifier: nn.Module):
        self._shap = CloneHookDeepLiftShap(classifier, multiply_by_inputs=True)
        self._single = CloneHookDeepLift(classifier, multiply_by_inputs=True)

    def attribute(self, x: Tensor, baselines: Tensor, target: Tensor) -> Tensor:
        if baselines.shape[0] == 1:
            return self._single.attribute(x, baselines=baselines.expand_as(x), target=target)
        return self._shap.attribute(x, baselines=baselines, target=target)


def make_engine(classifier: nn.Module, rules_used: str) -> DeepLiftEngine:
    """The implementation for resolved ``rules_used`` ("exact" or "captum")."""
    if rules_used == "exact":
        return ExactDeepLift(classifier)
    return CaptumEngine(classifier)
