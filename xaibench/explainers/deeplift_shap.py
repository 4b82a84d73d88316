"""DeepLIFT SHAP: DeepLIFT (rescale rule) averaged over a fixed set of baseline images."""

from __future__ import annotations

from collections import Counter
from typing import Any, Literal, get_args

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from ..registry import explainers
from ..types import Classifier, Explainer
from ._common import check_choice, finish, prepare, quiet_captum, relative_gap, target_logits
from .deeplift_engines import RULES_KINDS, RulesKind, choose_rules, make_engine
from .deeplift_rules import hooked_types, register_elementwise_rules

BaselineKind = Literal["uniform", "zeros_and_uniform"]
BASELINE_KINDS: tuple[str, ...] = get_args(BaselineKind)


def find_reused_hooked_modules(classifier: nn.Module, x: Tensor) -> list[str]:
    """Names of modules DeepLIFT hooks that run more than once in one forward of ``x``.

    Captum keeps one input/output record per module, so a reused activation either raises
    inside Captum or silently mixes call sites (Captum issues #1082, #1104).
    """
    types = hooked_types()
    names = {module: name for name, module in classifier.named_modules()}
    calls: Counter[str] = Counter()
    handles = [
        module.register_forward_hook(lambda m, _i, _o: calls.update([names[m]]))
        for module in classifier.modules()
        if type(module) in types
    ]
    try:
        with torch.no_grad():
            classifier(x)
    finally:
        for handle in handles:
            handle.remove()
    return sorted(name or "<root>" for name, count in calls.items() if count > 1)


def _reuse_error(model_name: str, modules: list[str]) -> ValueError:
    return ValueError(
        f"deeplift_shap cannot explain {model_name!r}: these modules run more than once per "
        f"forward pass: {', '.join(modules)}. DeepLIFT records one input/output per module, so "
        "Captum raises or silently gives wrong attributions. Give every call site its own "
        "module instance (the model zoo does this for the architectures it knows), or use "
        "integrated_gradients."
    )


@explainers.register("deeplift_shap")
class DeepLiftShapExplainer(Explainer):
    """Captum ``DeepLiftShap`` on the target logit with a fixed, seeded baseline set.

    ``baselines="uniform"`` draws ``n_baselines`` U(0,1) images; ``"zeros_and_uniform"`` is a
    black image plus ``n_baselines − 1`` uniform ones. The set depends only on ``seed`` and the
    image shape (the same for every image), so results do not depend on batch composition.

    ``rules`` chooses how non-linear operations get their multipliers:

    * ``"exact"`` (``deeplift_exact``): every non-linear operation of a timm ViT has an exact
      rule — rescale for element-wise activations, closed-form rules for LayerNorm and the
      softmax, the Shapley split for the attention matmuls — so Σ attribution equals
      ``f(x) − mean_b f(b)`` to rounding (median relative gap ~1e-4 on ViT-Tiny / DeiT-Tiny).
      Max-pooling and other unknown non-linear modules pass plain gradients.
    * ``"captum"``: Captum's ``DeepLiftShap`` with rescale rules registered for every
      element-wise activation (``deeplift_rules``; without them Captum treats
      ReLU6/GELU/SiLU/… as linear), attached through clones of each hooked module's input
      (``CloneHookDeepLiftShap``: fixes Captum 0.9's wrong results for adjacent hooked modules
      and for activations whose input is also used elsewhere). LayerNorm, softmax and products
      stay linearised; Captum's max-pool rule loses mass where pooling windows overlap.
    * ``"auto"`` (default): ``"exact"`` for models with timm attention, LayerNorm or softmax
      modules, ``"captum"`` otherwise (CNNs keep the results they always had). The
      completeness gap column measures what either leaves out.

    With Captum's rules, reused modules are refused: the classifier's ``reused_modules`` (set
    by the model zoo) at construction, and any hooked module seen running twice in a one-image
    probe forward at the first ``explain``; the exact rules keep no per-module state, so
    reuse is fine there. In-place activations are accepted: Captum (≥ 0.8) hooks them with a
    forward pre-hook that hands the module a clone, and the tests check that in-place and
    out-of-place copies of a model give identical attributions.

    Captum does no internal batching here: one call sees ``2 · N · n_baselines`` rows.
    ``internal_batch_size`` caps the rows per call by splitting the images (at least one image
    per call); ``None`` attributes the whole batch at once.
    """

    title = "DeepLIFT SHAP"
    summary = "DeepLIFT (rescale rule; exact rules on ViTs) averaged over a fixed, seeded set of baseline images"
    uses_baseline = True
    multiplies_by_inputs = True
    has_completeness = True
    is_random = False

    @classmethod
    def passes_per_image(cls, params: dict[str, Any]) -> tuple[int, int]:
        """Captum runs the inputs and the baselines together: 2 · n_baselines rows per image."""
        return 2 * int(params["n_baselines"]), 2 * int(params["n_baselines"])

    def __init__(
        self,
        classifier: Classifier,
        n_baselines: int = 8,
        baselines: BaselineKind = "uniform",
        seed: int = 0,
        internal_batch_size: int | None = None,
        rules: RulesKind = "auto",
    ):
        check_choice("deeplift_shap", "baselines", baselines, BASELINE_KINDS)
        check_choice("deeplift_shap", "rules", rules, RULES_KINDS)
        if int(n_baselines) < 2:
            # Captum asserts more than one baseline (a single one is plain DeepLift).
            raise ConfigError(f"deeplift_shap: n_baselines must be ≥ 2, got {n_baselines}")
        if internal_batch_size is not None and int(internal_batch_size) < 1:
            raise ConfigError("deeplift_shap: internal_batch_size must be ≥ 1 or None")
        self._init_engine(classifier, rules, internal_batch_size)
        super().__init__(
            classifier,
            n_baselines=int(n_baselines),
            baselines=baselines,
            seed=int(seed),
            internal_batch_size=internal_batch_size,
            rules=rules,
        )
        self.n_baselines = int(n_baselines)
        self.baselines = baselines
        self.seed = int(seed)

    def _init_engine(self, classifier: Classifier, rules: str, internal_batch_size: int | None) -> None:
        """Resolve ``rules``, refuse reuse under Captum's rules, build the engine and caches."""
        #: The rules actually used: "exact" or "captum" ("auto" resolved for this model).
        self.rules_used = choose_rules(classifier, rules)
        reused = list(getattr(classifier, "reused_modules", None) or [])
        if reused and self.rules_used == "captum":
            raise _reuse_error(getattr(classifier, "name", type(classifier).__name__), reused)
        self.internal_batch_size = None if internal_batch_size is None else int(internal_batch_size)
        #: The element-wise activation classes that have a DeepLIFT rule (for provenance).
        self.rule_classes = register_elementwise_rules()
        self._engine = make_engine(classifier, self.rules_used)
        self._baseline_cache: dict[tuple, Tensor] = {}
        self._mean_baseline_logits: dict[tuple, Tensor] = {}
        self._probed = False

    @classmethod
    def incompatibility(cls, classifier: nn.Module, rules: str = "auto") -> str | None:
        """Why the planner must skip this model (reused modules under Captum's rules), or None."""
        reused = list(getattr(classifier, "reused_modules", None) or [])
        if reused and choose_rules(classifier, rules) == "captum":
            return str(_reuse_error(getattr(classifier, "name", type(classifier).__name__), reused))
        return None

    def baseline_images(self, image_shape: tuple[int, ...]) -> Tensor:
        """The ``n_baselines × C × H × W`` baseline set in [0, 1], on the CPU."""
        image_shape = tuple(int(s) for s in image_shape)
        key = (image_shape, "cpu")
        if key not in self._baseline_cache:
            generator = torch.Generator(device="cpu").manual_seed(self.seed)
            if self.baselines == "uniform":
                images = torch.rand((self.n_baselines, *image_shape), generator=generator)
            else:  # zeros_and_uniform
                uniform = torch.rand((self.n_baselines - 1, *image_shape), generator=generator)
                images = torch.cat([torch.zeros(1, *image_shape), uniform])
            self._baseline_cache[key] = images
        return self._baseline_cache[key]

    def _baselines_like(self, x: Tensor) -> Tensor:
        return self.baseline_images(tuple(x.shape[1:])).to(device=x.device, dtype=x.dtype)

    def images_per_call(self, batch: int) -> int:
        if self.internal_batch_size is None:
            return batch
        return max(1, self.internal_batch_size // (2 * self.n_baselines))

    def explain(self, x01: Tensor, target: Tensor) -> Tensor:
        x, t = prepare(self.classifier, x01, target)
        register_elementwise_rules()  # cheap; covers activation classes imported since __init__
        if not self._probed and self.rules_used == "captum":
            reused = find_reused_hooked_modules(self.classifier, x[:1])
            if reused:
                raise _reuse_error(getattr(self.classifier, "name", "model"), reused)
            self._probed = True
        baselines = self._baselines_like(x)
        step = self.images_per_call(x.shape[0])
        parts = []
        # A loop only when the caller capped the rows per call (memory), not per image.
        for start in range(0, x.shape[0], step):
            with quiet_captum():
                parts.append(
                    self._engine.attribute(
                        x[start : start + step], baselines=baselines, target=t[start : start + step]
                    ).detach()
                )
        return finish(torch.cat(parts), x01)

    def _mean_baseline_target_logits(self, x: Tensor, t: Tensor) -> Tensor:
        key = (tuple(x.shape[1:]), x.device, x.dtype)
        if key not in self._mean_baseline_logits:
            with torch.no_grad():
                self._mean_baseline_logits[key] = self.classifier(self._baselines_like(x)).mean(0)
        return self._mean_baseline_logits[key][t]

    def completeness_gap(self, x01: Tensor, target: Tensor, attributions: Tensor) -> Tensor:
        """``|Σa − (f(x)_y − mean_b f(b)_y)| / max(|·|, eps)`` per image."""
        x, t = prepare(self.classifier, x01, target)
        delta = target_logits(self.classifier, x, t) - self._mean_baseline_target_logits(x, t)
        return relative_gap(attributions, delta).to(x01.device)
