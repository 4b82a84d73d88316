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

    return tqdm(total=total, unit="unit", desc="xaibench")


def execute(suite: Any, out: str | Path, *, progress: bool = True, executor: str = "local",
            address: str | None = None, temporary: bool = False) -> Results:
    """Plan ``suite`` into ``out``, run its pending units (resume skips the others), return the results."""
    from ..runner import build_plan, run_plan

    plan = build_plan(suite, Path(out))
    bar = progress_bar(plan.count("pending"), progress)

    def advance(unit: Any, done: int, total: int) -> None:
        if bar is not None:
            bar.set_postfix_str(f"{unit.model.label} × {unit.explainer.label}", refresh=False)
            bar.update(1)

    try:
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
    from ..errors import ConfigError
    from ..runner.suite import OVERRIDES, load_suite

    unknown = sorted(set(overrides) - set(OVERRIDES))
    if unknown:
        raise ConfigError(f"run() got unknown override(s) {', '.join(unknown)}; known: {', '.join(OVERRIDES)}")

    return execute(load_suite(str(suite), overrides), out, progress=progress, executor=executor, address=address)


def load(results_dir: str | Path) -> Results:
    """A results folder written by ``xaibench run``, ``xaibench.run`` or ``Results.save``."""
    return Results(results_dir)
