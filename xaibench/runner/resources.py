"""Loaded objects of a run, cached per process and keyed by their spec.

A unit asks ``Resources`` for its classifier, dataset, originals, attack-image pool (with the
model's probabilities on it, cached on disk), attacks, metrics and chunk sizes. The local
executor and the planner share one ``Resources`` per (suite, output folder, device); a Ray
worker process builds its own on first use and then keeps it, so each worker loads a model once
and only the models of the units it runs.
"""

from __future__ import annotations

import io
import warnings
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .. import registry
from ..device import resolve_device
from ..errors import ResourceUnavailableError
from ..files import write_atomic_bytes
from ..hashing import stable_hash
from ..types import Classifier, ImagePool
from . import results
from .chunking import ChunkSizes
from .model_access import ModelAccess
from .suite import PluginSpec, Suite

#: Bumped when the pool cache's content changes (a stale cache is then a miss).
POOL_CACHE_FORMAT = 2


class ReferenceExplanations:
    """The reference setting's explanations of each sweep, per model and image chunk, kept so
    the units of its variants (which often run after it, on the same chunks) do not recompute
    them. Bounded in bytes, oldest out first; a miss (another process, a resumed run, an
    evicted entry) just recomputes, with the same values.
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


class Pool:
    """The attack-image pool of one model: ids with a loader, probabilities and labels."""

    def __init__(self, images: ImagePool, probs: Tensor, labels: Tensor):
        self.images, self.probs, self.labels = images, probs, labels


class Resources:
    def __init__(self, suite: Suite, out: Path, device: str):
        self.suite = suite
        self.out = Path(out)
        self.device = resolve_device(device)
        default = suite.batch_size if isinstance(suite.batch_size, int) else 8
        self.chunk_sizes = ChunkSizes(default=default)
        self.references = ReferenceExplanations()
        self._classifiers: dict[str, Classifier] = {}
        self._datasets: dict[tuple[int, int, int], Any] = {}
        self._pools: dict[str, Pool] = {}
        self._originals: dict[str, list[int]] = {}
        self._pool_rows: dict[str, list[int]] = {}
        self._attacks: list[Any] | None = None
        self._metrics: list[Any] | None = None

    # -- models and data ------------------------------------------------------------------
    def classifier(self, spec: PluginSpec) -> Classifier:
        if spec.label not in self._classifiers:
            from ..models import load_model

            self._classifiers[spec.label] = load_model(spec.name, **spec.params).to(self.device)
        return self._classifiers[spec.label]

    def loaded_models(self) -> list[str]:
        """Labels of the models this process has loaded (the Ray test checks a task loads one)."""
        return list(self._classifiers)

    def dataset(self, spec: PluginSpec) -> Any:
        """The suite's dataset at the input size and channels of the model ``spec``."""
        classifier = self.classifier(spec)
        key = (*classifier.input_size, classifier.in_channels)
        if key not in self._datasets:
            from ..datasets import load_dataset

            self._datasets[key] = load_dataset(
                self.suite.dataset.name,
                input_size=classifier.input_size,
                channels=classifier.in_channels,
                **self.suite.dataset.params,
            )
        return self._datasets[key]

    def dataset_error(self) -> str:
        """Why the dataset cannot be loaded at all ("" if it can), tried at a default size."""
        from ..datasets import load_dataset

        try:
            load_dataset(self.suite.dataset.name, input_size=(224, 224), channels=3, **self.suite.dataset.params)
        except ResourceUnavailableError as exc:
            return str(exc)
        return ""

    def originals(self, spec: PluginSpec) -> list[int]:
        """The dataset rows of the originals (sampled once per model, then kept)."""
        if spec.label not in self._originals:
            suite = self.suite
            chosen = self.dataset(spec).sample_one_per_class(suite.n_classes, suite.seed, suite.per_class)
            self._originals[spec.label] = chosen[: suite.limit] if suite.limit is not None else chosen
        return self._originals[spec.label]

    def pool(self, spec: PluginSpec) -> list[int]:
        """Dataset rows attack images may come from: all, or ``pool_size`` of them at random
        (drawn once per model: the planner asks for every unit's id)."""
        if spec.label not in self._pool_rows:
            size = len(self.dataset(spec))
            rows = list(range(size))
            if self.suite.pool_size is not None and self.suite.pool_size < size:
                generator = torch.Generator().manual_seed(self.suite.seed + 1)
                rows = sorted(torch.randperm(size, generator=generator)[: self.suite.pool_size].tolist())
            self._pool_rows[spec.label] = rows
        return self._pool_rows[spec.label]

    # -- plugins --------------------------------------------------------------------------
    def attacks(self) -> list[Any]:
        if self._attacks is None:
            self._attacks = [registry.attacks.get(s.name)(**s.params) for s in self.suite.attacks]
        return self._attacks

    def metrics(self) -> list[Any]:
        if self._metrics is None:
            self._metrics = [registry.metrics.get(s.name)(**s.params) for s in self.suite.metrics]
        return self._metrics

    # -- the pool's probabilities ---------------------------------------------------------
    def _pool_cache_file(self, spec: PluginSpec) -> Path:
        dataset, rows = self.dataset(spec), self.pool(spec)
        key = stable_hash({"model": spec.key(), "pool": [dataset.ids[i] for i in rows], "format": POOL_CACHE_FORMAT})
        return self.out / "_cache" / f"pool-probs-{results.partition_value(spec.label)}-{key}.npz"

    def pool_cached(self, spec: PluginSpec) -> bool:
        """Whether the pool's probabilities for model ``spec`` are already known (no forward to pay)."""
        if not any(getattr(a, "needs_pool", False) for a in self.attacks()):
            return True
        return spec.label in self._pools or self._pool_cache_file(spec).is_file()

    def pool_probabilities(self, spec: PluginSpec) -> Pool:
        """The attack-image pool of model ``spec`` and its probabilities: once per (model, pool),
        cached on disk under ``OUT/_cache``.

        The pool is streamed through the model in chunks and kept as ids plus a loader, so a 10,000-image ImageNet pool
        costs its probabilities (40 MB), not its pixels (6 GB). Images that cannot be read are
        left out (and recorded by the dataset). The labels are cached beside the probabilities
        (attacks that take images of a class need them); a cache file without labels is a miss.
        """
        if spec.label in self._pools:
            return self._pools[spec.label]
        dataset = self.dataset(spec)
        cache = self._pool_cache_file(spec)
        stored = _read_pool_cache(cache)
        if stored is None:
            access = ModelAccess(self.classifier(spec), None, self.device, self.chunk_sizes, model_label=spec.label)
            stored = _compute_pool(dataset, self.pool(spec), access.probabilities)
            buffer = io.BytesIO()
            ids, probs, labels = stored
            np.savez(buffer, ids=np.array(ids, dtype=str), probs=probs.numpy(), labels=labels.numpy())
            write_atomic_bytes(cache, buffer.getvalue())
        ids, probs, labels = stored
        index_of = {image_id: i for i, image_id in enumerate(dataset.ids)}

        def load(chosen: list[int]) -> Tensor:
            return dataset.load([index_of[ids[r]] for r in chosen]).pixels

        self._pools[spec.label] = Pool(ImagePool(ids, load), probs, labels)
        return self._pools[spec.label]


def _read_pool_cache(path: Path) -> tuple[list[str], Tensor, Tensor] | None:
    """The cached pool, or ``None`` (a miss): a damaged cache file is removed and recomputed."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            if not {"ids", "probs", "labels"} <= set(stored.files):
                return None
            ids, probs, labels = [str(i) for i in stored["ids"]], stored["probs"], stored["labels"]
            if probs.ndim != 2 or len(ids) != probs.shape[0] or labels.shape != (len(ids),):
                raise ValueError(f"inconsistent shapes {probs.shape}, {labels.shape} for {len(ids)} ids")
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        warnings.warn(
            f"xaibench: the cache file {path} is damaged ({type(exc).__name__}: {exc}); removed, recomputing it",
            RuntimeWarning,
            stacklevel=3,
        )
        path.unlink(missing_ok=True)
        return None
    return ids, torch.from_numpy(probs), torch.from_numpy(labels).long()


def _compute_pool(dataset: Any, rows: list[int], probabilities: Any) -> tuple[list[str], Tensor, Tensor]:
    ids: list[str] = []
    parts, label_parts = [], []
    for start in range(0, len(rows), 64):
        batch = dataset.load(rows[start : start + 64])
        ids.extend(batch.ids)
        parts.append(probabilities(batch.pixels))
        label_parts.append(batch.labels.to("cpu", torch.long))
    return ids, torch.cat(parts), torch.cat(label_parts)


#: The most recent Resources per (suite, output folder, device), so ``run_plan`` reuses what
#: ``build_plan`` loaded and a Ray worker keeps its models across tasks. Two entries at most:
#: a long notebook session does not accumulate models.
_SHARED: OrderedDict[tuple[str, str, str], Resources] = OrderedDict()
_SHARED_SIZE = 2


def shared_resources(suite: Suite, out: Path, device: str) -> Resources:
    key = (suite.fingerprint(), str(Path(out).resolve()), str(device))
    if key in _SHARED:
        _SHARED.move_to_end(key)
        return _SHARED[key]
    resources = Resources(suite, out, device)
    _SHARED[key] = resources
    while len(_SHARED) > _SHARED_SIZE:
        _SHARED.popitem(last=False)
    return resources
