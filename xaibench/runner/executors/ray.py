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


def check_address(address: str, *, timeout_s: float = 5.0) -> None:
    """A malformed or unreachable ``--address`` is refused in one line, before anything is loaded.

    ``auto`` (the cluster Ray finds on this machine) is left to Ray; ``[ray://]host:port`` must
    parse and accept a TCP connection within ``timeout_s``.
    """
    import socket

    if address in ("auto", "local"):
        return
    rest = address.removeprefix("ray://")
    host, sep, port = rest.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise XaibenchError(
            f"malformed Ray address {address!r}: expected host:port (e.g. 10.0.0.5:6379), "
            "ray://host:10001 or auto; omit --address to start a local cluster"
        )
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            pass
    except OSError as exc:
        raise XaibenchError(
            f"cannot reach a Ray cluster at {address!r} ({exc.strerror or type(exc).__name__}); is it "
            "running ('ray status' on the head node)? omit --address to start a local cluster"
        ) from None


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
            if self.address is not None:
                check_address(self.address)
            try:
                ray.init(address=self.address, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
            except (ConnectionError, ValueError, RuntimeError, TimeoutError) as exc:
                raise XaibenchError(f"cannot start or join the Ray cluster ({type(exc).__name__}: {exc})") from None
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
