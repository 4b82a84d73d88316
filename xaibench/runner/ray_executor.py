"""Run work units as Ray tasks: same Parquet layout, same rows as the local executor.

Each task rebuilds the plan from the suite's raw TOML (cached per worker process, so a
worker loads each model once), runs one unit with the same ``execute_unit`` the local
executor uses, and writes its parts and marker to the shared output folder. The driver only
collects outcomes and keeps the manifest. On CUDA every task asks Ray for one GPU.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import XaibenchError
from .engine import Plan, WorkUnit

_WORKER_PLANS: dict[tuple[Any, ...], Any] = {}


def _worker_plan(raw: dict[str, Any], source: str, overrides: dict[str, Any], out: str, device: str) -> Any:
    import json

    from .engine import build_plan
    from .suite import parse_suite

    key = (json.dumps(raw, sort_keys=True, default=str), source, json.dumps(overrides, sort_keys=True, default=str), out, device)
    if key not in _WORKER_PLANS:
        suite = parse_suite(raw, source, overrides)
        _WORKER_PLANS[key] = build_plan(suite, Path(out), device=device)
    return _WORKER_PLANS[key]


def _run_remote_unit(
    raw: dict[str, Any], source: str, overrides: dict[str, Any], out: str, device: str, unit_id: str, run_id: str
) -> dict[str, Any]:
    from .engine import execute_unit

    plan = _worker_plan(raw, source, overrides, out, device)
    unit = next((u for u in plan.units if u.unit_id == unit_id), None)
    if unit is None:
        return {"state": "failed", "reason": f"worker planned no unit {unit_id} (suite changed?)"}
    return execute_unit(plan, unit, run_id)


def run_units_on_ray(
    plan: Plan,
    units: list[WorkUnit],
    run_id: str,
    finished: Callable[[WorkUnit, dict[str, Any], int], None],
    *,
    address: str | None = None,
) -> None:
    try:
        import ray
    except ImportError as exc:
        raise XaibenchError(
            "the Ray executor needs the 'ray' package: pip install 'xaibench[ray]' (or pip install ray)"
        ) from exc
    started_here = False
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
        started_here = True
    try:
        options: dict[str, Any] = {"max_retries": 2}
        if plan.device.type == "cuda":
            options["num_gpus"] = 1
        remote = ray.remote(**options)(_run_remote_unit)
        suite = plan.suite
        device = str(plan.device)
        pending = {
            remote.remote(suite.raw, suite.source, suite.overrides, str(plan.out.resolve()), device, u.unit_id, run_id): u
            for u in units
        }
        done = 0
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                unit = pending.pop(ref)
                try:
                    outcome = ray.get(ref)
                except Exception as exc:  # a task that died (its worker crashed) after retries
                    outcome = {"state": "failed", "reason": f"Ray task failed: {type(exc).__name__}: {exc}"}
                done += 1
                finished(unit, outcome, done)
    finally:
        if started_here:
            ray.shutdown()
