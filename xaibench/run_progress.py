"""The progress of ``xaibench run`` in images explained, inside units too, with an ETA.

The total is the plan's count of images to explain (``runner/cost.py``: each original, its
corrupted copies, its attack images), so a two-hour unit moves the bar as its explain chunks
finish instead of sitting at 0 %. When a unit ends the bar is set to the planned count of the
units finished, so a unit that explained fewer images than planned (unreadable images, a pool
too small for every attack image) or more (noise floors) does not make the bar drift.
"""

from __future__ import annotations

import time
from typing import Any

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from .runner.cost import planned_images


class RunProgress:
    """A rich bar over images explained; ``unit_done`` is the runner's per-unit callback and
    ``explained`` the in-unit listener (``runner.unit_progress.reporting``)."""

    def __init__(self, plan: Any, console: Any):
        self.planned = planned_images(plan)
        self.total = sum(self.planned.values())
        self.finished = 0  # planned images of the finished units
        self.current = 0  # images reported by the running unit
        self.units = 0
        self.started = time.perf_counter()
        self.progress = Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[done]}"),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self.task = self.progress.add_task("images", total=max(self.total, 1), done="", rate="")

    def __enter__(self) -> RunProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)

    def _show(self, description: str | None = None) -> None:
        completed = min(self.finished + self.current, self.total)
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        fields = {
            "done": f"{completed}/{self.total} images, {self.units}/{len(self.planned)} units",
            "rate": f"{completed / elapsed:.1f} img/s",
        }
        if description is not None:
            fields["description"] = description
        self.progress.update(self.task, completed=completed, **fields)

    def explained(self, count: int) -> None:
        self.current += count
        self._show()

    def unit_done(self, unit: Any, done: int, total: int) -> None:
        self.finished += self.planned.get(unit.unit_id, 0)
        self.current = 0
        self.units = done
        self._show(f"{unit.model.label} × {unit.explainer.label}")
