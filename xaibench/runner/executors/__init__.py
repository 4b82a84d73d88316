"""Executors run a plan's pending units; they all implement ``Executor`` and never re-plan.

``LocalExecutor`` runs units one after another in this process; ``RayExecutor`` sends each unit
spec to a Ray task that loads only its own model and data (``executors/ray.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from ..plan import Plan, WorkUnit

#: Called after each unit with (unit, outcome, units finished so far).
Finished = Callable[[WorkUnit, dict[str, Any], int], None]


class Executor(Protocol):
    def run(self, plan: Plan, units: list[WorkUnit], run_id: str, finished: Finished) -> None: ...


def executor_for(name: str | Executor, address: str | None = None) -> Executor:
    """``"local"``, ``"ray"`` or an ``Executor`` instance."""
    from ...errors import XaibenchError

    if not isinstance(name, str):
        return name
    if name == "local":
        from .local import LocalExecutor

        return LocalExecutor()
    if name == "ray":
        from .ray import RayExecutor

        return RayExecutor(address)
    raise XaibenchError(f"unknown executor {name!r}; use 'local' or 'ray'")


__all__ = ["Executor", "Finished", "executor_for"]
