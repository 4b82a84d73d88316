"""PGD (Madry et al. 2018) in pixel space: the attack adversarial training trains on.

L∞ projected gradient ascent on the cross-entropy, with a uniform random start in the
ε-ball, every iterate clipped to the ε-ball around the clean image and to the valid pixel
range ``[0, 1]`` (the ``Classifier`` normalises inside, so ε is in pixel units: 0.1 is 10 %
of the full intensity range, about 25/255).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError

ADVERSARIAL = ("none", "pgd")


@dataclass(frozen=True)
class PGD:
    """L∞ PGD with ``steps`` steps of size ``step_size`` (default ``2.5·ε/steps``).

    ``2.5·ε/steps`` is Madry et al.'s rule: the walk can cross the ball from the random
    start to any face in the given steps. ``clean_weight`` is not used by the attack; it is
    the training loss's weight of the clean examples (``0`` = Madry's pure adversarial
    training, ``0.5`` = Goodfellow et al.'s equal mix).
    """

    epsilon: float = 0.1
    steps: int = 5
    step_size: float | None = None
    random_start: bool = True
    clean_weight: float = 0.5

    def __post_init__(self) -> None:
        if not (math.isfinite(self.epsilon) and 0.0 < self.epsilon <= 1.0):
            raise ConfigError(f"PGD: epsilon must be in (0, 1] (pixel units), got {self.epsilon!r}")
        if isinstance(self.steps, bool) or int(self.steps) != self.steps or self.steps < 1:
            raise ConfigError(f"PGD: steps must be an integer ≥ 1, got {self.steps!r}")
        if self.step_size is not None and not (math.isfinite(self.step_size) and self.step_size > 0):
            raise ConfigError(f"PGD: step_size must be positive, got {self.step_size!r}")
        if not 0.0 <= self.clean_weight < 1.0:
            raise ConfigError(
                f"PGD: clean_weight must be in [0, 1) (1 would ignore the adversarial examples), "
                f"got {self.clean_weight!r}"
            )

    @property
    def alpha(self) -> float:
        return float(self.step_size) if self.step_size is not None else 2.5 * self.epsilon / self.steps

    def params(self) -> dict[str, float | int | bool]:
        return {
            "epsilon": float(self.epsilon),
            "steps": int(self.steps),
            "step_size": self.alpha,
            "random_start": bool(self.random_start),
            "clean_weight": float(self.clean_weight),
        }

    def attack(
        self, model: nn.Module, x: Tensor, labels: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        """Adversarial examples for ``model`` (pixel space in, logits out); gradients to the
        model's parameters are neither computed nor accumulated."""
        x = x.detach()
        lower = (x - self.epsilon).clamp(min=0.0)
        upper = (x + self.epsilon).clamp(max=1.0)
        if self.random_start:
            device = generator.device if generator is not None else x.device
            noise = torch.rand(x.shape, generator=generator, device=device, dtype=x.dtype)
            adv = x + (2 * noise.to(x.device) - 1) * self.epsilon
            adv = torch.maximum(torch.minimum(adv, upper), lower)
        else:
            adv = x.clone()
        for _ in range(int(self.steps)):
            adv.requires_grad_(True)
            with torch.enable_grad():
                loss = F.cross_entropy(model(adv), labels)
                (grad,) = torch.autograd.grad(loss, adv)
            adv = adv.detach() + self.alpha * grad.sign()
            adv = torch.maximum(torch.minimum(adv, upper), lower)
        return adv.detach()


    def training_loss(
        self, model: nn.Module, x: Tensor, labels: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        """The adversarial-training loss of a mini-batch: ``(1 − w)·CE(adversarial) + w·CE(clean)``
        with ``w = clean_weight``. The examples are made in eval mode (batch norm must not
        learn from them) and the model is put back in the mode it was in."""
        was_training = model.training
        model.eval()
        adversarial = self.attack(model, x, labels, generator)
        model.train(was_training)
        loss = (1 - self.clean_weight) * F.cross_entropy(model(adversarial), labels)
        if self.clean_weight > 0:
            loss = loss + self.clean_weight * F.cross_entropy(model(x), labels)
        return loss


def check_method_params(config: object, *, owner: str = "") -> None:
    """Reject a method's parameter (``fpa_*``, ``rectangle_*``, ``pgd_*`` fields of a dataclass)
    set away from its default while its method is off: it would silently do nothing."""
    import dataclasses

    owners = {"fpa_": ("augmentation", "fpa"), "rectangle_": ("augmentation", "rectangle"),
              "pgd_": ("adversarial", "pgd")}
    for spec in dataclasses.fields(config):  # type: ignore[arg-type]
        for prefix, (key, method) in owners.items():
            value = getattr(config, spec.name)
            if spec.name.startswith(prefix) and value != spec.default and getattr(config, key) != method:
                raise ConfigError(
                    f"{owner}{spec.name}={value!r} applies only with {key}={method!r} "
                    f"(got {key}={getattr(config, key)!r})"
                )


@torch.no_grad()
def accuracy_under_attack(
    model: nn.Module, pixels: Tensor, labels: Tensor, attack: PGD, *, seed: int = 0,
    batch_size: int = 256,
) -> float:
    """Top-1 accuracy of ``model`` on PGD examples made against ``model`` itself."""
    generator = torch.Generator(device=pixels.device).manual_seed(seed)
    was_training = model.training
    model.eval()
    correct = 0
    for chunk, target in zip(pixels.split(batch_size), labels.split(batch_size), strict=True):
        adv = attack.attack(model, chunk, target, generator)
        correct += int((model(adv).argmax(1) == target).sum())
    model.train(was_training)
    return correct / max(1, len(labels))


def build_adversarial(
    adversarial: str,
    *,
    pgd_epsilon: float = 0.1,
    pgd_steps: int = 5,
    pgd_step_size: float | None = None,
    pgd_clean_weight: float = 0.5,
) -> PGD | None:
    """The attack named ``adversarial`` ("none" → ``None``)."""
    if adversarial == "none":
        return None
    if adversarial == "pgd":
        return PGD(
            epsilon=float(pgd_epsilon), steps=int(pgd_steps),
            step_size=None if pgd_step_size is None else float(pgd_step_size),
            clean_weight=float(pgd_clean_weight),
        )
    raise ConfigError(f"unknown adversarial training {adversarial!r}; expected one of {', '.join(ADVERSARIAL)}")


__all__ = ["ADVERSARIAL", "PGD", "accuracy_under_attack", "build_adversarial"]
