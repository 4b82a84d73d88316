"""Run a plan: send its pending units to an executor, keep the manifest current after each."""

from __future__ import annotations

import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from ..errors import OutputError
from ..files import output_error, write_json
from .executors import Executor, executor_for
from .plan import RESULTS_FORMAT, Plan, WorkUnit
from .provenance import environment


@dataclass
class RunReport:
    run_id: str
    out: Path
    units_done: int
    units_existing: int
    units_incompatible: int
    units_failed: int
    units_incomplete: int  # rows written, but some images unreadable: no marker, recomputed next run
    units_leased: int  # in progress in another run (its lease is live): skipped
    rows_written: int  # robustness + faithfulness rows (examples not counted)
    rows_by_table: dict[str, int]
    wall_s: float
    manifest: dict[str, Any]


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]


class Manifest:
    """``manifest.json`` (the latest run) and ``runs/<run id>.json`` (every run), rewritten
    atomically after every unit so a crash leaves an accurate record."""

    def __init__(self, plan: Plan, run_id: str):
        self.plan, self.run_id = plan, run_id
        self.started_at = datetime.now(UTC).isoformat()
        self.started = time.perf_counter()
        self.env = environment(torch.device(plan.device), plan.suite.precision)
        self.res = plan.resources()
        self.skipped: list[dict[str, str]] = []

    def _skipped_images(self) -> list[dict[str, str]]:
        for model in self.plan.suite.models:
            if model.label not in self.res.loaded_models():
                continue
            for item, reason in getattr(self.res.dataset(model), "skipped", []):
                record = {"model": model.label, "item": item, "reason": reason}
                if record not in self.skipped:
                    self.skipped.append(record)
        return self.skipped

    def _datasets(self) -> dict[str, Any]:
        return {
            m.label: self.res.dataset(m).describe() for m in self.plan.suite.models if m.label in self.res.loaded_models()
        }

    def content(self) -> dict[str, Any]:
        plan = self.plan
        return {
            "run_id": self.run_id,
            "results_format": RESULTS_FORMAT,
            "started": self.started_at,
            "finished": None,
            "suite": plan.suite.to_dict(),
            "suite_fingerprint": plan.suite.fingerprint(),
            "environment": self.env,
            "plugins": plan.plugins,
            "models": {label: m["provenance"] for label, m in plan.models.items()},
            "originals": {label: m["originals"] for label, m in plan.models.items()},
            # Per model: its dataset as read (an ImageNet folder's detected layout and label source).
            "datasets": self._datasets(),
            "skipped_images": self._skipped_images(),
            "chunk_sizes": self.res.chunk_sizes.record(),
            "convergence": plan.convergence,
            "notes": plan.notes,
            "units": plan.unit_records(),
        }

    def save(self, finished: bool = False) -> dict[str, Any]:
        manifest = self.content()
        if finished:
            manifest["finished"] = datetime.now(UTC).isoformat()
            manifest["wall_s"] = round(time.perf_counter() - self.started, 3)
        try:
            write_json(self.plan.out / "manifest.json", manifest)
            write_json(self.plan.out / "runs" / f"{self.run_id}.json", manifest)
        except OSError as exc:
            raise output_error(exc, "the results folder", self.plan.out) from None
        return manifest


def run_plan(
    plan: Plan,
    *,
    progress: Callable[[WorkUnit, int, int], None] | None = None,
    run_id: str | None = None,
    executor: str | Executor = "local",
    address: str | None = None,
) -> RunReport:
    """Run every pending unit (``executor``: "local", "ray" or an ``Executor``), writing its
    parts and marker; the manifest is kept current after each unit."""
    run_id = run_id or new_run_id()
    runner = executor_for(executor, address)
    manifest = Manifest(plan, run_id)
    manifest.save()
    pending = plan.pending()
    totals: dict[str, Any] = {"rows": 0, "by_table": {}}

    def finished(unit: WorkUnit, outcome: dict[str, Any], index: int) -> None:
        status = plan.status[unit.unit_id]
        status.state, status.reason = outcome["state"], outcome.get("reason", "")
        status.wall_s, status.rows = outcome.get("wall_s", 0.0), outcome.get("rows", 0)
        status.traceback = outcome.get("traceback", "")
        totals["rows"] += status.rows
        for name, count in outcome.get("rows_by_table", {}).items():
            totals["by_table"][name] = totals["by_table"].get(name, 0) + count
        if status.state == "failed":
            warnings.warn(
                f"unit {unit.unit_id} ({unit.model.label} × {unit.explainer.label}) failed: {status.reason}",
                RuntimeWarning,
                stacklevel=1,
            )
        manifest.save()
        if progress is not None:
            progress(unit, index, len(pending))

    started = time.perf_counter()
    try:
        runner.run(plan, pending, run_id, finished)
    except OutputError:
        try:  # keep the record of the units that did finish, if anything can still be written
            manifest.save(finished=True)
        except OutputError:
            pass
        raise
    record = manifest.save(finished=True)
    return RunReport(
        run_id=run_id,
        out=plan.out,
        units_done=plan.count("done"),
        units_existing=plan.count("existing"),
        units_incompatible=plan.count("incompatible"),
        units_failed=plan.count("failed"),
        units_incomplete=plan.count("incomplete"),
        units_leased=plan.count("leased"),
        rows_written=totals["rows"],
        rows_by_table=totals["by_table"],
        wall_s=time.perf_counter() - started,
        manifest=record,
    )
