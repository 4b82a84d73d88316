"""``xaibench.run`` and ``xaibench.load``: a suite into a results folder, and back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .results import Results


def progress_bar(total: int, enabled: bool) -> Any:
    """A tqdm bar that renders in a terminal and in Jupyter (``tqdm.auto``); None if disabled."""
    if not enabled or total == 0:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="img", desc="xaibench", unit_scale=True)


def execute(suite: Any, out: str | Path, *, progress: bool = True, executor: str = "local",
            address: str | None = None, temporary: bool = False) -> Results:
    """Plan ``suite`` into ``out``, run its pending units (resume skips the others), return the results.

    The bar counts images explained (inside units too, with an ETA), as ``xaibench run``'s.
    """
    from ..runner import build_plan, run_plan
    from ..runner.cost import planned_images
    from ..runner.unit_progress import reporting

    plan = build_plan(suite, Path(out))
    planned = planned_images(plan) if progress else {}
    bar = progress_bar(sum(planned.values()), progress)
    state = {"finished": 0}

    def explained(count: int) -> None:
        if bar is not None:
            bar.update(min(count, bar.total - bar.n))

    def advance(unit: Any, done: int, total: int) -> None:
        if bar is not None:
            state["finished"] += planned.get(unit.unit_id, 0)
            bar.set_postfix_str(f"{done}/{total} units, {unit.model.label} × {unit.explainer.label}", refresh=False)
            bar.update(state["finished"] - bar.n)  # the planned count of finished units (no drift)

    try:
        with reporting(explained):
            report = run_plan(plan, progress=advance, executor=executor, address=address)
    finally:
        if bar is not None:
            bar.close()
    return Results(out, report=report, temporary=temporary)


def run(suite: str | Path, out: str | Path = "results", *, progress: bool = True, executor: str = "local",
        address: str | None = None, **overrides: Any) -> Results:
    """Run a built-in suite (``"quickstart"``) or a suite file, as ``xaibench run`` does.

    ``overrides`` are the command line's: ``device``, ``batch_size``, ``seed``, ``limit``,
    ``data``, ``precision``, ``n_classes``, ``models`` (a list of model names: replaces the
    suite's models) and ``explainers`` (a list of the suite's explainer labels: keeps only
    those). Finished units in ``out`` are resumed, not recomputed.
    """
    suite_spec = _load(suite, overrides, "run")
    return execute(suite_spec, out, progress=progress, executor=executor, address=address)


def plan(suite: str | Path, out: str | Path = "results", *, probe: bool = True, **overrides: Any) -> Any:
    """What ``run(suite, out, **overrides)`` would compute, and how long it would take here.

    Returns a ``PlanCost`` (``xaibench/runner/probe.py``): per model × explainer the pending
    units, originals, corrupted and explained images, forward and backward passes, disk, and
    with ``probe`` the measured seconds per image and the estimated time (``.estimate_s``;
    ``.record()`` is JSON-able). Like ``xaibench plan``: it loads the models and the data, and
    the probe's chunk-size measurement is cached for the run.
    """
    from ..runner import build_plan
    from ..runner.probe import estimate

    return estimate(build_plan(_load(suite, overrides, "plan"), Path(out)), probe=probe)


def _load(suite: str | Path, overrides: dict[str, Any], caller: str) -> Any:
    from ..errors import ConfigError
    from ..runner.suite import OVERRIDES, load_suite

    unknown = sorted(set(overrides) - set(OVERRIDES))
    if unknown:
        raise ConfigError(f"{caller}() got unknown override(s) {', '.join(unknown)}; known: {', '.join(OVERRIDES)}")
    return load_suite(str(suite), overrides)


def load(results_dir: str | Path) -> Results:
    """A results folder written by ``xaibench run``, ``xaibench.run`` or ``Results.save``."""
    return Results(results_dir)
