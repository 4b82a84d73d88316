"""The runner: suite → plan → units → executor → Parquet (docs/architecture.md).

Public interface::

    plan = build_plan(load_suite("quickstart"), Path("results"))
    report = run_plan(plan, executor="local")      # or "ray", or an Executor
"""

from __future__ import annotations

from .executors import Executor, executor_for
from .executors.local import LocalExecutor
from .executors.ray import RayExecutor
from .model_access import ModelAccess
from .plan import RESULTS_FORMAT, Plan, UnitStatus, WorkUnit, build_plan
from .resources import ReferenceExplanations, Resources, shared_resources
from .run import RunReport, run_plan
from .sensitivity import sensitivity_heatmap
from .suite import Suite, load_suite

__all__ = [
    "RESULTS_FORMAT",
    "Executor",
    "LocalExecutor",
    "ModelAccess",
    "Plan",
    "RayExecutor",
    "ReferenceExplanations",
    "Resources",
    "RunReport",
    "Suite",
    "UnitStatus",
    "WorkUnit",
    "build_plan",
    "executor_for",
    "load_suite",
    "run_plan",
    "sensitivity_heatmap",
    "shared_resources",
]
