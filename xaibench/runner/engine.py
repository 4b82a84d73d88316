"""Plan a suite into work units and run them: suite → plan → units → executor → Parquet.

A work unit is (model, explainer, a few originals) with every attack and metric of the suite:
the clean explanation of an original and its attack images' explanations are computed once
and shared by all attacks and grid points. Its id is a stable hash of everything that
determines its output, so a re-run skips units whose part file exists (resume).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import platform
import subprocess
import time
import uuid
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch
from torch import Tensor

from .. import __version__, registry
from ..errors import ConfigError, ResourceUnavailableError, XaibenchError
from ..types import AttackContext, Classifier, Explainer, ImagePool, Oracle, id_seeds
from . import results
from .chunking import ChunkSizes, TuningCache, candidate_sizes, measure_best_size, run_in_chunks
from .convergence import converge
from .noise_floor import noise_floors
from .outputs import check_attributions, finite, nan_where, nonfinite_fraction
from .suite import PluginSpec, Suite

# 2: common random numbers for random explainers, attack images of the running-up class,
# nonfinite_fraction / noise_floor_* / max_completeness_gap columns (issue 11).
RESULTS_FORMAT = 2


# --------------------------------------------------------------------------------------
# Environment and provenance
# --------------------------------------------------------------------------------------


def resolve_device(requested: str) -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise XaibenchError(
            f"device {requested!r} was asked for but CUDA is not available on this machine; "
            "use --device cpu (or auto)"
        )
    return torch.device(requested)


def _version(package: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _git_revision() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def environment(device: torch.device, precision: str = "fp32") -> dict[str, Any]:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    return {
        "xaibench": __version__,
        "torch": torch.__version__,
        "captum": _version("captum"),
        "timm": _version("timm"),
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": str(device),
        "device_name": name,
        "torch_threads": torch.get_num_threads(),
        # Weights and inputs stay float32; bf16 autocasts the model passes (docs/performance.md).
        "dtype": "float32" if precision == "fp32" else "float32 weights, bfloat16 autocast",
        "git_revision": _git_revision(),
    }


def _stable_hash(payload: Any, length: int = 16) -> str:
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


# --------------------------------------------------------------------------------------
# Plan
# --------------------------------------------------------------------------------------


@dataclass
class WorkUnit:
    unit_id: str
    model: PluginSpec
    explainer: PluginSpec
    explainer_params: dict[str, Any]
    indices: list[int]
    image_ids: list[str]
    path: Path  # the unit's completion marker (OUT/_units/<id>.json)
    example_images: int = 0  # how many of the unit's first originals keep an example
    state: str = "pending"  # pending | done | existing | incompatible | failed
    reason: str = ""
    rows: int = 0
    wall_s: float = 0.0

    def record(self) -> dict[str, Any]:
        return {
            "unit_id": self.unit_id,
            "model": self.model.label,
            "explainer": self.explainer.label,
            "image_ids": self.image_ids,
            "state": self.state,
            "reason": self.reason,
            "rows": self.rows,
            "wall_s": round(self.wall_s, 3),
            "path": str(self.path),
        }


@dataclass
class ModelSetup:
    spec: PluginSpec
    classifier: Classifier
    dataset: Any
    originals: list[int]
    pool: list[int]
    pool_probs: Tensor | None = None
    pool_batch: ImagePool | None = None
    pool_labels: Tensor | None = None  # one dataset label per pool row (-1 = unknown)


class ReferenceExplanations:
    """The reference setting's explanations of each sweep, per model and image chunk, kept so
    the units of its variants (which run after it, on the same chunks) do not recompute them.

    Bounded in bytes, oldest out first; a miss (another process, a resumed run, an evicted
    entry) just recomputes, with the same values.
    """

    def __init__(self, max_bytes: int = 256 * 2**20) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, Tensor] = OrderedDict()
        self._bytes = 0

    def get(self, key: str) -> Tensor | None:
        return self._items.get(key)

    def put(self, key: str, attributions: Tensor) -> None:
        size = attributions.element_size() * attributions.nelement()
        if key in self._items or size > self.max_bytes:
            return
        self._items[key] = attributions.detach()
        self._bytes += size
        while self._bytes > self.max_bytes:
            _, old = self._items.popitem(last=False)
            self._bytes -= old.element_size() * old.nelement()


@dataclass
class Plan:
    suite: Suite
    out: Path
    device: torch.device
    setups: list[ModelSetup]
    units: list[WorkUnit]
    attacks: list[Any]
    metrics: list[Any]
    chunk_sizes: ChunkSizes
    notes: list[str] = field(default_factory=list)
    references: ReferenceExplanations = field(default_factory=ReferenceExplanations)
    #: Per model × explainer with a ``max_completeness_gap``: the steps chosen (convergence.py).
    convergence: list[dict[str, Any]] = field(default_factory=list)


def _explainer_params(spec: PluginSpec, seed: int) -> dict[str, Any]:
    """Randomness flows from the suite seed: a random explainer's own seed defaults to it."""
    params = dict(spec.params)
    declared = {p.name for p in registry.explainers.params(spec.name)}
    if "seed" in declared and "seed" not in params:
        params["seed"] = seed
    return params


def _incompatibility(explainer_cls: type, classifier: Classifier) -> str | None:
    check: Callable[[Classifier], str | None] | None = getattr(explainer_cls, "incompatibility", None)
    if check is None:
        return None
    return check(classifier)


def build_plan(suite: Suite, out: Path, *, device: str | None = None) -> Plan:
    """Load every model and dataset, sample the originals, list the units.

    Everything that can be missing (hub weights, ImageNet) is checked here, all at once, before
    any attribution is computed: the error lists every missing piece.
    """
    from ..datasets import load_dataset
    from ..models import load_model

    torch_device = resolve_device(device or suite.device)
    missing: list[str] = []
    loaded: list[tuple[PluginSpec, Classifier]] = []
    for spec in suite.models:
        try:
            classifier = load_model(spec.name, **spec.params)
        except ResourceUnavailableError as exc:
            missing.append(f"model {spec.label!r}: {exc}")
            continue
        loaded.append((spec, classifier.to(torch_device)))

    setups: list[ModelSetup] = []
    for spec, classifier in loaded:
        try:
            dataset = load_dataset(
                suite.dataset.name,
                input_size=classifier.input_size,
                channels=classifier.in_channels,
                **suite.dataset.params,
            )
        except ResourceUnavailableError as exc:
            missing.append(f"dataset {suite.dataset.name!r}: {exc}")
            break
        originals = dataset.sample_one_per_class(suite.n_classes, suite.seed, suite.per_class)
        if suite.limit is not None:
            originals = originals[: suite.limit]
        if not originals:
            raise XaibenchError(f"the dataset {suite.dataset.name!r} has no images")
        pool = list(range(len(dataset)))
        if suite.pool_size is not None and suite.pool_size < len(pool):
            generator = torch.Generator().manual_seed(suite.seed + 1)
            chosen = torch.randperm(len(pool), generator=generator)[: suite.pool_size].tolist()
            pool = sorted(chosen)
        setups.append(ModelSetup(spec, classifier, dataset, originals, pool))
    if not suite.models or (not loaded and not missing):
        raise XaibenchError("the suite names no model")
    if missing:
        if not loaded:
            # No model loaded, so the dataset was not tried: try it so the message lists everything.
            try:
                load_dataset(suite.dataset.name, input_size=(224, 224), channels=3, **suite.dataset.params)
            except ResourceUnavailableError as exc:
                missing.append(f"dataset {suite.dataset.name!r}: {exc}")
        raise ResourceUnavailableError(
            f"the suite {suite.name!r} cannot run on this machine; nothing was computed. Missing:\n  - "
            + "\n  - ".join(missing)
            + "\nOffline, run: xaibench run --suite quickstart   (EfficientNet-Lite0 and the sample "
            "photos ship with the installed packages)"
        )

    attacks = [registry.attacks.get(s.name)(**s.params) for s in suite.attacks]
    metrics = [registry.metrics.get(s.name)(**s.params) for s in suite.metrics]

    units: list[WorkUnit] = []
    convergence: list[dict[str, Any]] = []
    for setup in setups:
        ids = setup.dataset.ids
        for index, spec in enumerate(suite.explainers):
            params = _explainer_params(spec, suite.seed)
            explainer_cls = registry.explainers.get(spec.name)
            reason = _incompatibility(explainer_cls, setup.classifier)
            if reason is None:
                # Build it once now so bad values (an unknown IG method, …) fail before any work.
                try:
                    explainer_cls(setup.classifier, **params)
                except (TypeError, ValueError) as exc:
                    raise ConfigError(
                        f"invalid parameters for explainer {spec.name!r}: {exc}",
                        file=suite.source,
                        key=f"explainers[{index}]",
                    ) from None
                if spec.max_completeness_gap is not None:
                    params, record = converge(setup, spec, params, suite, out, torch_device, RESULTS_FORMAT)
                    convergence.append({"model": setup.spec.label, "explainer": spec.label, **record})
            for start in range(0, len(setup.originals), suite.images_per_unit):
                chunk = setup.originals[start : start + suite.images_per_unit]
                image_ids = [ids[i] for i in chunk]
                unit_id = _stable_hash(
                    {
                        "format": RESULTS_FORMAT,
                        "suite": suite.name,
                        "seed": suite.seed,
                        "dataset": suite.dataset.key(),
                        "pool": [suite.pool_size, len(setup.pool)],
                        "model": setup.spec.key(),
                        "explainer": {"name": spec.name, "params": params, "sweep": spec.sweep},
                        "attacks": [s.key() for s in suite.attacks],
                        "metrics": [s.key() for s in suite.metrics],
                        "images": image_ids,
                        # Only bf16 enters the hash, so fp32 units keep their ids (resume).
                        **({"precision": suite.precision} if suite.precision != "fp32" else {}),
                    }
                )
                unit = WorkUnit(
                    unit_id=unit_id,
                    model=setup.spec,
                    explainer=spec,
                    explainer_params=params,
                    indices=chunk,
                    image_ids=image_ids,
                    path=results.unit_marker(out, unit_id),
                    # The first `examples` originals of each model × explainer keep an example.
                    example_images=max(0, min(len(chunk), suite.examples - start)),
                )
                if reason:
                    unit.state, unit.reason = "incompatible", reason
                elif unit.path.exists():
                    unit.state, unit.reason = "existing", "already complete (resumed)"
                units.append(unit)
    sizes = ChunkSizes(default=suite.batch_size if isinstance(suite.batch_size, int) else 8)
    return Plan(suite, out, torch_device, setups, units, attacks, metrics, sizes, convergence=convergence)


# --------------------------------------------------------------------------------------
# Batched model access
# --------------------------------------------------------------------------------------


def chunks(count: int, size: int) -> Iterable[slice]:
    for start in range(0, count, size):
        yield slice(start, min(start + size, count))


class ModelAccess:
    """Chunked, device-aware predict/explain for one (classifier, explainer) pair.

    Chunk sizes come from the run's ``ChunkSizes`` (measured or fixed) under the keys
    ``(model, explainer, "explain")`` and ``(model, "-", "forward")``; an out-of-memory error
    halves the chunk and retries it, keeping everything already computed.

    ``precision="bf16"`` runs every pass (forwards, explanations, completeness gaps, chunk
    measurements) under ``torch.autocast(device_type, dtype=torch.bfloat16)``; outputs are
    returned as float32 either way. ``predict_and_explain`` predicts and explains in one
    forward + backward when the explainer offers ``explain_predicted`` (``types.Explainer``).
    """

    PRECISIONS = ("fp32", "bf16")

    def __init__(
        self,
        classifier: Classifier,
        explainer: Explainer | None,
        device: torch.device,
        sizes: ChunkSizes,
        *,
        model_label: str,
        explainer_label: str = "-",
        precision: str = "fp32",
    ):
        if precision not in self.PRECISIONS:
            raise XaibenchError(f"unknown precision {precision!r}; use 'fp32' or 'bf16'")
        self.classifier = classifier
        self.explainer = explainer
        self.device = device
        self.sizes = sizes
        self.precision = precision
        self.explain_key = (model_label, explainer_label, "explain")
        self.forward_key = (model_label, "-", "forward")
        self.forward_images = 0
        self.explained_images = 0
        self.explain_seconds = 0.0
        self.explainer_label = explainer_label
        self.fuses_prediction = self._offers_explain_predicted(explainer)
        self._gap_takes_logits = self._takes_keyword(getattr(explainer, "completeness_gap", None), "logits")
        # Explainers that take ``noise_ids`` get common random numbers (types.Explainer); those
        # that are random (``is_random``, class- or instance-level) also get a noise floor.
        self.takes_noise_ids = self._takes_keyword(getattr(explainer, "explain", None), "noise_ids")
        self.is_random = bool(getattr(explainer, "is_random", False))

    @staticmethod
    def _offers_explain_predicted(explainer: Explainer | None) -> bool:
        """Whether ``explain_predicted`` may stand in for ``explain`` (see ``types.Explainer``).

        Only when the class that defines it is the class that defines ``explain`` or a
        subclass of it: a subclass that overrides ``explain`` alone (to count calls, to fail
        like a full GPU, to post-process) would otherwise be bypassed.
        """
        if explainer is None or not callable(getattr(explainer, "explain_predicted", None)):
            return False
        if "explain" in vars(explainer) or "explain_predicted" in vars(explainer):
            return False  # patched on the instance: trust neither

        def owner(name: str) -> type:
            return next(klass for klass in type(explainer).__mro__ if name in vars(klass))

        return issubclass(owner("explain_predicted"), owner("explain"))

    @staticmethod
    def _takes_keyword(function: Callable[..., Any] | None, name: str) -> bool:
        import inspect

        if function is None:
            return False
        try:
            return name in inspect.signature(function).parameters
        except (TypeError, ValueError):
            return False

    def autocast(self) -> torch.autocast:
        """The precision context every pass runs in (a no-op for fp32)."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16")

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def explainer_images_per_s(self) -> float:
        """Images explained per second of explainer time (the AttEXplore paper's FPS)."""
        return self.explained_images / self.explain_seconds if self.explain_seconds > 0 else math.nan

    def logits(self, x01: Tensor) -> Tensor:
        """Logits of any number of images, in chunks; the caller bounds memory by what it passes."""

        def compute(part: slice) -> Tensor:
            with torch.no_grad(), self.autocast():
                return self.classifier(x01[part].to(self.device)).float().cpu()

        outputs = run_in_chunks(x01.shape[0], self.sizes, self.forward_key, compute)
        self.forward_images += int(x01.shape[0])
        return torch.cat(outputs) if outputs else torch.empty(0, self.classifier.num_classes)

    def probabilities(self, x01: Tensor) -> Tensor:
        return torch.softmax(self.logits(x01), dim=1)

    def _noise(self, noise_ids: list[str] | None, part: slice) -> dict[str, Any]:
        return {"noise_ids": noise_ids[part]} if noise_ids is not None and self.takes_noise_ids else {}

    def explain(self, x01: Tensor, target: Tensor, noise_ids: list[str] | None = None) -> Tensor:
        """Attributions of ``x01`` for ``target``, checked (``outputs.check_attributions``).

        ``noise_ids``: one id per image; a random explainer draws the same noise for the same
        id (the runner passes the original's id for the original and its corrupted copies).
        """
        assert self.explainer is not None
        explainer = self.explainer

        def compute(part: slice) -> Tensor:
            inputs = x01[part].to(self.device)
            with self.autocast():
                attributions = explainer.explain(inputs, target[part].to(self.device), **self._noise(noise_ids, part))
            check_attributions(attributions, inputs, self.explainer_label)
            return attributions.detach().float().cpu()

        self._sync()
        started = time.perf_counter()
        outputs = run_in_chunks(x01.shape[0], self.sizes, self.explain_key, compute)
        self._sync()
        self.explain_seconds += time.perf_counter() - started
        self.explained_images += int(x01.shape[0])
        return torch.cat(outputs) if outputs else torch.empty_like(x01)

    def predict_and_explain(self, x01: Tensor, noise_ids: list[str] | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """``(logits, predicted class, attributions for it)`` of each image.

        With an explainer that offers ``explain_predicted``, one forward + backward per chunk
        gives all three (the class is ``logits.argmax``, as the explainer chose it); otherwise
        a forward pass predicts (``softmax(logits).argmax``) and ``explain`` explains. Both
        give the same values: the fused pass is the explanation's own forward.
        """
        if not self.fuses_prediction:
            logits = self.logits(x01)
            predicted = torch.softmax(logits, dim=1).argmax(dim=1)
            return logits, predicted, self.explain(x01, predicted, noise_ids)
        explainer = self.explainer

        def compute(part: slice) -> tuple[Tensor, Tensor]:
            inputs = x01[part].to(self.device)
            with self.autocast():
                attributions, logits = explainer.explain_predicted(inputs)  # type: ignore[union-attr]
            check_attributions(attributions, inputs, self.explainer_label)
            return logits.detach().float().cpu(), attributions.detach().float().cpu()

        self._sync()
        started = time.perf_counter()
        outputs: list[Any] = run_in_chunks(x01.shape[0], self.sizes, self.explain_key, compute)  # type: ignore[arg-type]
        self._sync()
        self.explain_seconds += time.perf_counter() - started
        self.explained_images += int(x01.shape[0])
        if not outputs:
            return torch.empty(0, self.classifier.num_classes), torch.empty(0, dtype=torch.long), torch.empty_like(x01)
        logits = torch.cat([o[0] for o in outputs])
        return logits, logits.argmax(dim=1), torch.cat([o[1] for o in outputs])

    def completeness_gap(
        self, x01: Tensor, target: Tensor, attributions: Tensor, logits: Tensor | None = None
    ) -> Tensor | None:
        """The explainer's completeness gap per image; ``None`` when it has none.

        ``logits`` (of ``x01``, when the caller has them) are handed to explainers whose
        ``completeness_gap`` takes them, which saves forwarding ``x01`` again.
        """
        assert self.explainer is not None
        explainer = self.explainer
        if not getattr(explainer, "has_completeness", False):
            return None
        reuse = logits is not None and self._gap_takes_logits

        def compute(part: slice) -> Tensor:
            extra = {"logits": logits[part].to(self.device)} if reuse else {}  # type: ignore[index]
            with self.autocast():
                gap = explainer.completeness_gap(
                    x01[part].to(self.device), target[part].to(self.device), attributions[part].to(self.device), **extra
                )
            return torch.full((part.stop - part.start,), math.nan) if gap is None else gap.detach().float().cpu()

        return torch.cat(run_in_chunks(x01.shape[0], self.sizes, self.forward_key, compute))

    def tune(self, sample: Tensor, target: Tensor, cache: TuningCache, identity: dict[str, Any], maximum: int) -> None:
        """Measure the fastest chunk size per stage on ``sample`` (briefly), unless cached."""
        for key, stage in ((self.forward_key, "forward"), (self.explain_key, "explain")):
            if self.sizes.known(key) or (stage == "explain" and self.explainer is None):
                continue
            # fp32 keys stay as they were (earlier measurements remain valid); bf16 is its own.
            precision = {} if self.precision == "fp32" else {"precision": self.precision}
            cache_key = cache.key({**identity, "stage": stage, "device": _device_name(self.device), **precision})
            cached = cache.get(cache_key)
            if cached is not None:
                self.sizes.set(key, cached, "measured earlier (cached)")
                continue
            candidates = candidate_sizes(self.device, maximum)
            repeats = -(-candidates[-1] // sample.shape[0])
            images = sample.repeat(repeats, 1, 1, 1)[: candidates[-1]].to(self.device)
            targets = target.repeat(repeats)[: candidates[-1]].to(self.device)
            def compute(
                size: int,
                stage: str = stage,
                images: Tensor = images,
                targets: Tensor = targets,
                explainer: Explainer | None = self.explainer,
            ) -> None:
                # Time what the runner will call: under its precision, fused where it fuses.
                with self.autocast():
                    if stage == "forward":
                        with torch.no_grad():
                            self.classifier(images[:size])
                    elif self.fuses_prediction:
                        explainer.explain_predicted(images[:size])  # type: ignore[union-attr]
                    else:
                        assert explainer is not None
                        explainer.explain(images[:size], targets[:size])
                self._sync()

            best, timings = measure_best_size(compute, candidates)
            self.sizes.set(key, best, f"measured: {', '.join(f'{k}: {v * 1e3:.1f} ms/img' for k, v in timings.items())}")
            cache.put(cache_key, best, timings, f"{key[0]} × {key[1]} × {stage}")


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu-{platform.machine()}"


def pool_probabilities(setup: ModelSetup, plan: Plan) -> tuple[ImagePool, Tensor]:
    """The attack-image pool and its probabilities: once per (model, pool), cached on disk.

    The pool is streamed through the model in chunks and kept as ids plus a loader, so a
    10,000-image ImageNet pool costs its probabilities (40 MB), not its pixels (6 GB).
    Images that cannot be read are left out of the pool (and recorded by the dataset).
    The pool's labels are cached beside the probabilities and kept in ``setup.pool_labels``
    (attacks that take images of a class need them); a cache file without labels is a miss.
    """
    if setup.pool_batch is not None and setup.pool_probs is not None and setup.pool_labels is not None:
        return setup.pool_batch, setup.pool_probs
    dataset = setup.dataset
    key = _stable_hash(
        {"model": setup.spec.key(), "pool": [dataset.ids[i] for i in setup.pool], "format": RESULTS_FORMAT}
    )
    cache = plan.out / "_cache" / f"pool-probs-{results.partition_value(setup.spec.label)}-{key}.npz"
    stored_labels = None
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as stored:
            if "labels" in stored.files:
                ids = [str(i) for i in stored["ids"]]
                probs = torch.from_numpy(stored["probs"])
                stored_labels = torch.from_numpy(stored["labels"]).long()
    if stored_labels is not None:
        labels = stored_labels
    else:
        access = ModelAccess(setup.classifier, None, plan.device, plan.chunk_sizes, model_label=setup.spec.label)
        ids, parts, label_parts = [], [], []
        for part in chunks(len(setup.pool), 64):
            batch = dataset.load(setup.pool[part])
            ids.extend(batch.ids)
            parts.append(access.probabilities(batch.pixels))
            label_parts.append(batch.labels.to("cpu", torch.long))
        probs = torch.cat(parts)
        labels = torch.cat(label_parts)
        buffer = io.BytesIO()
        np.savez(buffer, ids=np.array(ids, dtype=str), probs=probs.numpy(), labels=labels.numpy())
        results.write_atomic_bytes(cache, buffer.getvalue())
    index_of = {image_id: i for i, image_id in enumerate(dataset.ids)}

    def load(rows: list[int]) -> Tensor:
        return dataset.load([index_of[ids[r]] for r in rows]).pixels

    setup.pool_batch, setup.pool_probs, setup.pool_labels = ImagePool(ids, load), probs, labels
    return setup.pool_batch, probs


# --------------------------------------------------------------------------------------
# One unit
# --------------------------------------------------------------------------------------


def _is_faithfulness(metric: Any) -> bool:
    return getattr(metric, "category", "") == "faithfulness" and hasattr(metric, "evaluate")


def _reference_point(attack: Any, reference: dict[str, float]) -> dict[str, float]:
    """The grid point faithfulness and examples use: the suite's reference, else the largest."""
    grid = attack.grid() if hasattr(attack, "grid") else []
    if not grid:
        return {}
    for point in grid:
        if all(math.isclose(float(point.get(k, math.nan)), float(v)) for k, v in reference.items()):
            return point
    return max(grid, key=lambda point: tuple(float(v) for v in point.values()))


def _select_rows(columns: dict[str, list[Any]], point: dict[str, float], rows: int) -> list[int]:
    """Rows at ``point`` and from the most confident attack image (rank 0 when recorded)."""
    chosen = []
    for row in range(rows):
        if any(not math.isclose(float(columns[k][row]), float(v)) for k, v in point.items() if k in columns):
            continue
        if "attack_image_rank" in columns and int(columns["attack_image_rank"][row]) != 0:
            continue
        chosen.append(row)
    return chosen


def _png(image01: Tensor) -> bytes:
    from PIL import Image

    array = (image01.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    if array.shape[2] == 1:
        array = array[:, :, 0]
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def _heatmap(attributions: Tensor, side: int = 112) -> Tensor:
    heat = attributions.abs().sum(dim=0, keepdim=True).unsqueeze(0)
    if max(heat.shape[-2:]) > side:
        heat = torch.nn.functional.adaptive_avg_pool2d(heat, (min(side, heat.shape[-2]), min(side, heat.shape[-1])))
    return heat[0, 0].float()


def _curve(result: Any, names: list[str], index: int, count: int) -> list[Any]:
    if len(names) <= index:
        return [None] * count
    return [row.tolist() for row in result.curves[names[index]].float()]


class UnitTables:
    """Column lists for the unit's three tables."""

    def __init__(self) -> None:
        self.columns: dict[str, dict[str, list[Any]]] = {name: {} for name in results.TABLES}
        self.rows: dict[str, int] = dict.fromkeys(results.TABLES, 0)

    def add(self, table: str, values: dict[str, Iterable[Any]]) -> None:
        lists = {name: list(column) for name, column in values.items()}
        counts = {len(column) for column in lists.values()}
        if len(counts) > 1:
            raise ValueError(f"{table}: columns of different lengths {counts}")
        count = counts.pop() if counts else 0
        target = self.columns[table]
        for name in set(target) | set(lists):
            # A column that appears later (a plugin's extra column) is null-filled before.
            target.setdefault(name, [None] * self.rows[table]).extend(lists.get(name, [None] * count))
        self.rows[table] += count


def _metric_params(metric: Any, spec: PluginSpec) -> dict[str, Any]:
    """The metric's resolved parameters (its ``describe()`` when it has one) over the suite's."""
    described = metric.describe() if callable(getattr(metric, "describe", None)) else {}
    return {**spec.params, **{k: v for k, v in described.items() if k != "metric"}}


def _gate(spec: PluginSpec) -> float:
    """The explainer's convergence gate (``max_completeness_gap``), NaN when it has none."""
    gate = getattr(spec, "max_completeness_gap", None)
    return math.nan if gate is None else float(gate)


def sensitivity_heatmap(attributions: Tensor) -> Tensor:
    """``N×1×H×W`` in ``[0, 1]``: ``Σ_c |a_c|`` divided by the image's maximum (0 stays 0).

    The heatmap the hyperparameter-sensitivity suite compares with SSIM (seed 004 compares
    heatmaps as images; the absolute value makes signed and unsigned settings comparable).
    """
    heat = attributions.detach().abs().sum(dim=1, keepdim=True).to(torch.float64)
    peak = heat.flatten(1).amax(dim=1).view(-1, 1, 1, 1)
    return torch.where(peak > 0, heat / peak.clamp_min(torch.finfo(torch.float64).tiny), 0.0)


def _sensitivity_rows(
    unit: WorkUnit, setup: ModelSetup, plan: Plan, batch: Any, clean: Tensor, predicted: Tensor
) -> dict[str, list[Any]]:
    """One row per image of a swept explainer: its heatmap against the sweep's reference
    setting (SSIM of ``sensitivity_heatmap``s, Spearman correlation of the raw attributions),
    the reference taken from the reference unit of the same images (``plan.references``) or,
    when that ran elsewhere, computed here for the same images and target classes."""
    from ..metrics.robustness import RankCorrelation
    from ..metrics.ssim import ssim

    sweep = unit.explainer.sweep
    assert sweep is not None
    count = len(batch)
    reference_spec = PluginSpec("explainers", unit.explainer.name, dict(sweep["reference"]), sweep["sweep"])
    params = _explainer_params(reference_spec, plan.suite.seed)
    key = json.dumps(
        [unit.model.key(), unit.explainer.name, params, plan.suite.precision, list(batch.ids), predicted.tolist()],
        sort_keys=True, default=str,
    )
    if sweep["param"] is None:
        reference = clean
        plan.references.put(key, clean)
    elif (cached := plan.references.get(key)) is not None:
        reference = cached
    else:
        explainer = registry.explainers.get(unit.explainer.name)(setup.classifier, **params)
        access = ModelAccess(
            setup.classifier, explainer, plan.device, plan.chunk_sizes,
            model_label=unit.model.label, explainer_label=sweep["sweep"], precision=plan.suite.precision,
        )
        reference = access.explain(batch.pixels, predicted, list(batch.ids))  # the same noise as `clean`
        plan.references.put(key, reference)
    similarity = ssim(sensitivity_heatmap(reference), sensitivity_heatmap(clean))
    correlation = RankCorrelation()(expl_original=reference, expl_corrupted=clean)
    return {
        "image_id": list(batch.ids),
        "label": [int(v) for v in batch.labels],
        "predicted_class": [int(v) for v in predicted.tolist()],
        "sweep": [sweep["sweep"]] * count,
        "param": [sweep["param"]] * count,
        "value": [None if sweep["param"] is None else json.dumps(sweep["value"])] * count,
        "reference_params": [json.dumps(sweep["reference"], sort_keys=True)] * count,
        "ssim_to_reference": similarity.double().cpu().tolist(),
        "rank_correlation_to_reference": correlation.double().cpu().tolist(),
    }


def run_unit(unit: WorkUnit, setup: ModelSetup, plan: Plan, run_id: str) -> dict[str, pa.Table]:
    """Compute one unit: robustness rows, faithfulness rows and examples, as Arrow tables."""
    started = time.perf_counter()
    suite = plan.suite
    explainer_cls = registry.explainers.get(unit.explainer.name)
    explainer: Explainer = explainer_cls(setup.classifier, **unit.explainer_params)
    access = ModelAccess(
        setup.classifier,
        explainer,
        plan.device,
        plan.chunk_sizes,
        model_label=unit.model.label,
        explainer_label=unit.explainer.label,
        precision=suite.precision,
    )
    robustness_metrics = [m for m in plan.metrics if not _is_faithfulness(m)]
    # A [[metrics]] entry may name the explainers it scores (``explainers = [...]``).
    faithfulness_metrics = [
        m for m, spec in zip(plan.metrics, suite.metrics, strict=True)
        if _is_faithfulness(m) and spec.applies_to(unit.explainer.label)
    ]
    tables = UnitTables()

    batch = setup.dataset.load(unit.indices)
    if len(batch) == 0:
        return {}
    if suite.batch_size == "auto":
        with torch.no_grad():
            sample_target = setup.classifier(batch.pixels[:1].to(plan.device)).argmax(dim=1).cpu()
        access.tune(
            batch.pixels[:1],
            sample_target,
            TuningCache(),
            {"model": unit.model.key(), "explainer": {"name": unit.explainer.name, "params": unit.explainer_params},
             "input": list(batch.pixels.shape[1:])},
            maximum=suite.max_batch_size if plan.device.type == "cpu" else 4 * suite.max_batch_size,
        )
    probs = access.probabilities(batch.pixels)
    predicted = probs.argmax(dim=1)
    # Common random numbers: an original and all its corrupted copies share the noise of the
    # original's id, so E(x) and E(x̂) differ by the attack, not by two random draws.
    noise_ids = list(batch.ids)
    clean = access.explain(batch.pixels, predicted, noise_ids)
    clean_gap = access.completeness_gap(batch.pixels, predicted, clean)
    clean_finite = finite(clean)
    robustness_pairs = [
        (m, spec) for m, spec in zip(plan.metrics, suite.metrics, strict=True) if not _is_faithfulness(m)
    ]
    floors = noise_floors(access, robustness_pairs, noise_ids, batch.pixels, predicted, probs, clean)

    def faithfulness(x01: Tensor, attributions: Tensor, target: Tensor, image_rows: list[int], extra: dict[str, list[Any]]) -> None:
        # The metric's own draws follow the original too: clean and attacked rows share them.
        seeds = id_seeds([batch.ids[i] for i in image_rows], suite.seed)
        bad = nonfinite_fraction(attributions)
        attributions = finite(attributions)
        for metric, spec in zip(plan.metrics, suite.metrics, strict=True):
            if not _is_faithfulness(metric) or not spec.applies_to(unit.explainer.label):
                continue
            result = metric.evaluate(
                access.logits,
                x01,
                attributions,
                target,
                seeds=seeds,
                chunk_size=plan.chunk_sizes.get(access.forward_key),
                multiplies_by_inputs=bool(getattr(explainer, "multiplies_by_inputs", False)),
            )
            names = list(result.curves)
            count = x01.shape[0]
            tables.add(
                "faithfulness",
                {
                    "image_id": [batch.ids[i] for i in image_rows],
                    "label": [int(batch.labels[i]) for i in image_rows],
                    "predicted_class": [int(t) for t in target.tolist()],
                    **extra,
                    "metric": [spec.label] * count,
                    # Every resolved parameter (defaults too: which INFD perturbation, …).
                    "metric_params": [json.dumps(_metric_params(metric, spec), sort_keys=True, default=str)] * count,
                    "higher_is_better": [bool(metric.higher_is_better)] * count,
                    "score": nan_where(result.scores, bad),
                    "nonfinite_fraction": bad.tolist(),
                    "curve_name": [names[0] if names else None] * count,
                    "curve": _curve(result, names, 0, count),
                    "curve2_name": [names[1] if len(names) > 1 else None] * count,
                    "curve2": _curve(result, names, 1, count),
                    "curve_x": [result.curve_x.float().tolist() if result.curve_x is not None else None] * count,
                    "metric_forward_images": [result.forward_images / max(count, 1)] * count,
                },
            )

    if faithfulness_metrics:
        clean_extra: dict[str, list[Any]] = {
            "on": ["clean"] * len(batch),
            "attack": [None] * len(batch),
            "alpha": [None] * len(batch),
            "topk": [None] * len(batch),
            "attack_image_id": [None] * len(batch),
        }
        faithfulness(batch.pixels, clean, predicted, list(range(len(batch))), clean_extra)

    if unit.explainer.sweep is not None:
        tables.add("sensitivity", _sensitivity_rows(unit, setup, plan, batch, clean, predicted))

    pool, pool_probs = pool_probabilities(setup, plan) if plan.attacks else (None, None)
    oracle = Oracle(access.probabilities, access.explain)
    context = AttackContext(
        original_ids=list(batch.ids),
        probs=probs,
        pool=pool,
        pool_probs=pool_probs,
        seed=suite.seed,
        pool_labels=setup.pool_labels if pool is not None else None,
    )
    store_examples = unit.example_images > 0
    for attack_spec, attack in zip(suite.attacks, plan.attacks, strict=True):
        output = attack.perturb(batch.pixels, oracle, context)
        origin = output.origin.long()
        rows = output.images.shape[0]
        point = _reference_point(attack, suite.reference)
        selected = (
            list(range(rows))
            if suite.faithfulness_on_attacked == "all"
            else _select_rows(output.columns, point, rows)
            if suite.faithfulness_on_attacked == "reference" or store_examples
            else []
        )
        kept = set(selected)
        kept_images: dict[int, tuple[Tensor, int]] = {}
        metric_values: dict[str, list[float]] = {m.name: [] for m in robustness_metrics}
        corrupted_pred: list[int] = []
        corrupted_gap: list[float] = []
        nonfinite: list[float] = []
        # Rows are processed in explain-sized chunks so memory stays bounded by the chunk.
        for part in chunks(rows, max(plan.chunk_sizes.get(access.explain_key), 1)):
            images = output.images[part]
            # One forward + backward per chunk for gradient explainers (explain_predicted);
            # otherwise a forward, then the explanation. The logits also serve the
            # completeness gap (no second forward of the corrupted images).
            rows_origin = origin[part]
            logits_corrupted, predicted_corrupted, expl_corrupted = access.predict_and_explain(
                images, [noise_ids[i] for i in rows_origin.tolist()]
            )
            probs_corrupted = torch.softmax(logits_corrupted, dim=1)
            gap = access.completeness_gap(images, predicted_corrupted, expl_corrupted, logits=logits_corrupted)
            bad = nonfinite_fraction(clean[rows_origin], expl_corrupted)
            nonfinite.extend(bad.tolist())
            tensors = {
                "original": batch.pixels[rows_origin],
                "corrupted": images,
                "expl_original": clean_finite[rows_origin],
                "expl_corrupted": finite(expl_corrupted),
                "probs_original": probs[rows_origin],
                "probs_corrupted": probs_corrupted,
            }
            for metric in robustness_metrics:
                values = metric(**{name: tensors[name] for name in metric.needs})
                metric_values[metric.name].extend(nan_where(values, bad))
            corrupted_pred.extend(predicted_corrupted.tolist())
            corrupted_gap.extend(gap.tolist() if gap is not None else [math.nan] * images.shape[0])
            for offset, row in enumerate(range(part.start, part.stop)):
                if row in kept:
                    kept_images[row] = (expl_corrupted[offset], int(predicted_corrupted[offset]))

        origin_list = origin.tolist()
        metric_columns = {
            spec.label: metric_values[metric.name]
            for metric, spec in zip(plan.metrics, suite.metrics, strict=True)
            if not _is_faithfulness(metric)
        }
        tables.add(
            "robustness",
            {
                "image_id": (batch.ids[i] for i in origin_list),
                "label": (int(batch.labels[i]) for i in origin_list),
                "predicted_class": (int(predicted[i]) for i in origin_list),
                "predicted_prob": (float(probs[i, predicted[i]]) for i in origin_list),
                "predicted_class_corrupted": corrupted_pred,
                "attack": [attack_spec.label] * rows,
                "attack_params": [json.dumps(attack_spec.params, sort_keys=True)] * rows,
                **output.columns,
                **metric_columns,
                **{
                    f"noise_floor_{label}": [values[i] for i in origin_list]
                    for label, values in floors.items()
                },
                "nonfinite_fraction": nonfinite,
                "max_completeness_gap": [_gate(unit.explainer)] * rows,
                "completeness_gap": [
                    math.nan if clean_gap is None else float(clean_gap[i]) for i in origin_list
                ],
                "completeness_gap_corrupted": corrupted_gap,
            },
        )

        if faithfulness_metrics and suite.faithfulness_on_attacked != "none" and selected:
            images = output.images[selected]
            attributions = torch.stack([kept_images[r][0] for r in selected])
            target = torch.tensor([kept_images[r][1] for r in selected])
            faithfulness(
                images,
                attributions,
                target,
                [origin_list[r] for r in selected],
                {
                    "on": ["attacked"] * len(selected),
                    "attack": [attack_spec.label] * len(selected),
                    "alpha": [output.columns.get("alpha", [None] * rows)[r] for r in selected],
                    "topk": [output.columns.get("topk", [None] * rows)[r] for r in selected],
                    "attack_image_id": [output.columns.get("attack_image_id", [None] * rows)[r] for r in selected],
                },
            )

        if store_examples and selected:
            first_row_of: dict[int, int] = {}
            for row in selected:
                first_row_of.setdefault(origin_list[row], row)
            example_rows = [
                first_row_of[i] for i in range(min(unit.example_images, len(batch))) if i in first_row_of
            ]
            changes = metric_columns.get("explanation_change_pct", [math.nan] * rows)
            height, width = _heatmap(clean[0]).shape
            tables.add(
                "examples",
                {
                    "image_id": [batch.ids[origin_list[r]] for r in example_rows],
                    "attack": [attack_spec.label] * len(example_rows),
                    "alpha": [output.columns.get("alpha", [None] * rows)[r] for r in example_rows],
                    "topk": [output.columns.get("topk", [None] * rows)[r] for r in example_rows],
                    "attack_image_id": [
                        output.columns.get("attack_image_id", [None] * rows)[r] for r in example_rows
                    ],
                    "explanation_change_pct": [changes[r] for r in example_rows],
                    "original_png": [_png(batch.pixels[origin_list[r]]) for r in example_rows],
                    "corrupted_png": [_png(output.images[r]) for r in example_rows],
                    "heatmap_original": [
                        _heatmap(clean[origin_list[r]]).flatten().tolist() for r in example_rows
                    ],
                    "heatmap_corrupted": [
                        _heatmap(kept_images[r][0]).flatten().tolist() for r in example_rows
                    ],
                    "heatmap_height": [int(height)] * len(example_rows),
                    "heatmap_width": [int(width)] * len(example_rows),
                },
            )

    wall = time.perf_counter() - started
    constant = {
        "run_id": run_id,
        "unit_id": unit.unit_id,
        "seed": suite.seed,
        "dataset": suite.dataset.name,
        "model_name": unit.model.name,
        "model_params": json.dumps(unit.model.params, sort_keys=True),
        "pretrained_source": setup.classifier.pretrained_source,
        # The model's own held-out accuracy where it knows it (trained models do).
        "model_test_accuracy": float(getattr(setup.classifier, "test_accuracy", math.nan)),
        "explainer_name": unit.explainer.name,
        "explainer_params": json.dumps(unit.explainer_params, sort_keys=True),
        "device": str(plan.device),
        "precision": suite.precision,
        "xaibench_version": __version__,
        "torch_version": torch.__version__,
        "captum_version": _version("captum"),
        "unit_wall_s": wall,
        "unit_forward_images": access.forward_images,
        "unit_explained_images": access.explained_images,
        "explain_chunk_size": plan.chunk_sizes.get(access.explain_key),
        "forward_chunk_size": plan.chunk_sizes.get(access.forward_key),
        "explainer_images_per_s": access.explainer_images_per_s(),
    }
    out: dict[str, pa.Table] = {}
    for table, columns in tables.columns.items():
        count = tables.rows[table]
        if not count:
            continue
        if table != "examples":
            for name, value in constant.items():
                columns[name] = [value] * count
        else:
            columns["run_id"] = [run_id] * count
        out[table] = pa.table(columns)
    return out


# --------------------------------------------------------------------------------------
# Run
# --------------------------------------------------------------------------------------


@dataclass
class RunReport:
    run_id: str
    out: Path
    units_done: int
    units_existing: int
    units_incompatible: int
    units_failed: int
    rows_written: int  # robustness + faithfulness rows (examples not counted)
    rows_by_table: dict[str, int]
    wall_s: float
    manifest: dict[str, Any]


def execute_unit(plan: Plan, unit: WorkUnit, run_id: str) -> dict[str, Any]:
    """Compute one unit and commit it: parts first, the marker last.

    A unit without its marker is recomputed, and recomputing rewrites the same part names with
    the same values, so a crash at any point leaves no duplicate rows. Returns the outcome
    (state, rows, wall time) as plain data, so Ray workers can return it too.
    """
    if unit.path.exists():  # another run (or worker) finished it meanwhile
        return {"state": "existing", "reason": "written by a concurrent run"}
    started = time.perf_counter()
    setup = next(s for s in plan.setups if s.spec.label == unit.model.label)
    try:
        tables = run_unit(unit, setup, plan, run_id)
    except XaibenchError:
        raise
    except Exception as exc:  # one broken unit must not lose the others
        return {"state": "failed", "reason": f"{type(exc).__name__}: {exc}"}
    parts = {}
    for name, table in tables.items():
        path = results.part_path(plan.out, name, plan.suite.name, unit.model.label, unit.explainer.label, unit.unit_id)
        results.write_part(path, table)
        parts[name] = {"path": str(path.relative_to(plan.out)), "rows": table.num_rows}
    wall = time.perf_counter() - started
    results.write_json(unit.path, {"unit_id": unit.unit_id, "run_id": run_id, "parts": parts, "wall_s": wall})
    return {
        "state": "done",
        "wall_s": wall,
        "rows": sum(t.num_rows for n, t in tables.items() if n != "examples"),
        "rows_by_table": {n: t.num_rows for n, t in tables.items()},
    }


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]


def _manifest(plan: Plan, run_id: str, started: str, env: dict[str, Any], skipped: list[Any]) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "started": started,
        "finished": None,
        "suite": plan.suite.to_dict(),
        "suite_fingerprint": plan.suite.fingerprint(),
        "environment": env,
        "models": {s.spec.label: s.classifier.provenance() for s in plan.setups},
        "originals": {s.spec.label: len(s.originals) for s in plan.setups},
        "skipped_images": skipped,
        "chunk_sizes": plan.chunk_sizes.record(),
        "convergence": plan.convergence,
        "units": [u.record() for u in plan.units],
    }


def run_plan(
    plan: Plan,
    *,
    progress: Callable[[WorkUnit, int, int], None] | None = None,
    run_id: str | None = None,
    executor: str = "local",
    address: str | None = None,
) -> RunReport:
    """Run every pending unit (local loop or Ray tasks), writing its parts and marker."""
    run_id = run_id or new_run_id()
    started_at = datetime.now(UTC).isoformat()
    started = time.perf_counter()
    env = environment(plan.device, plan.suite.precision)
    skipped: list[dict[str, str]] = []
    plan.out.mkdir(parents=True, exist_ok=True)

    def save(finished: bool = False) -> dict[str, Any]:
        for setup in plan.setups:
            for item, reason in getattr(setup.dataset, "skipped", []):
                record = {"model": setup.spec.label, "item": item, "reason": reason}
                if record not in skipped:
                    skipped.append(record)
        manifest = _manifest(plan, run_id, started_at, env, skipped)
        if finished:
            manifest["finished"] = datetime.now(UTC).isoformat()
            manifest["wall_s"] = round(time.perf_counter() - started, 3)
        results.write_json(plan.out / "manifest.json", manifest)
        results.write_json(plan.out / "runs" / f"{run_id}.json", manifest)
        return manifest

    save()
    pending = [u for u in plan.units if u.state == "pending"]
    rows_written = 0
    rows_by_table: dict[str, int] = {}

    def finished(unit: WorkUnit, outcome: dict[str, Any], index: int) -> None:
        nonlocal rows_written
        unit.state, unit.reason = outcome["state"], outcome.get("reason", "")
        unit.wall_s = outcome.get("wall_s", 0.0)
        unit.rows = outcome.get("rows", 0)
        rows_written += unit.rows
        for name, count in outcome.get("rows_by_table", {}).items():
            rows_by_table[name] = rows_by_table.get(name, 0) + count
        if unit.state == "failed":
            warnings.warn(
                f"unit {unit.unit_id} ({unit.model.label} × {unit.explainer.label}) failed: {unit.reason}",
                RuntimeWarning,
                stacklevel=1,
            )
        save()
        if progress is not None:
            progress(unit, index, len(pending))

    if executor == "local":
        for index, unit in enumerate(pending):
            finished(unit, execute_unit(plan, unit, run_id), index + 1)
    elif executor == "ray":
        from .ray_executor import run_units_on_ray

        run_units_on_ray(plan, pending, run_id, finished, address=address)
    else:
        raise XaibenchError(f"unknown executor {executor!r}; use 'local' or 'ray'")
    manifest = save(finished=True)
    count = lambda state: sum(1 for u in plan.units if u.state == state)  # noqa: E731
    return RunReport(
        run_id=run_id,
        out=plan.out,
        units_done=count("done"),
        units_existing=count("existing"),
        units_incompatible=count("incompatible"),
        units_failed=count("failed"),
        rows_written=rows_written,
        rows_by_table=rows_by_table,
        wall_s=time.perf_counter() - started,
        manifest=manifest,
    )
