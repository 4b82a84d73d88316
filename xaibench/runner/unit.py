"""One work unit, as small stages: load and explain the originals, score their faithfulness,
compare sweep settings, run each attack; return the unit's rows as Arrow tables."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from torch import Tensor

from .. import registry
from ..types import AttackContext, Explainer, Oracle
from . import degenerate, faithfulness_rows
from .attack_rows import attack_unit
from .model_access import ModelAccess, tune_access
from .noise_floor import noise_floors
from .outputs import finite
from .plan import WorkUnit
from .resources import Resources
from .sensitivity import sensitivity_rows
from .tables import UnitTables, shared_columns


@dataclass
class UnitRun:
    """What the stages of one unit share."""

    unit: WorkUnit
    res: Resources
    plugins: dict[str, dict[str, dict[str, Any]]]
    explainer: Explainer
    access: ModelAccess
    batch: Any
    robustness: list[tuple[Any, Any]]  # (metric, spec)
    faithfulness: list[tuple[Any, Any]]  # those that score this explainer
    tables: UnitTables
    probs: Tensor | None = None
    predicted: Tensor | None = None
    noise_ids: list[str] | None = None
    clean: Tensor | None = None
    clean_finite: Tensor | None = None
    clean_kinds: list[str] | None = None  # per original: "" / "all-zero" / "constant" (degenerate.py)
    clean_gap: Tensor | None = None
    floors: dict[str, list[float]] | None = None

    @property
    def suite(self) -> Any:
        return self.res.suite


def _tune(run: UnitRun) -> None:
    """With ``batch_size = "auto"``: measure the fastest chunk sizes (cached) on one image."""
    tune_access(run.access, run.batch.pixels, run.unit.model, run.unit.explainer.name, run.unit.explainer_params,
                run.suite, run.res.device)


def _start(unit: WorkUnit, res: Resources, plugins: dict[str, Any]) -> UnitRun | None:
    suite = res.suite
    classifier = res.classifier(unit.model)
    explainer = registry.explainers.get(unit.explainer.name)(classifier, **unit.explainer_params)
    access = ModelAccess(
        classifier, explainer, res.device, res.chunk_sizes,
        model_label=unit.model.label, explainer_label=unit.explainer.label, precision=suite.precision,
    )
    pairs = list(zip(res.metrics(), suite.metrics, strict=True))
    batch = res.dataset(unit.model).load(list(unit.indices))
    if len(batch) == 0:
        return None
    return UnitRun(
        unit, res, plugins, explainer, access, batch,
        robustness=[(m, s) for m, s in pairs if not faithfulness_rows.is_faithfulness(m)],
        # A [[metrics]] entry may name the explainers it scores (``explainers = [...]``).
        faithfulness=[
            (m, s) for m, s in pairs if faithfulness_rows.is_faithfulness(m) and s.applies_to(unit.explainer.label)
        ],
        tables=UnitTables(),
    )


def _explain_originals(run: UnitRun) -> None:
    access, pixels = run.access, run.batch.pixels
    run.probs = access.probabilities(pixels)
    run.predicted = run.probs.argmax(dim=1)
    # Common random numbers: an original and all its corrupted copies share the noise of the
    # original's id, so E(x) and E(x̂) differ by the attack, not by two random draws.
    run.noise_ids = list(run.batch.ids)
    run.clean = access.explain(pixels, run.predicted, run.noise_ids)
    run.clean_gap = access.completeness_gap(pixels, run.predicted, run.clean)
    run.clean_finite = finite(run.clean)
    run.clean_kinds = degenerate.map_kinds(run.clean)  # once per original, not per attack row
    run.floors = noise_floors(access, run.robustness, run.noise_ids, pixels, run.predicted, run.probs, run.clean)


def _attack(run: UnitRun) -> None:
    suite, res = run.suite, run.res
    pool = res.pool_probabilities(run.unit.model)
    oracle = Oracle(run.access.probabilities, run.access.explain)
    context = AttackContext(
        original_ids=list(run.batch.ids),
        probs=run.probs,
        pool=pool.images,
        pool_probs=pool.probs,
        seed=suite.seed,
        pool_labels=pool.labels,
    )
    for spec, attack in zip(suite.attacks, res.attacks(), strict=True):
        attack_unit(run, spec, attack, oracle, context)


@dataclass
class UnitOutput:
    """A unit's tables, and the ids of its images that could not be read (then it is incomplete)."""

    tables: dict[str, pa.Table]
    unread: list[str]
    images_read: int


def run_unit(unit: WorkUnit, res: Resources, plugins: dict[str, Any], run_id: str) -> UnitOutput:
    """Compute one unit: robustness, faithfulness and sensitivity rows and examples."""
    started = time.perf_counter()
    run = _start(unit, res, plugins)
    if run is None:
        return UnitOutput({}, list(unit.image_ids), 0)
    read = set(run.batch.ids)
    unread = [image_id for image_id in unit.image_ids if image_id not in read]
    if run.suite.batch_size == "auto":
        _tune(run)
    _explain_originals(run)
    if run.faithfulness:
        faithfulness_rows.score_clean(run)
    if unit.explainer.sweep is not None:
        run.tables.add("sensitivity", sensitivity_rows(unit, res, run.batch, run.clean, run.predicted))
    if run.suite.attacks:
        _attack(run)
    shared = shared_columns(
        unit, run.suite, run.access.classifier, run.access, res.device, run_id, time.perf_counter() - started
    )
    labels = {"suite": run.suite.name, "model": unit.model.label, "explainer": unit.explainer.label}
    return UnitOutput(run.tables.arrow(shared, labels), unread, len(run.batch.ids))
