"""The plan: every work unit of a suite as a frozen, serialisable spec, and nothing loaded.

``build_plan`` loads what planning needs (each model, to sample its originals, check which
explainers it supports and choose converged steps) through ``Resources``, a per-process cache,
so the run that follows reuses them; the ``Plan`` itself holds only plain data: the suite,
the output folder, the device, the units and their states, the plugin records and the
convergence choices. A Ray task receives one ``WorkUnit`` and loads only its own model and data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .. import registry
from ..device import resolve_device
from ..errors import ConfigError, ResourceUnavailableError, XaibenchError
from ..hashing import stable_hash
from . import provenance, results
from .convergence import converge
from .memory_check import check_memory
from .out_folder import prepare_out
from .resources import Resources, shared_resources
from .resume_check import incomplete_reason, quarantine
from .suite import PluginSpec, Suite

# 3: labels and ``attack_name`` as columns in every part, examples and attacked faithfulness
# rows carry the attack's own columns, plugin code identity in the unit id (issue 12).
RESULTS_FORMAT = 3


@dataclass(frozen=True)
class WorkUnit:
    """One model × explainer × chunk of originals: everything a worker needs to compute it."""

    unit_id: str
    model: PluginSpec
    explainer: PluginSpec
    explainer_params: dict[str, Any]
    indices: tuple[int, ...]
    image_ids: tuple[str, ...]
    example_images: int = 0  # how many of the unit's first originals keep an example
    incompatible: str = ""  # why the planner skips it ("" = it runs)

    def marker(self, out: Path) -> Path:
        return results.unit_marker(out, self.unit_id)


@dataclass
class UnitStatus:
    """What happened to a unit in this run (the manifest lists it)."""

    state: str = "pending"  # pending | done | existing | incompatible | failed | incomplete | leased
    reason: str = ""
    rows: int = 0
    wall_s: float = 0.0
    traceback: str = ""  # a failed unit's traceback (manifest; `xaibench --debug run` prints it)


@dataclass
class Plan:
    suite: Suite
    out: Path
    device: str
    units: list[WorkUnit]
    status: dict[str, UnitStatus]
    #: Per kind, per label: what the results record about each plugin (provenance.plugin_record).
    plugins: dict[str, dict[str, dict[str, Any]]]
    #: Per model: its provenance and how many originals it has.
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Per model × explainer with a ``max_completeness_gap``: the steps chosen (convergence.py).
    convergence: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def resources(self) -> Resources:
        """The loaded models, data and caches of this plan in this process (built on demand)."""
        return shared_resources(self.suite, self.out, self.device)

    def pending(self) -> list[WorkUnit]:
        return [u for u in self.units if self.status[u.unit_id].state == "pending"]

    def count(self, state: str) -> int:
        return sum(1 for s in self.status.values() if s.state == state)

    def unit_records(self) -> list[dict[str, Any]]:
        records = []
        for unit in self.units:
            status = self.status[unit.unit_id]
            records.append({
                "unit_id": unit.unit_id,
                "model": unit.model.label,
                "explainer": unit.explainer.label,
                "image_ids": list(unit.image_ids),
                "state": status.state,
                "reason": status.reason,
                "rows": status.rows,
                "wall_s": round(status.wall_s, 3),
                **({"traceback": status.traceback} if status.traceback else {}),
                "path": str(unit.marker(self.out)),
            })
        return records


def explainer_params(spec: PluginSpec, seed: int) -> dict[str, Any]:
    """Randomness flows from the suite seed: a random explainer's own seed defaults to it."""
    params = dict(spec.params)
    declared = {p.name for p in registry.explainers.params(spec.name)}
    if "seed" in declared and "seed" not in params:
        params["seed"] = seed
    return params


def _check_explainer(spec: PluginSpec, params: dict[str, Any], classifier: Any, suite: Suite, index: int) -> str:
    """Why ``spec`` cannot explain ``classifier`` ("" if it can); bad values fail here, before any work."""
    explainer_cls = registry.explainers.get(spec.name)
    check = getattr(explainer_cls, "incompatibility", None)
    reason = check(classifier) if check is not None else None
    if reason:
        return str(reason)
    try:
        explainer_cls(classifier, **params)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"invalid parameters for explainer {spec.name!r}: {exc}", file=suite.source, key=f"explainers[{index}]"
        ) from None
    except ConfigError as exc:
        raise ConfigError(str(exc), file=suite.source, key=exc.key or f"explainers[{index}]") from None
    return ""


def _load_models(suite: Suite, res: Resources) -> list[PluginSpec]:
    """Load every model and its dataset; every missing piece is listed in one error."""
    missing: list[str] = []
    loaded: list[PluginSpec] = []
    for spec in suite.models:
        try:
            res.classifier(spec)
        except ResourceUnavailableError as exc:
            missing.append(f"model {spec.label!r}: {exc}")
            continue
        loaded.append(spec)
    for spec in loaded:
        try:
            res.dataset(spec)
        except ResourceUnavailableError as exc:
            missing.append(f"dataset {suite.dataset.name!r}: {exc}")
            break
        if not res.originals(spec):
            raise XaibenchError(f"the dataset {suite.dataset.name!r} has no images")
    if not suite.models:
        raise XaibenchError("the suite names no model")
    if missing:
        if not loaded:  # no model loaded, so the dataset was not tried: try it so the message lists everything
            message = res.dataset_error()
            if message:
                missing.append(f"dataset {suite.dataset.name!r}: {message}")
        raise ResourceUnavailableError(
            f"the suite {suite.name!r} cannot run on this machine; nothing was computed. Missing:\n  - "
            + "\n  - ".join(missing)
            + "\nOffline, run: xaibench run --suite quickstart   (EfficientNet-Lite0 and the sample "
            "photos ship with the installed packages); with ImageNet images but no hub weights, replace "
            "the models with offline ones: --model efficientnet_lite0 --model efficientnet_lite1 --model "
            "efficientnet_lite2"
        )
    return loaded


def plugin_records(suite: Suite, res: Resources) -> dict[str, dict[str, dict[str, Any]]]:
    """Per kind and label, what the results keep about each plugin of the suite."""
    records: dict[str, dict[str, dict[str, Any]]] = {
        "models": {s.label: provenance.plugin_record("models", s) for s in suite.models},
        "datasets": {suite.dataset.label: provenance.plugin_record("datasets", suite.dataset)},
        "explainers": {
            s.label: provenance.plugin_record("explainers", s, params=explainer_params(s, suite.seed))
            for s in suite.explainers
        },
        "attacks": {},
        "metrics": {},
    }
    for spec, attack in zip(suite.attacks, res.attacks(), strict=True):
        record = provenance.plugin_record("attacks", spec, attack)
        record["reference"] = attack_reference(record, suite.reference)
        records["attacks"][spec.label] = record
    for spec, metric in zip(suite.metrics, res.metrics(), strict=True):
        records["metrics"][spec.label] = provenance.plugin_record("metrics", spec, metric)
    return records


def attack_reference(record: dict[str, Any], suite_reference: dict[str, Any]) -> dict[str, Any]:
    """The attack's reference point: its own, with the suite's ``reference`` on the axes it names."""
    axes = list(record.get("grid_axes") or [])
    own = dict(record.get("reference") or {})
    return {axis: suite_reference.get(axis, own.get(axis)) for axis in axes if axis in suite_reference or axis in own}


def _unit_id(suite: Suite, res: Resources, model: PluginSpec, spec: PluginSpec, params: dict[str, Any],
             image_ids: list[str], plugins: dict[str, dict[str, dict[str, Any]]]) -> str:
    code = {
        kind: [provenance.identity(r) for r in plugins[kind].values()] for kind in ("attacks", "metrics")
    }
    return stable_hash({
        "format": RESULTS_FORMAT,
        "suite": suite.name,
        "seed": suite.seed,
        "dataset": suite.dataset.key(),
        "pool": [suite.pool_size, len(res.pool(model))],
        "model": {**model.key(), "label": model.label},
        "model_code": provenance.identity(plugins["models"][model.label]),
        "explainer": {"name": spec.name, "label": spec.label, "params": params, "sweep": spec.sweep},
        "explainer_code": provenance.identity(plugins["explainers"][spec.label]),
        "attacks": [s.key() for s in suite.attacks],
        "metrics": [s.key() for s in suite.metrics],
        "code": code,
        "images": image_ids,
        # Only bf16 enters the hash, so fp32 units keep their ids (resume).
        **({"precision": suite.precision} if suite.precision != "fp32" else {}),
    })


def _model_units(suite: Suite, out: Path, res: Resources, model: PluginSpec, plugins: dict[str, Any],
                 convergence: list[dict[str, Any]]) -> list[WorkUnit]:
    ids = res.dataset(model).ids
    originals = res.originals(model)
    units = []
    dataset = res.dataset(model)
    shape = (dataset.channels, *dataset.input_size)
    for index, spec in enumerate(suite.explainers):
        params = explainer_params(spec, suite.seed)
        check_memory(spec, params, shape, res.device, suite, index)
        reason = _check_explainer(spec, params, res.classifier(model), suite, index)
        if not reason and spec.max_completeness_gap is not None:
            params, record = converge(res, model, spec, params, suite, out, RESULTS_FORMAT)
            convergence.append({"model": model.label, "explainer": spec.label, **record})
        for start in range(0, len(originals), suite.images_per_unit):
            chunk = originals[start : start + suite.images_per_unit]
            image_ids = [ids[i] for i in chunk]
            units.append(WorkUnit(
                unit_id=_unit_id(suite, res, model, spec, params, image_ids, plugins),
                model=model,
                explainer=spec,
                explainer_params=params,
                indices=tuple(chunk),
                image_ids=tuple(image_ids),
                # The first `examples` originals of each model × explainer keep an example.
                example_images=max(0, min(len(chunk), suite.examples - start)),
                incompatible=reason,
            ))
    return units


def pool_notes(suite: Suite, res: Resources, loaded: list[PluginSpec]) -> list[str]:
    """What the run uses where it differs from what the suite asked for: fewer classes than
    ``n_classes``, and what the attacks say about each model's pool (fewer attack images)."""
    notes = []
    for model in loaded:
        asked = None if suite.n_classes is None else suite.n_classes * suite.per_class
        if asked is not None and suite.limit is not None:
            asked = min(asked, suite.limit)
        got = len(res.originals(model))
        if asked is not None and got < asked:
            notes.append(
                f"n_classes = {suite.n_classes}, but the dataset of {model.label} has "
                f"{res.dataset(model).num_classes} classes: {got} originals are used"
            )
        for spec, attack in zip(suite.attacks, res.attacks(), strict=True):
            note = attack.pool_note(len(res.pool(model))) if callable(getattr(attack, "pool_note", None)) else None
            if note:
                notes.append(f"{spec.label} on {model.label}: {note}")
    return notes


def _resume_status(unit: WorkUnit, out: Path, stamp: str, notes: list[str]) -> UnitStatus:
    """A unit with a marker is resumed only when its parts are all there and readable."""
    reason = incomplete_reason(out, unit.unit_id)
    if not reason:
        return UnitStatus("existing", "already complete (resumed)")
    moved = quarantine(out, unit.unit_id, stamp)
    notes.append(
        f"unit {unit.unit_id} ({unit.model.label} × {unit.explainer.label}) is recomputed: {reason}"
        + (f"; its files were moved to {out / '_quarantine' / stamp}" if moved else "")
    )
    return UnitStatus(reason=f"recomputed: {reason}")


def build_plan(suite: Suite, out: Path, *, device: str | None = None) -> Plan:
    """Load every model and dataset, sample the originals, list the units.

    Everything that can be missing (hub weights, ImageNet, a writable results folder) is
    checked here, all at once, before any attribution is computed: the error lists every
    missing piece. A unit whose marker exists but whose parts are missing or damaged is
    recomputed (``resume_check.py``).
    """
    out = Path(out)
    prepare_out(out)
    res = shared_resources(suite, out, str(resolve_device(device or suite.device)))
    loaded = _load_models(suite, res)
    plugins = plugin_records(suite, res)
    units: list[WorkUnit] = []
    convergence: list[dict[str, Any]] = []
    for model in loaded:
        units.extend(_model_units(suite, out, res, model, plugins, convergence))
    notes = pool_notes(suite, res, loaded)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    status = {}
    for unit in units:
        if unit.incompatible:
            status[unit.unit_id] = UnitStatus("incompatible", unit.incompatible)
        elif unit.marker(out).exists():
            status[unit.unit_id] = _resume_status(unit, out, stamp, notes)
        else:
            status[unit.unit_id] = UnitStatus()
    models = {
        m.label: {"provenance": res.classifier(m).provenance(), "originals": len(res.originals(m))} for m in loaded
    }
    return Plan(suite, out, str(res.device), units, status, plugins, models, convergence, notes)
