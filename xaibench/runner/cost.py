"""What a plan costs: images, model passes, disk and time per model × explainer.

Counted from what the plugins declare (``Attack.images_per_original`` and
``explained_per_original``, an explainer's ``passes_per_image``) and the plan's pending units;
timed from the chunk tuner's measurement of the explain and forward stages on this device
(``probe.py``), so an estimate costs a few batches per model × explainer, not a unit.

Per original of a unit, the runner makes ``C = Σ_attacks images_per_original`` corrupted
images and explains ``1 + C + max_attacks explained_per_original`` images (the original, its
corrupted copies, the attack images shared between attacks); it runs a forward-only pass on
the original and, unless the explainer fuses prediction into its own pass, on each corrupted
image, plus one for the completeness gap of explainers that have one. The attack-image pool is
forwarded once per model (then cached in ``OUT/_cache``). The robustness metrics are timed
per row (ranking two 150,000-entry explanations is not free on a CPU). Not counted: building
the corrupted images, faithfulness metrics' perturbation passes, the noise floors of random
explainers, writing Parquet (docs/performance.md compares the estimate with the run).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from .. import registry

#: Bytes a robustness row takes in Parquet (measured: 2.0 kB on imagenet-lite-fragility, 300
#: rows per part), and an example (original, corrupted copies, maps: ~29 kB at 224 px).
ROW_BYTES = 2000
EXAMPLE_BYTES_224 = 29_000


@dataclass
class PairCost:
    """The pending work of one model × explainer."""

    model: str
    explainer: str
    units: int = 0
    pending: int = 0
    originals: int = 0
    corrupted: int = 0
    explained: int = 0
    forwards: int = 0
    pool_forwards: int = 0
    rows: int = 0
    disk_bytes: int = 0
    passes: tuple[int, int] | None = None  # (forward, backward) per explained image, declared
    explain_s: float | None = None  # seconds per explained image (probe)
    forward_s: float | None = None  # seconds per forward-only image (probe)
    row_s: float | None = None  # seconds per robustness row for the suite's robustness metrics (probe)
    chunks: dict[str, int] = field(default_factory=dict)  # chosen chunk size per stage
    incompatible: str = ""

    @property
    def forward_passes(self) -> int | None:
        """Image-passes forward: the explanations' (declared) plus the forward-only ones."""
        if self.passes is None:
            return None
        return self.explained * self.passes[0] + self.forwards + self.pool_forwards

    @property
    def backward_passes(self) -> int | None:
        return None if self.passes is None else self.explained * self.passes[1]

    @property
    def estimate_s(self) -> float | None:
        if self.pending == 0:
            return 0.0
        if self.explain_s is None or self.forward_s is None:
            return None
        passes = self.explained * self.explain_s + (self.forwards + self.pool_forwards) * self.forward_s
        return passes + self.rows * (self.row_s or 0.0)

    def record(self) -> dict[str, Any]:
        return {
            "model": self.model, "explainer": self.explainer, "units": self.units, "pending": self.pending,
            "originals": self.originals, "corrupted": self.corrupted, "explained": self.explained,
            "forwards": self.forwards, "pool_forwards": self.pool_forwards, "rows": self.rows,
            "forward_passes": self.forward_passes, "backward_passes": self.backward_passes,
            "disk_bytes": self.disk_bytes, "explain_s_per_image": self.explain_s,
            "forward_s_per_image": self.forward_s, "metrics_s_per_row": self.row_s, "chunks": self.chunks, "estimate_s": self.estimate_s,
            "incompatible": self.incompatible,
        }


def per_original(attacks: list[Any]) -> tuple[int, int]:
    """``(corrupted, explained)`` images per original for these attack instances."""
    corrupted = sum(int(a.images_per_original()) for a in attacks)
    shared = max((int(a.explained_per_original()) for a in attacks), default=0)
    return corrupted, 1 + corrupted + shared


def planned_images(plan: Any) -> dict[str, int]:
    """Per pending unit id of ``plan``: the images it will explain (the progress bars' total)."""
    _, explained = per_original(plan.resources().attacks())
    return {u.unit_id: explained * len(u.indices) for u in plan.pending()}


def declared_passes(explainer_name: str, params: dict[str, Any]) -> tuple[int, int] | None:
    declared = getattr(registry.explainers.get(explainer_name), "passes_per_image", None)
    if declared is None:
        return None
    resolved = registry.explainers.resolved_params(explainer_name, params)
    forward, backward = declared(resolved)
    return int(forward), int(backward)


def _explainer_traits(name: str) -> tuple[bool, bool]:
    cls = registry.explainers.get(name)
    return bool(getattr(cls, "fuses_prediction", False)), bool(getattr(cls, "has_completeness", False))


def example_bytes(image_shape: tuple[int, ...]) -> int:
    """Disk of one example, scaled from a 224 px RGB image by pixel count."""
    pixels = math.prod(image_shape[-2:])
    return int(EXAMPLE_BYTES_224 * pixels / (224 * 224))


def pair_costs(plan: Any, attacks: list[Any], image_shapes: dict[str, tuple[int, ...]],
               pool_cached: dict[str, bool], pool_sizes: dict[str, int]) -> list[PairCost]:
    """One :class:`PairCost` per model × explainer of ``plan``, counting its pending units."""
    corrupted_each, explained_each = per_original(attacks)
    costs: dict[tuple[str, str], PairCost] = {}
    pool_charged: set[str] = set()
    for unit in plan.units:
        key = (unit.model.label, unit.explainer.label)
        cost = costs.get(key)
        if cost is None:
            cost = costs[key] = PairCost(*key, passes=declared_passes(unit.explainer.name, unit.explainer_params))
        cost.units += 1
        if unit.incompatible:
            cost.incompatible = unit.incompatible
        if plan.status[unit.unit_id].state != "pending":
            continue
        fuses, completeness = _explainer_traits(unit.explainer.name)
        n = len(unit.indices)
        cost.pending += 1
        cost.originals += n
        cost.corrupted += n * corrupted_each
        cost.explained += n * explained_each
        cost.forwards += n * (1 + (0 if fuses else corrupted_each) + (1 + corrupted_each if completeness else 0))
        cost.rows += n * corrupted_each
        cost.disk_bytes += n * corrupted_each * ROW_BYTES + unit.example_images * example_bytes(image_shapes[unit.model.label])
        model = unit.model.label
        if model not in pool_charged and not pool_cached.get(model, True):
            cost.pool_forwards += pool_sizes.get(model, 0)  # the first pair of a model pays for its pool
            pool_charged.add(model)
    return list(costs.values())
