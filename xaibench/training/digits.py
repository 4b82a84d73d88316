"""The digits CNN models that train on first use (seconds, on the CPU), then load from the cache.

Registers ``digits_cnn`` (alias ``digits``), ``digits_cnn_fpa``, ``digits_cnn_rect`` and
``digits_cnn_pgd``: the architecture of ``xaibench.models.digits_cnn`` trained on
scikit-learn's digits by the one training loop (``training.loop.fit``).

Training variants (docs/training.md): ``augmentation`` "fpa" (feature perturbation
augmentation, the FPA paper's Algorithm 1) or "rectangle" (random erasing), and
``adversarial`` "pgd" (PGD adversarial training). ``digits_cnn_fpa``, ``digits_cnn_rect`` and
``digits_cnn_pgd`` are the same factory with one of them fixed. The default configuration's
cache key is the one it always had: training settings enter the key only when not default.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from ..files import write_atomic_bytes
from ..hashing import stable_hash
from ..models.cache import cache_dir
from ..models.digits_cnn import DigitsCNN, digits_arrays, load_digits_cnn, wrap_digits_cnn
from ..registry import models
from ..types import Classifier
from .adversarial import PGD, accuracy_under_attack, build_adversarial, check_method_params
from .augment import FPA_CIFAR10, FeaturePerturbation, RandomRectangle, build_augmentation
from .loop import fit, seeded_build

#: Bump when training or the architecture changes so stale cached weights are not reused.
FORMAT_VERSION = 1
_BATCH_SIZE = 128
_LEARNING_RATE = 5e-3
#: PGD robust accuracy in the sidecar is measured with this seed (the attack's random start).
_ROBUST_EVAL_SEED = 0
#: PGD training costs ~(steps + 2)× a plain epoch; fewer epochs keep it well under a minute.
PGD_EPOCHS = 10


@dataclass(frozen=True)
class DigitsTraining:
    """How the digits CNN is trained besides epochs, width, size and seed.

    ``augmentation``: "none" | "fpa" | "rectangle"; ``adversarial``: "none" | "pgd". The
    ``fpa_*`` parameters apply to FPA only, ``rectangle_p`` to Rectangle only, ``pgd_*`` to PGD
    only; setting one without its method is an error (it would silently do nothing).
    """

    augmentation: str = "none"
    adversarial: str = "none"
    fpa_p: float = FPA_CIFAR10["p"]
    fpa_p1_max: float = FPA_CIFAR10["p1_max"]
    fpa_p2: float = FPA_CIFAR10["p2"]
    fpa_s_max: int = FPA_CIFAR10["s_max"]
    rectangle_p: float = 0.5
    pgd_epsilon: float = 0.1
    pgd_steps: int = 5
    pgd_clean_weight: float = 0.5
    #: The pixel value FPA / Rectangle write (0 = black; 0.5 = the FPA paper's 0 in [−1, 1]).
    mask_value: float = 0.0

    def __post_init__(self) -> None:
        if self.mask_value != 0.0 and self.augmentation == "none":
            raise ConfigError(
                f"digits_cnn: mask_value={self.mask_value!r} applies only with augmentation 'fpa' or 'rectangle'"
            )
        check_method_params(self, owner="digits_cnn: ")
        self.augmenter()  # validates the augmentation name and its parameters
        self.attack()

    def augmenter(self) -> FeaturePerturbation | RandomRectangle | None:
        return build_augmentation(
            self.augmentation, fpa_p=self.fpa_p, fpa_p1_max=self.fpa_p1_max, fpa_p2=self.fpa_p2,
            fpa_s_max=self.fpa_s_max, rectangle_p=self.rectangle_p, value=self.mask_value,
        )

    def attack(self) -> PGD | None:
        return build_adversarial(
            self.adversarial, pgd_epsilon=self.pgd_epsilon, pgd_steps=self.pgd_steps,
            pgd_clean_weight=self.pgd_clean_weight,
        )

    def params(self) -> dict[str, Any]:
        """The parameters of the active methods (empty for plain training)."""
        params: dict[str, Any] = {}
        augmenter = self.augmenter()
        if augmenter is not None:
            # The default value (0) stays out so existing cache keys do not change.
            params[self.augmentation] = {
                k: v for k, v in augmenter.params().items() if k != "value" or v != 0.0
            }
        attack = self.attack()
        if attack is not None:
            params["pgd"] = attack.params()
        return params

    def config_entries(self) -> dict[str, Any]:
        """What enters the cache key: nothing for plain training (keeps the old key)."""
        entries: dict[str, Any] = {}
        if self.augmentation != "none":
            entries["augmentation"] = self.augmentation
        if self.adversarial != "none":
            entries["adversarial"] = self.adversarial
        if entries:
            entries["training_params"] = self.params()
        return entries

    @property
    def model_name(self) -> str:
        """The registered factory whose defaults this is: digits_cnn[_fpa|_rect][_pgd]."""
        suffix = {"none": "", "fpa": "_fpa", "rectangle": "_rect"}[self.augmentation]
        return "digits_cnn" + suffix + ("_pgd" if self.adversarial == "pgd" else "")


def _config(
    epochs: int, width: int, image_size: int, seed: int, training: DigitsTraining | None = None
) -> dict[str, Any]:
    config: dict[str, Any] = {
        "format": FORMAT_VERSION,
        "epochs": int(epochs),
        "width": int(width),
        "image_size": int(image_size),
        "seed": int(seed),
    }
    if training is not None:
        config.update(training.config_entries())
    return config


def digits_cache_path(
    epochs: int = 20, width: int = 16, image_size: int = 32, seed: int = 0,
    training: DigitsTraining | None = None,
) -> Path:
    """The weights file for one training configuration (a JSON sidecar sits next to it)."""
    key = stable_hash(_config(epochs, width, image_size, seed, training))
    prefix = training.model_name if training is not None else "digits_cnn"
    return cache_dir() / "models" / f"{prefix}-{key}.pt"


@contextmanager
def one_thread() -> Iterator[None]:
    """Run the block with one torch thread (the digits models train this way), then restore."""
    # One thread: the reduction order (so the weights) does not depend on the machine's
    # core count, and OpenMP threads cannot stall spinning on shared cores (seen: 6 s on
    # one thread vs up to 60 s on two). The network is too small to gain from more.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@torch.no_grad()
def digits_accuracy(classifier: nn.Module, image_size: int) -> float:
    """Top-1 accuracy of ``classifier`` on the digits test split."""
    pixels, labels = digits_arrays("test", image_size)
    was_training = classifier.training
    classifier.eval()
    predictions = torch.cat([classifier(chunk).argmax(1) for chunk in pixels.split(256)])
    classifier.train(was_training)
    return float((predictions == labels).float().mean())


def train_digits_cnn(
    epochs: int = 20, width: int = 16, image_size: int = 32, seed: int = 0,
    training: DigitsTraining | None = None,
) -> tuple[dict[str, Tensor], float]:
    """Train from scratch (seeded, deterministic, one thread); state dict and test accuracy."""
    training = training or DigitsTraining()
    with one_thread():
        pixels, labels = digits_arrays("train", image_size)
        network = seeded_build(seed, lambda: DigitsCNN(width))
        classifier = wrap_digits_cnn(network, image_size)
        optimizer = torch.optim.Adam(classifier.parameters(), lr=_LEARNING_RATE)
        fit(
            classifier, len(labels), lambda batch: (pixels[batch], labels[batch]),
            epochs=epochs, batch_size=_BATCH_SIZE, optimizer=optimizer, seed=seed,
            augmenter=training.augmenter(), attack=training.attack(),
        )
        accuracy = digits_accuracy(classifier, image_size)
    state = {key: value.detach().clone() for key, value in network.state_dict().items()}
    return state, accuracy


def load_cached(path: Path, sidecar: Path, config: dict[str, Any]) -> tuple[dict[str, Tensor], dict] | None:
    """``(state dict, sidecar)`` when both files exist and the sidecar's config is ``config``, else None."""
    if not (path.is_file() and sidecar.is_file()):
        return None
    try:
        meta = json.loads(sidecar.read_text())
        if meta.get("config") != config:
            return None
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # any damaged cache entry is retrained, never fatal
        return None
    return state, meta


def save_cached(path: Path, state: dict[str, Tensor], meta: dict[str, Any]) -> None:
    """Write the weights to ``path`` and ``meta`` to its JSON sidecar, each atomically."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_atomic_bytes(path, buffer.getvalue())
    write_atomic_bytes(path.with_suffix(".json"), json.dumps(meta, indent=2, sort_keys=True).encode())


def load_or_train(
    name: str, path: Path, config: dict[str, Any],
    train_and_cache: Callable[[], tuple[dict[str, Tensor], dict[str, Any], float]],
) -> tuple[dict[str, Tensor], dict[str, Any], list[str], bool]:
    """The cached weights of ``config`` at ``path``, or ``train_and_cache()``'s; with the note
    that says which, and whether they came from the cache."""
    cached = load_cached(path, path.with_suffix(".json"), config)
    if cached is not None:
        state, meta = cached
        return state, meta, [f"{name} weights loaded from cache {path}"], True
    state, meta, seconds = train_and_cache()
    return state, meta, [f"{name} trained now in {seconds:.1f} s and cached at {path}"], False


def _describe_training(training: DigitsTraining) -> str:
    parts = []
    if training.augmentation != "none":
        values = ", ".join(f"{k}={v}" for k, v in training.params()[training.augmentation].items())
        label = {"fpa": "FPA augmentation", "rectangle": "Rectangle (random erasing) augmentation"}
        parts.append(f"{label[training.augmentation]} ({values})")
    if training.adversarial == "pgd":
        pgd = training.params()["pgd"]
        parts.append(
            f"PGD adversarial training (L∞ ε={pgd['epsilon']}, {pgd['steps']} steps of "
            f"{pgd['step_size']:.4g}, random start, clean weight {pgd['clean_weight']})"
        )
    return " with " + " and ".join(parts) if parts else ""


def _robust_accuracy(state: dict[str, Tensor], width: int, image_size: int, attack: PGD) -> float:
    classifier = load_digits_cnn(state, width=width, image_size=image_size)
    pixels, labels = digits_arrays("test", image_size)
    with one_thread():
        return accuracy_under_attack(classifier, pixels, labels, attack, seed=_ROBUST_EVAL_SEED)


def _train_and_cache(
    path: Path, config: dict[str, Any], epochs: int, width: int, image_size: int, seed: int,
    training: DigitsTraining,
) -> tuple[dict[str, Tensor], dict[str, Any], float]:
    started = time.perf_counter()
    state, accuracy = train_digits_cnn(epochs, width, image_size, seed, training)
    seconds = time.perf_counter() - started
    meta: dict[str, Any] = {
        "config": config,
        "test_accuracy": accuracy,
        "n_train": len(digits_arrays("train", 8)[1]),
        "train_seconds": round(seconds, 2),
        "torch": torch.__version__,
    }
    if training != DigitsTraining():
        meta["training"] = {
            "augmentation": training.augmentation,
            "adversarial": training.adversarial,
            "params": training.params(),
        }
    attack = training.attack()
    if attack is not None:
        meta["pgd_test_accuracy"] = _robust_accuracy(state, width, image_size, attack)
    save_cached(path, state, meta)
    return state, meta, seconds


def build_digits_cnn(
    epochs: int = 20, width: int = 16, image_size: int = 32, seed: int = 0,
    training: DigitsTraining | None = None, name: str = "digits_cnn",
) -> Classifier:
    """Load the cached weights of one configuration, or train and cache them first."""
    if epochs < 1 or width < 1 or image_size < 8:
        raise ConfigError(
            f"{name} needs epochs ≥ 1, width ≥ 1 and image_size ≥ 8; "
            f"got epochs={epochs}, width={width}, image_size={image_size}"
        )
    training = training or DigitsTraining()
    augmenter = training.augmenter()
    if isinstance(augmenter, FeaturePerturbation):
        augmenter.check_size(image_size, image_size)
    config = _config(epochs, width, image_size, seed, training)
    path = digits_cache_path(epochs, width, image_size, seed, training)
    state, meta, notes, cached = load_or_train(
        name, path, config, lambda: _train_and_cache(path, config, epochs, width, image_size, seed, training)
    )
    source = (
        f"trained on scikit-learn digits{_describe_training(training)} (train split: "
        f"{meta['n_train']} images, {epochs} epochs, seed {seed}, test accuracy "
        f"{meta['test_accuracy']:.3f}), cached at {path}"
    )
    classifier = load_digits_cnn(
        state, width=width, image_size=image_size, name=name, source=source, notes=notes
    )
    classifier.test_accuracy = float(meta["test_accuracy"])
    classifier.training_info = {
        "model": name,
        "augmentation": training.augmentation,
        "adversarial": training.adversarial,
        "params": training.params(),
        "epochs": int(epochs),
        "seed": int(seed),
        "test_accuracy": float(meta["test_accuracy"]),
        "train_seconds": meta.get("train_seconds"),
        "cache_path": str(path),
        "cached": cached,
    }
    if "pgd_test_accuracy" in meta:
        classifier.training_info["pgd_test_accuracy"] = float(meta["pgd_test_accuracy"])
    return classifier


@models.register("digits_cnn", aliases=("digits",))
def digits_cnn(
    epochs: int = 20,
    width: int = 16,
    image_size: int = 32,
    seed: int = 0,
    augmentation: str = "none",
    adversarial: str = "none",
    fpa_p: float = FPA_CIFAR10["p"],
    fpa_p1_max: float = FPA_CIFAR10["p1_max"],
    fpa_p2: float = FPA_CIFAR10["p2"],
    fpa_s_max: int = FPA_CIFAR10["s_max"],
    rectangle_p: float = 0.5,
    pgd_epsilon: float = 0.1,
    pgd_steps: int = 5,
    pgd_clean_weight: float = 0.5,
    mask_value: float = 0.0,
) -> Classifier:
    """Small CNN on scikit-learn digits (1 channel, 10 classes); trained once, then cached.

    ``augmentation`` "none" | "fpa" | "rectangle", ``adversarial`` "none" | "pgd" (see
    docs/training.md); the ``fpa_*``, ``rectangle_p`` and ``pgd_*`` parameters set them;
    ``mask_value`` is the pixel value the augmentation writes.
    """
    training = DigitsTraining(
        augmentation, adversarial, fpa_p, fpa_p1_max, fpa_p2, fpa_s_max, rectangle_p,
        pgd_epsilon, pgd_steps, pgd_clean_weight, mask_value,
    )
    return build_digits_cnn(epochs, width, image_size, seed, training, name="digits_cnn")


@models.register("digits_cnn_fpa")
def digits_cnn_fpa(
    epochs: int = 20,
    width: int = 16,
    image_size: int = 32,
    seed: int = 0,
    adversarial: str = "none",
    fpa_p: float = FPA_CIFAR10["p"],
    fpa_p1_max: float = FPA_CIFAR10["p1_max"],
    fpa_p2: float = FPA_CIFAR10["p2"],
    fpa_s_max: int = FPA_CIFAR10["s_max"],
    pgd_epsilon: float = 0.1,
    pgd_steps: int = 5,
    pgd_clean_weight: float = 0.5,
    mask_value: float = 0.0,
) -> Classifier:
    """The digits CNN trained with FPA (the paper's CIFAR-10 setting by default)."""
    training = DigitsTraining(
        "fpa", adversarial, fpa_p, fpa_p1_max, fpa_p2, fpa_s_max, 0.5,
        pgd_epsilon, pgd_steps, pgd_clean_weight, mask_value,
    )
    return build_digits_cnn(epochs, width, image_size, seed, training, name="digits_cnn_fpa")


@models.register("digits_cnn_rect")
def digits_cnn_rect(
    epochs: int = 20,
    width: int = 16,
    image_size: int = 32,
    seed: int = 0,
    adversarial: str = "none",
    rectangle_p: float = 0.5,
    pgd_epsilon: float = 0.1,
    pgd_steps: int = 5,
    pgd_clean_weight: float = 0.5,
    mask_value: float = 0.0,
) -> Classifier:
    """The digits CNN trained with random erasing (the FPA paper's "Rectangle" baseline)."""
    training = DigitsTraining(
        "rectangle", adversarial, rectangle_p=rectangle_p, pgd_epsilon=pgd_epsilon,
        pgd_steps=pgd_steps, pgd_clean_weight=pgd_clean_weight, mask_value=mask_value,
    )
    return build_digits_cnn(epochs, width, image_size, seed, training, name="digits_cnn_rect")


@models.register("digits_cnn_pgd")
def digits_cnn_pgd(
    epochs: int = PGD_EPOCHS,
    width: int = 16,
    image_size: int = 32,
    seed: int = 0,
    augmentation: str = "none",
    fpa_p: float = FPA_CIFAR10["p"],
    fpa_p1_max: float = FPA_CIFAR10["p1_max"],
    fpa_p2: float = FPA_CIFAR10["p2"],
    fpa_s_max: int = FPA_CIFAR10["s_max"],
    rectangle_p: float = 0.5,
    pgd_epsilon: float = 0.1,
    pgd_steps: int = 5,
    pgd_clean_weight: float = 0.5,
) -> Classifier:
    """The digits CNN with PGD adversarial training (L∞ ε = 0.1 in pixel units, 5 steps)."""
    training = DigitsTraining(
        augmentation, "pgd", fpa_p, fpa_p1_max, fpa_p2, fpa_s_max, rectangle_p,
        pgd_epsilon, pgd_steps, pgd_clean_weight,
    )
    return build_digits_cnn(epochs, width, image_size, seed, training, name="digits_cnn_pgd")


__all__ = [
    "FORMAT_VERSION",
    "PGD_EPOCHS",
    "DigitsTraining",
    "build_digits_cnn",
    "digits_accuracy",
    "digits_cache_path",
    "load_cached",
    "load_or_train",
    "one_thread",
    "save_cached",
    "train_digits_cnn",
]
