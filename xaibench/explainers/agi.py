"""AGI, Adversarial Gradient Integration (Pan, Li & Zhu, IJCAI 2021).

For each of ``topk`` false classes ``t``, a targeted sign-gradient attack raises the softmax
probability of ``t``; along it AGI accumulates ``−∇p_c(x') ⊙ d`` (``c`` the explained class,
``d`` the perturbation the step produced) until ``x'`` is classified as ``t``, and sums over the
classes. ``epsilon`` is the step size in pixel units (images in ``[0, 1]``; 0.05 = 12.75/255).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import ConfigError
from ..registry import explainers
from ..types import Classifier, Explainer, explanation_seeds
from ._common import check_choice, finish, prepare

ClassPreset = Literal["reference", "sampled", "spaced"]
PathKind = Literal["reference", "cumulative"]
ExplainedClass = Literal["predicted", "target"]
CLASS_PRESETS: tuple[str, ...] = get_args(ClassPreset)
PATHS: tuple[str, ...] = get_args(PathKind)
EXPLAINED_CLASSES: tuple[str, ...] = get_args(ExplainedClass)

#: The AttEXplore code base's class-list seed: ``random.seed(3407); random.sample(range(999), 20)``.
REFERENCE_CLASS_SEED = 3407


def reference_classes(num_classes: int, topk: int) -> list[int]:
    """The AttEXplore repo's fixed list (1000 classes, topk 20: ``[58, 429, 135, …, 875]``).

    ``random.sample(range(num_classes − 1), topk)`` after ``random.seed(3407)``, as in the
    reference (the last class can never be drawn); ``topk`` is capped at ``num_classes − 1``.
    A private ``random.Random`` is used, so the global RNG is untouched.
    """
    population = range(0, num_classes - 1)
    return random.Random(REFERENCE_CLASS_SEED).sample(population, min(topk, len(population)))


@explainers.register("agi")
class AGIExplainer(Explainer):
    """AGI, batched over images × classes (``B·K`` rows per forward), per-row (no cross-talk).

    Defaults follow the reference code used for the AttEXplore paper's Table 1: ``epsilon=0.05``
    per step, ``max_iter=20``, ``topk=20`` classes from the seeded ``"reference"`` list (a class
    equal to the image's predicted class is replaced by the next id), and the reference's
    non-cumulative path ``x'_{k+1} = clip(x + ε·sign ∇p_t(x'_k))`` with ``d = x'_{k+1} − x``.
    ``path="cumulative"`` walks ``x'_{k+1} = clip(x'_k + ε·sign ∇p_t(x'_k))`` with
    ``d = x'_{k+1} − x'_k`` (the paper's path integral). ``classes`` is one of
    ``"reference"``, ``"sampled"`` (``topk`` random classes other than the explained one per
    image, seeded by ``explanation_seeds(x, c, seed, noise_ids)``: from the id the caller
    passes — images with the same id draw the same classes — else from the image's content),
    ``"spaced"`` (ids ``0, s, 2s, …`` with
    ``s = num_classes // topk``, the predicted class skipped, as in ``pd90506/AGI``), or an
    explicit list of class ids (the predicted class skipped).

    ``explained_class="predicted"`` (the default: the AGI and AttEXplore reference code, whose
    entry point explains the model's prediction) integrates the gradient of the predicted
    class and ignores the ``target`` passed to ``explain``; ``"target"`` explains ``target``
    (its gradient is integrated and the class list avoids it) — what a caller that needs the
    explanation of a given class, e.g. eXIAA's ``E(x̄, y_r)``, must ask for. A row
    stops accumulating (computing continues) once its iterate is classified as its class ``t``;
    the loop ends early only when every row of a chunk has stopped. Cost per image: at most
    ``topk·max_iter`` forward rows and twice that many backward rows (two vector-Jacobian
    products per forward). ``classes_batch_size`` caps the classes per image in one pass.
    """

    title = "AGI"
    summary = "Adversarial Gradient Integration: gradients integrated along attacks towards false classes"
    needs_gradients = True
    # Deterministic for the default class list; "sampled" is seeded per image (the instance
    # then sets ``is_random``).
    is_random = False
    uses_baseline = False
    # Each term is a gradient times a pixel displacement, like IG's (x − b) ⊙ ∇f.
    multiplies_by_inputs = True
    has_completeness = False

    def __init__(
        self,
        classifier: Classifier,
        epsilon: float = 0.05,
        max_iter: int = 20,
        topk: int = 20,
        classes: ClassPreset | list[int] = "reference",
        path: PathKind = "reference",
        explained_class: ExplainedClass = "predicted",
        seed: int = 0,
        classes_batch_size: int | None = None,
    ):
        num_classes = int(classifier.num_classes)
        if isinstance(classes, str):
            if classes not in CLASS_PRESETS:
                raise ConfigError(
                    f"agi: unknown classes {classes!r}; valid: {', '.join(CLASS_PRESETS)} "
                    "or a list of class ids"
                )
            class_param: str | list[int] = classes
        else:
            class_param = [int(c) for c in classes]
            if not class_param or any(not 0 <= c < num_classes for c in class_param):
                raise ConfigError(f"agi: classes must be non-empty ids in [0, {num_classes})")
        check_choice("agi", "path", path, PATHS)
        check_choice("agi", "explained_class", explained_class, EXPLAINED_CLASSES)
        if int(max_iter) < 1 or int(topk) < 1:
            raise ConfigError("agi: max_iter and topk must be ≥ 1")
        if not float(epsilon) > 0.0:
            raise ConfigError(f"agi: epsilon must be > 0 (pixel units), got {epsilon!r}")
        if num_classes < 2:
            raise ValueError("agi: needs a classifier with at least two classes")
        if classes_batch_size is not None and int(classes_batch_size) < 1:
            raise ConfigError("agi: classes_batch_size must be ≥ 1 or None")
        super().__init__(
            classifier,
            epsilon=float(epsilon),
            max_iter=int(max_iter),
            topk=int(topk),
            classes=class_param,
            path=path,
            explained_class=explained_class,
            seed=int(seed),
            classes_batch_size=None if classes_batch_size is None else int(classes_batch_size),
        )
        self.epsilon = float(epsilon)
        self.max_iter = int(max_iter)
        self.topk = int(topk)
        self.classes = class_param
        self.path = path
        self.explained_class = explained_class
        # Random only when the classes are sampled per image (the runner then measures its noise floor).
        self.is_random = self.classes == "sampled"
        self.seed = int(seed)
        self.classes_batch_size = None if classes_batch_size is None else int(classes_batch_size)
        self.num_classes = num_classes

    def class_table(
        self, x01: Tensor, explained: Tensor, noise_ids: Sequence[str] | None = None
    ) -> tuple[Tensor, Tensor]:
        """``B×K`` false classes and a ``B×K`` mask of the ones to integrate (CPU ``long``/bool).

        ``noise_ids`` (``"sampled"`` only): one id per image; the same id draws the same classes.
        """
        c = explained.detach().cpu().long()
        b, n = c.shape[0], self.num_classes
        if self.classes == "reference":
            listed = torch.tensor(reference_classes(n, self.topk), dtype=torch.long)
            table = listed.unsqueeze(0).expand(b, -1)
            # The reference substitutes t+1 for a listed class equal to the predicted one.
            table = torch.where(table == c.unsqueeze(1), table + 1, table)
            return table, torch.ones_like(table, dtype=torch.bool)
        if self.classes == "sampled":
            k = min(self.topk, n - 1)
            rows = []
            for seed, ci in zip(explanation_seeds(x01, c, self.seed, noise_ids), c.tolist(), strict=True):
                generator = torch.Generator(device="cpu").manual_seed(seed)
                pick = torch.randperm(n - 1, generator=generator)[:k]
                rows.append(pick + (pick >= ci).long())  # skip the explained class
            table = torch.stack(rows)
            return table, torch.ones_like(table, dtype=torch.bool)
        if self.classes == "spaced":
            listed = torch.arange(0, n, max(1, n // self.topk), dtype=torch.long)[: self.topk]
        else:
            listed = torch.tensor(self.classes, dtype=torch.long)
        table = listed.unsqueeze(0).expand(b, -1)
        return table, table != c.unsqueeze(1)

    def explain(self, x01: Tensor, target: Tensor, noise_ids: Sequence[str] | None = None) -> Tensor:
        x, t = prepare(self.classifier, x01, target)
        if self.explained_class == "predicted":
            with torch.no_grad():
                c = self.classifier(x).argmax(dim=1)
        else:
            c = t
        table, valid = self.class_table(x01, c, noise_ids)
        table, valid = table.to(x.device), valid.to(x.device)
        b, k = table.shape
        per_pass = min(k, self.classes_batch_size or k)
        total = torch.zeros_like(x)
        for start in range(0, k, per_pass):
            stop = min(k, start + per_pass)
            n = stop - start
            rows = x.unsqueeze(1).expand(b, n, *x.shape[1:]).reshape(b * n, *x.shape[1:])
            acc = self._integrate(
                rows, c.repeat_interleave(n), table[:, start:stop].reshape(-1), valid[:, start:stop].reshape(-1)
            )
            total += acc.view(b, n, *x.shape[1:]).sum(dim=1)
        return finish(total, x01)

    def _integrate(self, x0: Tensor, explained: Tensor, false_class: Tensor, active: Tensor) -> Tensor:
        """Per row: accumulate ``−∇p_c(x') ⊙ d`` along the attack towards ``false_class``."""
        eps = self.epsilon
        active = active.clone()
        acc = torch.zeros_like(x0)
        x_prime = x0
        for _ in range(self.max_iter):
            with torch.enable_grad():
                leaf = x_prime.detach().requires_grad_(True)
                logits = self.classifier(leaf)
                # Checked before this iteration's step: a row that reached its class stops.
                active &= logits.argmax(dim=1) != false_class
                if not bool(active.any()):
                    break
                probs = F.softmax(logits, dim=1)
                p_t = probs.gather(1, false_class.view(-1, 1)).sum()
                p_c = probs.gather(1, explained.view(-1, 1)).sum()
                (grad_t,) = torch.autograd.grad(p_t, leaf, retain_graph=True)
                (grad_c,) = torch.autograd.grad(p_c, leaf)
            origin = x0 if self.path == "reference" else x_prime
            # The reference's ∇p_t/‖∇p_c‖ normalisation is a positive scale: no-op under sign.
            x_new = (origin + eps * grad_t.sign()).clamp(0.0, 1.0)
            delta = x_new - origin
            acc += torch.where(active.view(-1, 1, 1, 1), -grad_c * delta, torch.zeros_like(delta))
            x_prime = x_new
        return acc


__all__ = ["AGIExplainer", "reference_classes"]
