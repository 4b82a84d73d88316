"""Chunked, device-aware model passes for one (classifier, explainer) pair of a unit."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from ..device import device_name
from ..errors import XaibenchError
from ..types import Classifier, Explainer
from . import unit_progress
from .chunking import (
    ChunkSizes,
    TuningCache,
    candidate_sizes,
    load_per_cpu,
    measure_best_size,
    run_in_chunks,
)
from .outputs import check_attributions


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
        # Capabilities the explainer declares (types.Explainer); an instance whose ``explain``
        # was replaced (to count calls, to fail like a full GPU) keeps the two-pass path.
        patched = explainer is not None and "explain" in vars(explainer)
        self.fuses_prediction = bool(getattr(explainer, "fuses_prediction", False)) and not patched
        self.reuses_logits = bool(getattr(explainer, "reuses_logits", False))
        # Random explainers take ``noise_ids`` (common random numbers) and get a noise floor.
        self.is_random = bool(getattr(explainer, "is_random", False))

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
        return {"noise_ids": noise_ids[part]} if noise_ids is not None and self.is_random else {}

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
            unit_progress.explained(inputs.shape[0])
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
            unit_progress.explained(inputs.shape[0])
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
        reuse = logits is not None and self.reuses_logits

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
            cache_key = cache.key({**identity, "stage": stage, "device": device_name(self.device), **precision})
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

            load = load_per_cpu()  # before timing: a busy machine's timings are not kept for later runs
            best, timings = measure_best_size(compute, candidates)
            self.sizes.set(key, best, f"measured: {', '.join(f'{k}: {v * 1e3:.1f} ms/img' for k, v in timings.items())}")
            cache.put(cache_key, best, timings, f"{key[0]} × {key[1]} × {stage}", load=load)


def tune_access(access: ModelAccess, pixels: Tensor, model: Any, explainer_name: str, explainer_params: dict[str, Any],
                suite: Any, device: torch.device) -> None:
    """Measure the fastest chunk sizes of ``access`` on the first of ``pixels`` (cached per model ×
    explainer × input × device in the user cache, so the planner's probe and the run share it)."""
    with torch.no_grad():
        target = access.classifier(pixels[:1].to(device)).argmax(dim=1).cpu()
    identity = {
        "model": model.key(),
        "explainer": {"name": explainer_name, "params": explainer_params},
        "input": list(pixels.shape[1:]),
    }
    maximum = suite.max_batch_size if device.type == "cpu" else 4 * suite.max_batch_size
    access.tune(pixels[:1], target, TuningCache(), identity, maximum=maximum)
