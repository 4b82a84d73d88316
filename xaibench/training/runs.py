"""Train several models in one call: what ``xaibench train`` does, callable from Python.

``plan_training`` checks every value and turns the options into one ``TrainJob`` per
augmentation, training nothing (so a bad value is reported before the first model trains).
``TrainJob.run`` trains one model, or finds it in the cache, and returns a ``TrainedModel``:
the classifier, its training record, the suite entry that names it and the report lines the
CLI prints. ``train_models`` is both in one call::

    from xaibench.training import train_models

    for trained in train_models("digits_cnn", augmentations="all", epochs=5):
        print(trained.suite_entry, trained.info["test_accuracy"])

``model`` is ``digits_cnn`` (the registered digits models, trained on the CPU in seconds) or
any timm architecture (``train_classifier``; the ``trained`` model loads the result).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..registry import models
from ..types import Classifier
from .adversarial import ADVERSARIAL, build_adversarial
from .augment import build_augmentation
from .loop import Progress
from .train import digits_model_params, make_config, suite_entry, train_classifier

#: The architecture name of the digits models (every other name is a timm architecture).
DIGITS_ARCH = "digits_cnn"
#: What ``augmentations`` may list; "all" stands for every one of them.
TRAIN_AUGMENTATIONS = ("none", "fpa", "rectangle")
#: Method options: each applies only when its method is on (FPA, Rectangle, PGD).
METHOD_OPTIONS = (
    "fpa_p", "fpa_p1_max", "fpa_p2", "fpa_s_max", "rectangle_p",
    "pgd_epsilon", "pgd_steps", "pgd_clean_weight",
)
#: Options of timm training only (``dataset_params`` too: the digits models have none).
TIMM_OPTIONS = ("batch_size", "lr", "optimizer", "pretrained", "channels", "holdout", "limit", "hflip")


def python_name(key: str) -> str:
    """How messages name an option by default: its keyword (``fpa_p2``)."""
    return key


@dataclass(frozen=True)
class TrainJob:
    """One model to train or find in the cache; made (and checked) by ``plan_training``.

    ``model`` is the registered model that serves the result (``digits_cnn``,
    ``digits_cnn_fpa``, … or ``trained``). ``params``: the digits factory's non-default
    parameters, or ``train_classifier``'s keyword arguments for a timm architecture.
    """

    model: str
    arch: str
    dataset: str
    augmentation: str
    adversarial: str
    params: dict[str, Any]
    device: str = "auto"

    @property
    def is_digits(self) -> bool:
        return self.arch == DIGITS_ARCH

    def run(self, *, force: bool = False, progress: Progress | None = None) -> TrainedModel:
        """Train (or load from the cache; ``force`` retrains and replaces it).

        ``progress(epoch, epochs, loss)`` is called after every epoch of timm training.
        """
        started = time.perf_counter()
        if self.is_digits:
            classifier = _build_digits(self.model, self.params, force=force)
            info, entry = classifier.training_info, suite_entry(self.model, self.params)
        else:
            result = train_classifier(
                self.arch, self.dataset, device=self.device, force=force, progress=progress,
                **self.params,
            )
            classifier, info, entry = result.classifier, result.info, result.info["suite_entry"]
        return TrainedModel(self, classifier, info, entry, time.perf_counter() - started)


def _build_digits(name: str, params: dict[str, Any], *, force: bool) -> Classifier:
    factory = models.get(name)
    classifier = factory(**params)
    if force and classifier.training_info["cached"]:
        cached = Path(classifier.training_info["cache_path"])
        cached.with_suffix(".json").unlink(missing_ok=True)
        cached.unlink(missing_ok=True)
        classifier = factory(**params)
    return classifier


@dataclass
class TrainedModel:
    """A trained (or cached) model and what to report about it."""

    job: TrainJob
    classifier: Classifier
    #: The classifier's ``training_info``: test accuracy, train seconds, cache path, cached, ….
    info: dict[str, Any]
    #: The TOML inline table that names this model in a suite's ``[[models]]``.
    suite_entry: str
    #: Wall-clock seconds of this call (loading from the cache included).
    seconds: float

    @property
    def name(self) -> str:
        return self.job.model

    @property
    def cached(self) -> bool:
        return bool(self.info.get("cached"))

    def report(self) -> list[str]:
        """The lines ``xaibench train`` prints under the model's name."""
        lines = [
            f"  suite model:   {self.suite_entry}",
            f"  test accuracy: {self.info['test_accuracy']:.4f}",
        ]
        if "pgd_test_accuracy" in self.info:
            lines.append(f"  PGD accuracy:  {self.info['pgd_test_accuracy']:.4f} (test split, the training attack)")
        lines += [
            f"  train seconds: {self.info.get('train_seconds')} (this command: {self.seconds:.1f} s)",
            f"  cache:         {self.info['cache_path']}",
        ]
        return lines


@dataclass
class TrainPlan:
    """The checked jobs, in order, and notes for the user (options that are ignored)."""

    jobs: list[TrainJob]
    notes: list[str] = field(default_factory=list)


def _augmentation_runs(augmentations: str | Sequence[str]) -> list[str]:
    chosen = [augmentations] if isinstance(augmentations, str) else list(augmentations or ["none"])
    unknown = [a for a in chosen if a not in (*TRAIN_AUGMENTATIONS, "all")]
    if unknown:
        raise ConfigError(f"unknown augmentation {unknown[0]!r}; expected one of {', '.join(TRAIN_AUGMENTATIONS)}, all")
    return list(TRAIN_AUGMENTATIONS) if "all" in chosen else list(dict.fromkeys(chosen))


def _method_applies(key: str, run: str) -> bool:
    return key.startswith("pgd_") or key.startswith(f"{run}_")


def plan_training(
    model: str = DIGITS_ARCH,
    dataset: str = "digits",
    *,
    augmentations: str | Sequence[str] = ("none",),
    adversarial: str = "none",
    epochs: int | None = None,
    seed: int = 0,
    device: str = "auto",
    img_size: int | None = None,
    width: int | None = None,
    dataset_params: dict[str, Any] | None = None,
    option_name: Callable[[str], str] = python_name,
    **options: Any,
) -> TrainPlan:
    """Check every value and make one job per augmentation (``"all"``: none, fpa, rectangle).

    ``options``: the method options ``fpa_p, fpa_p1_max, fpa_p2, fpa_s_max, rectangle_p,
    pgd_epsilon, pgd_steps, pgd_clean_weight`` (each only with its method) and, for timm
    architectures, ``batch_size, lr, optimizer, pretrained, channels, holdout, limit, hflip``;
    ``None`` means unset. ``width`` is for ``digits_cnn`` only, ``dataset_params`` for timm
    only. ``option_name`` spells option names in error messages (the CLI passes its flags).
    Raises ``ConfigError`` naming the first bad value; trains nothing.
    """
    unknown = sorted(set(options) - {*METHOD_OPTIONS, *TIMM_OPTIONS})
    if unknown:
        raise ConfigError(
            f"unknown training option(s) {', '.join(unknown)}; expected some of "
            f"{', '.join((*METHOD_OPTIONS, *TIMM_OPTIONS))}"
        )
    runs = _augmentation_runs(augmentations)
    if adversarial not in ADVERSARIAL:
        raise ConfigError(f"unknown adversarial training {adversarial!r}; expected one of {', '.join(ADVERSARIAL)}")
    method = {k: options[k] for k in METHOD_OPTIONS if options.get(k) is not None}
    for key in method:
        needed = "pgd" if key.startswith("pgd_") else key.split("_", 1)[0]
        active = adversarial == "pgd" if needed == "pgd" else needed in runs
        if not active:
            switch = option_name("adversarial" if needed == "pgd" else "augmentation")
            raise ConfigError(f"{option_name(key)} applies only with {switch} {needed}")
    extra = {k: options[k] for k in TIMM_OPTIONS if options.get(k) is not None}
    dataset_params = dict(dataset_params or {})
    notes = []
    if model == DIGITS_ARCH:
        given = [option_name(k) for k in extra] + ([option_name("dataset_params")] if dataset_params else [])
        if given:
            raise ConfigError(f"{', '.join(given)} apply to timm architectures, not to {DIGITS_ARCH}")
        if dataset != "digits":
            raise ConfigError(f"{DIGITS_ARCH} trains on the 'digits' dataset only, not {dataset!r}")
        if device not in ("auto", "cpu"):
            notes.append(f"{DIGITS_ARCH} trains on the CPU (one thread); {option_name('device')} {device} is ignored")
    elif width is not None:
        raise ConfigError(f"{option_name('width')} applies to {DIGITS_ARCH} only")
    if epochs is not None and epochs < 1:
        raise ConfigError(f"{option_name('epochs')} must be ≥ 1, got {epochs}")

    jobs = []
    for run in runs:
        params = {k: v for k, v in method.items() if _method_applies(k, run)}
        build_augmentation(run, **{k: v for k, v in params.items() if not k.startswith("pgd_")})
        build_adversarial(adversarial, **{k: v for k, v in params.items() if k.startswith("pgd_")})
        if model == DIGITS_ARCH:
            name, factory_params = digits_model_params(
                augmentation=run, adversarial=adversarial, epochs=epochs, seed=seed,
                img_size=img_size, width=width, **params,
            )
            jobs.append(TrainJob(name, model, dataset, run, adversarial, factory_params, device))
        else:
            settings = {
                "dataset_params": dataset_params, "augmentation": run, "adversarial": adversarial,
                "epochs": epochs, "seed": seed, "img_size": img_size, **extra, **params,
            }
            make_config(model, dataset, **settings)
            jobs.append(TrainJob("trained", model, dataset, run, adversarial, settings, device))
    return TrainPlan(jobs, notes)


def train_models(
    model: str = DIGITS_ARCH,
    dataset: str = "digits",
    *,
    force: bool = False,
    progress: Progress | None = None,
    **settings: Any,
) -> list[TrainedModel]:
    """``plan_training(model, dataset, **settings)``, then run every job (``force``: retrain).

    The plan's notes become ``UserWarning``s. Returns one ``TrainedModel`` per augmentation.
    """
    plan = plan_training(model, dataset, **settings)
    for note in plan.notes:
        warnings.warn(f"xaibench: {note}", UserWarning, stacklevel=2)
    return [job.run(force=force, progress=progress) for job in plan.jobs]


__all__ = [
    "DIGITS_ARCH",
    "METHOD_OPTIONS",
    "TIMM_OPTIONS",
    "TRAIN_AUGMENTATIONS",
    "TrainJob",
    "TrainPlan",
    "TrainedModel",
    "plan_training",
    "train_models",
]
