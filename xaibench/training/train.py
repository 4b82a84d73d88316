"""Train any timm architecture on any registered dataset, with FPA / Rectangle / PGD; cached.

``train_classifier`` trains through the one training loop (``training.loop.fit``), or finds
in the cache, one configuration and writes
``cache_dir()/models/trained-<hash>.pt`` (the ``Classifier``'s state dict, normalisation
buffers included) with a JSON sidecar (configuration, test accuracy, seconds, device). The
``trained`` model factory only *loads* that file: a suite run never trains a timm model
(that can take hours); when the file is missing, the error gives the exact
``xaibench train …`` command that makes it. See docs/training.md.

Choices (documented there too):

* optimiser: SGD, momentum 0.9, weight decay 5e-4, lr 0.05, cosine decay to 0 per step
  (the FPA paper's Food101 recipe, which used lr 0.1); ``optimizer="adam"`` uses AdamW
  (lr 1e-3, weight decay 5e-4).
* evaluation: the dataset's ``split="test"`` when the dataset has a ``split`` parameter that
  the caller did not set (training then uses ``split="train"``), otherwise a seeded held-out
  fraction ``holdout`` of the images.
* PGD examples are made with the model in eval mode (batch-norm statistics are not updated by
  the attack's forward passes), then trained on in train mode.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..device import resolve_device
from ..errors import ConfigError, XaibenchError
from ..files import write_atomic_bytes
from ..hashing import stable_hash
from ..models.cache import cache_dir
from ..models.timm_models import build_timm_classifier, unknown_arch_error
from ..registry import datasets as dataset_registry
from ..registry import models
from ..types import UNKNOWN_LABEL, Classifier
from . import digits as _digits  # noqa: F401  (registers the digits models ``trained`` builds)
from .adversarial import ADVERSARIAL, PGD, build_adversarial, check_method_params
from .augment import AUGMENTATIONS, FPA_CIFAR10, build_augmentation
from .loop import Progress, derived_seed, fit, seeded_build

#: Bump when the training loop changes so stale cached weights are not reused.
FORMAT_VERSION = 1
DEFAULT_EPOCHS = 10
DEFAULT_BATCH_SIZE = 64
DEFAULT_LR = {"sgd": 0.05, "adam": 1e-3}
WEIGHT_DECAY = 5e-4
MOMENTUM = 0.9
OPTIMIZERS = ("sgd", "adam")
#: Datasets known to be grayscale; every other dataset is trained on RGB.
NATIVE_CHANNELS = {"digits": 1}
#: Parameters of the digits models (``arch="digits_cnn"``) besides the method parameters.
_DIGITS_ONLY = ("width",)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a trained model's weights (and so its cache key).

    ``img_size``, ``channels``, ``epochs`` and ``lr`` are resolved to concrete values by
    ``resolve`` before hashing, so ``img_size=None`` and the architecture's default size
    name the same file. Method parameters (``fpa_*``, ``rectangle_p``, ``pgd_*``) may differ
    from their defaults only when their method is on.
    """

    arch: str
    dataset: str = "digits"
    dataset_params: dict[str, Any] = field(default_factory=dict)
    augmentation: str = "none"
    adversarial: str = "none"
    epochs: int | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    lr: float | None = None
    optimizer: str = "sgd"
    seed: int = 0
    pretrained: bool = False
    img_size: int | None = None
    channels: int | None = None
    holdout: float = 0.1
    limit: int | None = None
    hflip: bool = False
    fpa_p: float = FPA_CIFAR10["p"]
    fpa_p1_max: float = FPA_CIFAR10["p1_max"]
    fpa_p2: float = FPA_CIFAR10["p2"]
    fpa_s_max: int = FPA_CIFAR10["s_max"]
    rectangle_p: float = 0.5
    pgd_epsilon: float = 0.1
    pgd_steps: int = 5
    pgd_clean_weight: float = 0.5

    # -- validation and resolution -----------------------------------------------------------
    def resolve(self) -> TrainConfig:
        """Validate every value and fill in the defaults that depend on others."""
        import timm

        if self.augmentation not in AUGMENTATIONS:
            raise ConfigError(
                f"unknown augmentation {self.augmentation!r}; expected one of {', '.join(AUGMENTATIONS)}"
            )
        if self.adversarial not in ADVERSARIAL:
            raise ConfigError(
                f"unknown adversarial training {self.adversarial!r}; expected one of {', '.join(ADVERSARIAL)}"
            )
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"unknown optimizer {self.optimizer!r}; expected one of {', '.join(OPTIMIZERS)}")
        check_method_params(self)
        if not timm.is_model(self.arch):
            raise unknown_arch_error(self.arch)
        dataset_registry.resolve(self.dataset)  # unknown dataset → UnknownPluginError (a ConfigError)
        if not isinstance(self.dataset_params, dict):
            raise ConfigError(f"dataset_params must be a table of parameters, got {self.dataset_params!r}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be ≥ 1, got {self.batch_size}")
        if not 0.0 < float(self.holdout) < 1.0:
            raise ConfigError(f"holdout must be a fraction in (0, 1), got {self.holdout!r}")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"limit must be ≥ 1 (or unset), got {self.limit}")
        epochs = DEFAULT_EPOCHS if self.epochs is None else int(self.epochs)
        if epochs < 1:
            raise ConfigError(f"epochs must be ≥ 1, got {self.epochs}")
        lr = DEFAULT_LR[self.optimizer] if self.lr is None else float(self.lr)
        if not (math.isfinite(lr) and lr > 0):
            raise ConfigError(f"lr must be positive, got {self.lr!r}")
        channels = self.channels if self.channels is not None else NATIVE_CHANNELS.get(self.dataset, 3)
        if channels not in (1, 3):
            raise ConfigError(f"channels must be 1 or 3, got {channels!r}")
        img_size = self.img_size
        if img_size is None:
            cfg = timm.models.get_pretrained_cfg(self.arch)
            img_size = int((cfg.input_size if cfg is not None else (3, 224, 224))[-1])
        if int(img_size) < 8:
            raise ConfigError(f"img_size must be ≥ 8, got {img_size}")
        resolved = dataclasses.replace(
            self, epochs=epochs, lr=lr, channels=int(channels), img_size=int(img_size),
            seed=int(self.seed), batch_size=int(self.batch_size), holdout=float(self.holdout),
        )
        augmenter = resolved.augmenter()
        if augmenter is not None and hasattr(augmenter, "check_size"):
            augmenter.check_size(resolved.img_size, resolved.img_size)
        resolved.attack()
        return resolved

    def augmenter(self) -> Any:
        return build_augmentation(
            self.augmentation, fpa_p=self.fpa_p, fpa_p1_max=self.fpa_p1_max, fpa_p2=self.fpa_p2,
            fpa_s_max=self.fpa_s_max, rectangle_p=self.rectangle_p,
        )

    def attack(self) -> PGD | None:
        return build_adversarial(
            self.adversarial, pgd_epsilon=self.pgd_epsilon, pgd_steps=self.pgd_steps,
            pgd_clean_weight=self.pgd_clean_weight,
        )

    # -- identity ------------------------------------------------------------------------------
    def key_dict(self) -> dict[str, Any]:
        return {"format": FORMAT_VERSION, **dataclasses.asdict(self)}

    def cache_path(self) -> Path:
        """``cache_dir()/models/trained-<hash>.pt`` of this (resolved) configuration."""
        return cache_dir() / "models" / f"trained-{stable_hash(self.key_dict())}.pt"

    def non_default(self) -> dict[str, Any]:
        """The fields that differ from the defaults (``arch`` and ``dataset`` always).

        Fields that ``resolve`` fills in (epochs, lr, channels, img_size) are compared with
        their resolved defaults, so a default never needs spelling out.
        """
        out: dict[str, Any] = {"arch": self.arch, "dataset": self.dataset}
        baseline = TrainConfig(self.arch, self.dataset, optimizer=self.optimizer).resolve()
        for spec in dataclasses.fields(self):
            if spec.name in out:
                continue
            if spec.name in ("epochs", "lr", "channels", "img_size"):
                default = getattr(baseline, spec.name)
            elif spec.default_factory is not dataclasses.MISSING:
                default = spec.default_factory()
            else:
                default = spec.default
            value = getattr(self, spec.name)
            if value != default:
                out[spec.name] = value
        return out

    def suite_entry(self) -> str:
        """The TOML inline table that names this model in a suite's ``[[models]]``."""
        return suite_entry("trained", self.non_default())

    def train_command(self) -> str:
        """The ``xaibench train`` command line that trains exactly this configuration."""
        values = self.non_default()
        parts = ["xaibench", "train", "--model", values.pop("arch"), "--dataset", values.pop("dataset")]
        params = dict(values.pop("dataset_params", {}))
        if "root" in params:
            parts += ["--data", str(params.pop("root"))]
        for key, value in params.items():
            parts += ["--dataset-param", f"{key}={json.dumps(value)}"]
        for key, value in values.items():
            flag = "--" + key.replace("_", "-")
            if isinstance(value, bool):
                parts.append(flag if value else "--no-" + key.replace("_", "-"))
            else:
                parts += [flag, str(value)]
        return shlex.join(parts)


def suite_entry(name: str, params: dict[str, Any]) -> str:
    """``{name = "…", key = value, …}``: the TOML inline table of a suite's ``[[models]]`` entry."""
    items = {"name": name, **params}
    return "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in items.items()) + "}"


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(str(value))


@dataclass
class TrainResult:
    classifier: Classifier
    info: dict[str, Any]
    cached: bool


# --------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------


def _splits(config: TrainConfig) -> tuple[Any, list[int], Any, list[int], str]:
    """Training dataset and indices, evaluation dataset and indices, and how they were split."""
    from ..datasets import load_dataset

    size = (config.img_size, config.img_size)
    declared = {p.name for p in dataset_registry.params(config.dataset)}
    params = dict(config.dataset_params)
    if "split" in declared and "split" not in params:
        train_set = load_dataset(config.dataset, input_size=size, channels=config.channels, **params, split="train")
        eval_set = load_dataset(config.dataset, input_size=size, channels=config.channels, **params, split="test")
        train_index = _labelled(train_set, range(len(train_set)))
        eval_index = _labelled(eval_set, range(len(eval_set)))
        how = "the dataset's test split"
    else:
        train_set = eval_set = load_dataset(config.dataset, input_size=size, channels=config.channels, **params)
        labelled = _labelled(train_set, range(len(train_set)))
        if len(labelled) < 2:
            raise ConfigError(
                f"dataset {config.dataset!r} has {len(labelled)} labelled images; training needs at least 2"
            )
        generator = torch.Generator().manual_seed(derived_seed(config.seed, "holdout"))
        order = [labelled[i] for i in torch.randperm(len(labelled), generator=generator).tolist()]
        n_eval = min(len(order) - 1, max(1, round(config.holdout * len(order))))
        eval_index, train_index = sorted(order[:n_eval]), sorted(order[n_eval:])
        how = f"a seeded held-out {config.holdout:.0%} of the images"
    if not train_index:
        raise ConfigError(f"dataset {config.dataset!r} has no labelled training images")
    if config.limit is not None and len(train_index) > config.limit:
        generator = torch.Generator().manual_seed(derived_seed(config.seed, "limit"))
        keep = torch.randperm(len(train_index), generator=generator)[: config.limit]
        train_index = sorted(train_index[i] for i in keep.tolist())
    return train_set, train_index, eval_set, eval_index, how


def _labelled(dataset: Any, indices: Any) -> list[int]:
    return [i for i in indices if dataset.labels[i] != UNKNOWN_LABEL]


# --------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------


def _build(config: TrainConfig, num_classes: int, *, pretrained: bool) -> Classifier:
    return build_timm_classifier(
        config.arch, name="trained", pretrained=pretrained, img_size=config.img_size,
        num_classes=num_classes, in_chans=config.channels,
    )


@torch.no_grad()
def _accuracy(classifier: Classifier, dataset: Any, indices: list[int], batch_size: int,
              device: torch.device) -> float:
    classifier.eval()
    correct = 0
    for start in range(0, len(indices), batch_size):
        batch = dataset.load(indices[start : start + batch_size])
        logits = classifier(batch.pixels.to(device))
        correct += int((logits.argmax(1).cpu() == batch.labels).sum())
    return correct / max(1, len(indices))


def _fit(config: TrainConfig, device: torch.device, progress: Progress | None = None) -> tuple[Classifier, dict[str, Any]]:
    train_set, train_index, eval_set, eval_index, how = _splits(config)
    labels = [train_set.labels[i] for i in train_index] + [eval_set.labels[i] for i in eval_index]
    num_classes = max(labels) + 1
    classifier = seeded_build(config.seed, lambda: _build(config, num_classes, pretrained=config.pretrained))
    classifier.to(device)
    classifier.requires_grad_(True)
    parameters = [p for p in classifier.parameters() if p.requires_grad]
    assert config.epochs is not None and config.lr is not None
    steps_per_epoch = math.ceil(len(train_index) / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    if config.optimizer == "sgd":
        optimizer: torch.optim.Optimizer = torch.optim.SGD(
            parameters, lr=config.lr, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY
        )
    else:
        optimizer = torch.optim.AdamW(parameters, lr=config.lr, weight_decay=WEIGHT_DECAY)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps))
    )

    def load_batch(batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loaded = train_set.load([train_index[i] for i in batch.tolist()])
        return loaded.pixels, loaded.labels

    started = time.perf_counter()
    fit(
        classifier, len(train_index), load_batch, epochs=config.epochs, batch_size=config.batch_size,
        optimizer=optimizer, seed=config.seed, augmenter=config.augmenter(), attack=config.attack(),
        hflip=config.hflip, schedule=schedule, device=device, progress=progress,
    )
    seconds = time.perf_counter() - started
    accuracy = _accuracy(classifier, eval_set, eval_index, max(config.batch_size, 64), device)
    classifier.to("cpu")
    info = {
        "test_accuracy": accuracy,
        "evaluated_on": how,
        "n_train": len(train_index),
        "n_eval": len(eval_index),
        "num_classes": num_classes,
        "class_names": [str(train_set.label_names.get(k, k)) for k in range(num_classes)],
        "train_seconds": round(seconds, 2),
        "device": str(device),
    }
    return classifier, info


def train_classifier(
    arch: str,
    dataset: str = "digits",
    *,
    dataset_params: dict[str, Any] | None = None,
    augmentation: str = "none",
    adversarial: str = "none",
    epochs: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    lr: float | None = None,
    optimizer: str = "sgd",
    seed: int = 0,
    device: str = "auto",
    pretrained: bool = False,
    img_size: int | None = None,
    channels: int | None = None,
    holdout: float = 0.1,
    limit: int | None = None,
    hflip: bool = False,
    force: bool = False,
    progress: Any = None,
    **method_params: Any,
) -> TrainResult:
    """Train timm ``arch`` on ``dataset`` (or load the cached result); see the module docstring.

    ``method_params``: ``fpa_p, fpa_p1_max, fpa_p2, fpa_s_max, rectangle_p, pgd_epsilon,
    pgd_steps, pgd_clean_weight``. ``num_classes`` is the largest label + 1 (labels are class
    indices the model must predict as such; for digits that is 10). ``progress(epoch, epochs,
    loss)`` is called after every epoch. ``force`` retrains even when the cache has the model.
    """
    config = make_config(
        arch, dataset, dataset_params=dataset_params, augmentation=augmentation,
        adversarial=adversarial, epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer,
        seed=seed, pretrained=pretrained, img_size=img_size, channels=channels, holdout=holdout,
        limit=limit, hflip=hflip, **method_params,
    )
    path = config.cache_path()
    if not force:
        loaded = _load(config, path)
        if loaded is not None:
            return TrainResult(loaded, loaded.training_info, cached=True)
    classifier, info = _fit(config, _torch_device(device), progress)
    meta = {
        "config": config.key_dict(),
        **info,
        "suite_entry": config.suite_entry(),
        "train_command": config.train_command(),
        "input_size": list(classifier.input_size),
        "in_channels": classifier.in_channels,
        "torch": torch.__version__,
        "timm": _timm_version(),
        "pretrained_source": classifier.pretrained_source,
    }
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in classifier.state_dict().items()}, buffer)
    write_atomic_bytes(path, buffer.getvalue())
    write_atomic_bytes(path.with_suffix(".json"), json.dumps(meta, indent=2, sort_keys=True, default=str).encode())
    loaded = _load(config, path)
    if loaded is None:  # pragma: no cover - we just wrote it
        raise XaibenchError(f"could not read back the trained model at {path}")
    loaded.training_info["cached"] = False
    return TrainResult(loaded, loaded.training_info, cached=False)


def _torch_device(device: str) -> torch.device:
    try:
        return resolve_device(device)
    except RuntimeError as exc:  # torch.device("gpu"): not a device name at all
        raise ConfigError(f"unknown device {device!r}; use auto, cpu or cuda") from exc


def make_config(arch: str, dataset: str = "digits", **kwargs: Any) -> TrainConfig:
    """A resolved ``TrainConfig`` (unknown keyword → ``ConfigError``)."""
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise ConfigError(f"unknown training parameter(s) {', '.join(unknown)}; expected some of {', '.join(sorted(known))}")
    params = dict(kwargs)
    params["dataset_params"] = dict(params.get("dataset_params") or {})
    return TrainConfig(arch=arch, dataset=dataset, **params).resolve()


def _timm_version() -> str:
    import timm

    return str(timm.__version__)


def _load(config: TrainConfig, path: Path) -> Classifier | None:
    sidecar = path.with_suffix(".json")
    if not (path.is_file() and sidecar.is_file()):
        return None
    try:
        meta = json.loads(sidecar.read_text())
        if meta.get("config") != json.loads(json.dumps(config.key_dict(), default=str)):
            return None
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # a damaged entry counts as missing
        return None
    classifier = _build(config, int(meta["num_classes"]), pretrained=False)
    classifier.load_state_dict(state)
    classifier.class_names = list(meta.get("class_names") or classifier.class_names)
    methods = []
    if config.augmentation != "none":
        methods.append({"fpa": "FPA", "rectangle": "Rectangle"}[config.augmentation] + " augmentation")
    if config.adversarial != "none":
        methods.append("PGD adversarial training")
    start = "fine-tuned from " + meta.get("pretrained_source", "pretrained weights") if config.pretrained else "trained from scratch"
    classifier.pretrained_source = (
        f"timm:{config.arch} {start} on {config.dataset} "
        f"({', '.join(methods) or 'no augmentation'}; {config.epochs} epochs, seed {config.seed}; "
        f"test accuracy {meta['test_accuracy']:.3f} on {meta['evaluated_on']}), cached at {path}"
    )
    classifier.notes = [f"trained weights loaded from {path}"]
    classifier.test_accuracy = float(meta["test_accuracy"])
    classifier.training_info = {
        "model": "trained",
        "arch": config.arch,
        "dataset": config.dataset,
        "augmentation": config.augmentation,
        "adversarial": config.adversarial,
        "params": _method_params(config),
        "config": config.non_default(),
        "test_accuracy": float(meta["test_accuracy"]),
        "train_seconds": meta.get("train_seconds"),
        "cache_path": str(path),
        "suite_entry": config.suite_entry(),
        "cached": True,
    }
    classifier.eval()
    return classifier


def _method_params(config: TrainConfig) -> dict[str, Any]:
    params: dict[str, Any] = {}
    augmenter = config.augmenter()
    if augmenter is not None:
        params[config.augmentation] = {k: v for k, v in augmenter.params().items() if k != "value"}
    attack = config.attack()
    if attack is not None:
        params["pgd"] = attack.params()
    return params


def load_trained(config: TrainConfig) -> Classifier:
    """The cached model of ``config``, or a ``ConfigError`` naming the command that trains it."""
    path = config.cache_path()
    classifier = _load(config, path)
    if classifier is None:
        raise ConfigError(
            f"model 'trained' ({config.arch} on {config.dataset}, augmentation "
            f"{config.augmentation!r}, adversarial {config.adversarial!r}) has not been trained on "
            f"this machine (no {path}). Train it first with: {config.train_command()}"
        )
    return classifier


@models.register("trained")
def trained(
    arch: str,
    dataset: str = "digits",
    augmentation: str = "none",
    adversarial: str = "none",
    epochs: int | None = None,
    seed: int = 0,
    img_size: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    lr: float | None = None,
    optimizer: str = "sgd",
    pretrained: bool = False,
    channels: int | None = None,
    holdout: float = 0.1,
    limit: int | None = None,
    hflip: bool = False,
    dataset_params: dict | None = None,
    fpa_p: float = FPA_CIFAR10["p"],
    fpa_p1_max: float = FPA_CIFAR10["p1_max"],
    fpa_p2: float = FPA_CIFAR10["p2"],
    fpa_s_max: int = FPA_CIFAR10["s_max"],
    rectangle_p: float = 0.5,
    pgd_epsilon: float = 0.1,
    pgd_steps: int = 5,
    pgd_clean_weight: float = 0.5,
    width: int | None = None,
) -> Classifier:
    """A model trained by ``xaibench train`` (loaded from the cache; never trains here).

    ``arch`` is a timm architecture, or ``digits_cnn`` (then ``dataset`` must be ``digits``,
    ``img_size``/``width`` map to the digits CNN's ``image_size``/``width`` and the digits
    models are built, training them if needed since that takes seconds).
    """
    method = {
        "fpa_p": fpa_p, "fpa_p1_max": fpa_p1_max, "fpa_p2": fpa_p2, "fpa_s_max": fpa_s_max,
        "rectangle_p": rectangle_p, "pgd_epsilon": pgd_epsilon, "pgd_steps": pgd_steps,
        "pgd_clean_weight": pgd_clean_weight,
    }
    if arch == "digits_cnn":
        timm_only = {
            "batch_size": batch_size != DEFAULT_BATCH_SIZE, "lr": lr is not None,
            "optimizer": optimizer != "sgd", "pretrained": bool(pretrained),
            "channels": channels is not None, "holdout": holdout != 0.1, "limit": limit is not None,
            "hflip": bool(hflip), "dataset_params": bool(dataset_params),
        }
        given = [key for key, is_set in timm_only.items() if is_set]
        if given:
            raise ConfigError(f"{', '.join(given)} apply to timm architectures, not to arch='digits_cnn'")
        return digits_model(
            dataset=dataset, augmentation=augmentation, adversarial=adversarial, epochs=epochs,
            seed=seed, img_size=img_size, width=width, **method,
        )
    if width is not None:
        raise ConfigError("width applies only to arch='digits_cnn'")
    config = make_config(
        arch, dataset, dataset_params=dataset_params, augmentation=augmentation,
        adversarial=adversarial, epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer,
        seed=seed, pretrained=pretrained, img_size=img_size, channels=channels, holdout=holdout,
        limit=limit, hflip=hflip, **method,
    )
    return load_trained(config)


def digits_model_name(augmentation: str, adversarial: str) -> str:
    """The registered digits factory for a method pair (both on: FPA/Rectangle + PGD params)."""
    if augmentation not in AUGMENTATIONS:
        raise ConfigError(f"unknown augmentation {augmentation!r}; expected one of {', '.join(AUGMENTATIONS)}")
    if adversarial not in ADVERSARIAL:
        raise ConfigError(f"unknown adversarial training {adversarial!r}; expected one of {', '.join(ADVERSARIAL)}")
    if augmentation == "fpa":
        return "digits_cnn_fpa"
    if augmentation == "rectangle":
        return "digits_cnn_rect"
    return "digits_cnn_pgd" if adversarial == "pgd" else "digits_cnn"


def digits_model_params(
    *, augmentation: str = "none", adversarial: str = "none", epochs: int | None = None,
    seed: int = 0, img_size: int | None = None, width: int | None = None, **method: Any,
) -> tuple[str, dict[str, Any]]:
    """The registered digits model and its non-default parameters for these settings."""
    name = digits_model_name(augmentation, adversarial)
    declared = {p.name: p.default for p in models.params(name)}
    params: dict[str, Any] = {}
    for key, value in {"epochs": epochs, "seed": seed, "image_size": img_size, "width": width}.items():
        if value is not None and value != declared[key]:
            params[key] = value
    if name in ("digits_cnn_fpa", "digits_cnn_rect") and adversarial != "none":
        params["adversarial"] = adversarial
    fields = TrainConfig.__dataclass_fields__
    for key, value in method.items():
        if key not in fields:
            raise ConfigError(f"unknown training parameter {key!r}")
        if value == fields[key].default:
            continue
        if key not in declared:
            raise ConfigError(f"{key}={value!r} does not apply to {name}")
        params[key] = value
    return name, params


def digits_model(dataset: str = "digits", **settings: Any) -> Classifier:
    """Build (training if needed, seconds) the digits model for these settings."""
    if dataset != "digits":
        raise ConfigError(f"arch 'digits_cnn' trains on the 'digits' dataset only, not {dataset!r}")
    name, params = digits_model_params(**settings)
    return models.get(name)(**params)


__all__ = [
    "TrainConfig",
    "TrainResult",
    "digits_model",
    "digits_model_name",
    "digits_model_params",
    "load_trained",
    "make_config",
    "suite_entry",
    "train_classifier",
    "trained",
]
