"""Units one after another in this process, sharing the models the planner loaded."""

from __future__ import annotations

from ..commit import execute_unit
from ..plan import Plan, WorkUnit
from ..resources import shared_resources
from . import Finished


class LocalExecutor:
    def run(self, plan: Plan, units: list[WorkUnit], run_id: str, finished: Finished) -> None:
        res = shared_resources(plan.suite, plan.out, plan.device)
        for index, unit in enumerate(units):
            finished(unit, execute_unit(unit, res, plan.plugins, run_id), index + 1)
