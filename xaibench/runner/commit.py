"""Compute one unit and commit it: parts first, the marker last.

A unit without its marker is recomputed, and recomputing rewrites the same part names with the
same values, so a crash at any point leaves no duplicate rows. The outcome is plain data, so a
Ray worker returns it as it is.

A unit is complete only when every one of its images was read: one whose images could not all
be read writes the rows it could compute but no marker ("incomplete"), so the next run, after
the files are repaired, computes it again. While a unit is computed its lease
(``leases.py``) keeps other runs off it.
"""

from __future__ import annotations

import time
import traceback
from pathlib import Path
from typing import Any

from ..errors import XaibenchError
from ..files import FULL, NOT_WRITABLE, output_error, write_json
from . import leases, results
from .plan import WorkUnit
from .resources import Resources
from .unit import UnitOutput, run_unit


def _write(unit: WorkUnit, res: Resources, output: UnitOutput, run_id: str, wall: float) -> None:
    out: Path = res.out
    parts = {}
    for name, table in output.tables.items():
        path = results.part_path(out, name, res.suite.name, unit.model.label, unit.explainer.label, unit.unit_id)
        results.write_part(path, table)
        parts[name] = {"path": str(path.relative_to(out)), "rows": table.num_rows}
    if output.unread:
        return  # no marker: not complete
    write_json(unit.marker(out), {"unit_id": unit.unit_id, "run_id": run_id, "parts": parts, "wall_s": wall})


def _outcome(output: UnitOutput, wall: float) -> dict[str, Any]:
    tables = output.tables
    outcome: dict[str, Any] = {
        "state": "done",
        "wall_s": wall,
        "rows": sum(t.num_rows for n, t in tables.items() if n != "examples"),
        "rows_by_table": {n: t.num_rows for n, t in tables.items()},
    }
    if output.unread:
        outcome["state"] = "incomplete"
        outcome["reason"] = (
            f"{len(output.unread)} of {len(output.unread) + output.images_read} images unreadable "
            f"({', '.join(output.unread[:3])}{', …' if len(output.unread) > 3 else ''}); repair them and "
            "re-run to complete the unit"
        )
        outcome["unread"] = list(output.unread)
    return outcome


def execute_unit(unit: WorkUnit, res: Resources, plugins: dict[str, Any], run_id: str) -> dict[str, Any]:
    out: Path = res.out
    if unit.marker(out).exists():  # another run (or worker) finished it meanwhile
        return {"state": "existing", "reason": "written by a concurrent run"}
    try:
        lease = leases.acquire(out, unit.unit_id, run_id)
    except OSError as exc:
        raise output_error(exc, "the results folder", out) from None
    if isinstance(lease, str):
        return {"state": "leased", "reason": lease}
    try:
        if unit.marker(out).exists():  # finished between the check and the lease
            return {"state": "existing", "reason": "written by a concurrent run"}
        return _compute_and_write(unit, res, plugins, run_id)
    finally:
        lease.release()


def _compute_and_write(unit: WorkUnit, res: Resources, plugins: dict[str, Any], run_id: str) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        output = run_unit(unit, res, plugins, run_id)
    except XaibenchError:
        raise
    except OSError as exc:
        if exc.errno in FULL + NOT_WRITABLE:  # the cache could not be written: so will nothing else
            raise output_error(exc, "the results folder", res.out) from None
        return _failed(exc)
    except Exception as exc:  # one broken unit must not lose the others
        return _failed(exc)
    wall = time.perf_counter() - started
    try:
        _write(unit, res, output, run_id, wall)
    except OSError as exc:
        raise output_error(exc, "the results folder", res.out) from None
    return _outcome(output, wall)


def _failed(exc: BaseException) -> dict[str, Any]:
    return {
        "state": "failed",
        "reason": f"{type(exc).__name__}: {exc}",
        "traceback": "".join(traceback.format_exception(exc)),
    }
