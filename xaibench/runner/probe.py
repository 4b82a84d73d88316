"""``xaibench plan``: count a plan's work and time it with a short probe on this device.

The probe is the chunk tuner itself (``tune_access``): a few batches of one original per
model × explainer with pending units, at each candidate chunk size, cached in the user cache,
so the run that follows starts with the chunk sizes measured here instead of measuring again.
With a fixed ``batch_size`` the probe times two batches of that size. The time per image of the
chosen chunk, times the counts of ``cost.py``, is the estimate.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch

from .. import registry
from .chunking import ChunkSizes, measure_best_size
from .cost import PairCost, pair_costs
from .faithfulness_rows import is_faithfulness
from .model_access import ModelAccess, tune_access
from .plan import Plan


@dataclass
class PlanCost:
    """What ``xaibench plan`` reports: per model × explainer costs, and the probe's own time."""

    suite: str
    device: str
    pairs: list[PairCost]
    probe_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def estimate_s(self) -> float | None:
        values = [p.estimate_s for p in self.pairs]
        return None if any(v is None for v in values) else float(sum(values))  # type: ignore[arg-type]

    def total(self, attribute: str) -> int:
        return sum(getattr(p, attribute) or 0 for p in self.pairs)

    def record(self) -> dict[str, Any]:
        return {
            "suite": self.suite, "device": self.device, "probe_s": self.probe_s, "estimate_s": self.estimate_s,
            "pairs": [p.record() for p in self.pairs], "notes": list(self.notes),
        }


def _seconds_per_image(access: ModelAccess, pixels: Any, sizes: dict[str, int]) -> dict[str, float]:
    """Seconds per image of each stage at its chunk size, timed now: a warm-up batch, then the
    median of up to three (a cached tuning may come from a busier or quieter moment)."""
    largest = max(sizes.values())
    images = pixels[:1].repeat(largest, 1, 1, 1).to(access.device)
    target = access.classifier(images[:1]).argmax(dim=1).repeat(largest)

    def forward(n: int) -> None:
        access.logits(images[:n])

    def explain(n: int) -> None:
        access.explain(images[:n], target[:n])

    seconds = {}
    for stage, compute in (("forward", forward), ("explain", explain)):
        _, timings = measure_best_size(compute, [sizes[stage]], budget_s=15.0)
        seconds[stage] = next(iter(timings.values()))
    return seconds


def _metric_seconds_per_row(access: ModelAccess, pixels: Any, metrics: list[Any], rows: int = 8) -> float:
    """Seconds per robustness row of the suite's robustness metrics (ranking explanations of a
    224 px image costs tens of milliseconds a row on a CPU), on ``rows`` noisy copies of one
    original and its explanation."""
    robust = [m for m in metrics if not is_faithfulness(m) and callable(m)]
    if not robust:
        return 0.0
    generator = torch.Generator().manual_seed(0)
    original = pixels[:1].repeat(rows, 1, 1, 1)
    corrupted = (original + 0.02 * torch.randn(original.shape, generator=generator)).clamp(0, 1)
    logits = access.logits(original[:1])
    explanation = access.explain(original[:1], logits.argmax(dim=1)).repeat(rows, 1, 1, 1)
    tensors = {
        "original": original, "corrupted": corrupted, "expl_original": explanation,
        "expl_corrupted": explanation + 0.1 * explanation.std() * torch.randn(explanation.shape, generator=generator),
        "probs_original": torch.softmax(logits, dim=1).repeat(rows, 1), "probs_corrupted": torch.softmax(logits, dim=1).repeat(rows, 1),
    }

    def compute(n: int) -> None:
        for metric in robust:
            metric(**{name: tensors[name][:n] for name in getattr(metric, "needs", tensors)})

    _, timings = measure_best_size(compute, [rows], budget_s=10.0)
    return next(iter(timings.values()))


def _probe_pair(plan: Plan, cost: PairCost, unit: Any, chunk_sizes: ChunkSizes) -> None:
    """Time one model × explainer. ``chunk_sizes`` is shared by the probe as the run shares
    its own: a model's forward chunk is tuned once, by its first pair, for all its pairs."""
    res = plan.resources()
    classifier = res.classifier(unit.model)
    explainer = registry.explainers.get(unit.explainer.name)(classifier, **unit.explainer_params)
    access = ModelAccess(
        classifier, explainer, res.device, chunk_sizes,
        model_label=unit.model.label, explainer_label=unit.explainer.label, precision=plan.suite.precision,
    )
    pixels = res.dataset(unit.model).load([unit.indices[0]]).pixels
    if len(pixels) == 0:
        return
    if plan.suite.batch_size == "auto":  # the run's chunk sizes: measured (or cached) as the run does
        tune_access(access, pixels, unit.model, unit.explainer.name, unit.explainer_params, plan.suite, res.device)
    cost.chunks = {"explain": chunk_sizes.get(access.explain_key), "forward": chunk_sizes.get(access.forward_key)}
    seconds = _seconds_per_image(access, pixels, cost.chunks)
    cost.explain_s, cost.forward_s = seconds["explain"], seconds["forward"]
    cost.row_s = _metric_seconds_per_row(access, pixels, res.metrics()) if cost.rows else 0.0


def estimate(plan: Plan, *, probe: bool = True) -> PlanCost:
    """Count the pending work of ``plan`` and, with ``probe``, time it on this device."""
    res = plan.resources()
    attacks = res.attacks()
    models = {u.model.label: u.model for u in plan.units}
    shapes = {label: (res.dataset(m).channels, *res.dataset(m).input_size) for label, m in models.items()}
    cached = {label: res.pool_cached(m) for label, m in models.items()}
    sizes = {label: len(res.pool(m)) for label, m in models.items()}
    costs = pair_costs(plan, attacks, shapes, cached, sizes)
    started = time.perf_counter()
    if probe:
        first = {}
        for unit in plan.pending():
            first.setdefault((unit.model.label, unit.explainer.label), unit)
        chunk_sizes = ChunkSizes(plan.suite.batch_size if plan.suite.batch_size != "auto" else 1)
        for cost in costs:
            unit = first.get((cost.model, cost.explainer))
            if unit is not None:
                _probe_pair(plan, cost, unit, chunk_sizes)
    notes = []
    if any(getattr(m, "category", "") == "faithfulness" for m in res.metrics()):
        notes.append("the faithfulness metrics' perturbation passes are not in the estimate")
    if any(c.passes is None for c in costs if c.pending):
        notes.append("an explainer that does not declare passes_per_image shows its passes as '?'")
    return PlanCost(plan.suite.name, str(plan.device), costs, time.perf_counter() - started, notes)
