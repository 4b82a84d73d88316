"""Work units as Ray tasks: the same Parquet layout and rows as the local executor.

A task receives its unit spec (plain data: the suite, the unit, the plugin records) and loads
only its own model and data through the worker process's ``Resources`` (kept between tasks, so
a worker loads each model once). It never re-plans. The driver collects outcomes and keeps the
manifest. On CUDA every task asks Ray for one GPU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...errors import XaibenchError
from ..plan import Plan, WorkUnit
from . import Finished


def run_remote_unit(suite: Any, out: str, device: str, unit: WorkUnit, plugins: dict[str, Any], run_id: str) -> dict[str, Any]:
    """The task body (also callable in-process, which the tests use)."""
    from ..commit import execute_unit
    from ..resources import shared_resources

    res = shared_resources(suite, Path(out), device)
    before = set(res.loaded_models())
    outcome = execute_unit(unit, res, plugins, run_id)
    # What this task loaded itself (the worker may hold models of its earlier tasks).
    outcome["models_loaded_by_task"] = sorted(set(res.loaded_models()) - before)
    return outcome


class RayExecutor:
    def __init__(self, address: str | None = None):
        self.address = address

    def _ray(self) -> Any:
        try:
            import ray
        except ImportError as exc:
            raise XaibenchError(
                "the Ray executor needs the 'ray' package: pip install 'xaibench[ray]' (or pip install ray)"
            ) from exc
        return ray

    def run(self, plan: Plan, units: list[WorkUnit], run_id: str, finished: Finished) -> None:
        ray = self._ray()
        started_here = False
        if not ray.is_initialized():
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
            started_here = True
        try:
            options: dict[str, Any] = {"max_retries": 2}
            if plan.device.startswith("cuda"):
                options["num_gpus"] = 1
            remote = ray.remote(**options)(run_remote_unit)
            out = str(plan.out.resolve())
            suite_ref, plugins_ref = ray.put(plan.suite), ray.put(plan.plugins)
            pending = {remote.remote(suite_ref, out, plan.device, u, plugins_ref, run_id): u for u in units}
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
