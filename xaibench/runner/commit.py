"""Compute one unit and commit it: parts first, the marker last.

A unit without its marker is recomputed, and recomputing rewrites the same part names with the
same values, so a crash at any point leaves no duplicate rows. The outcome is plain data, so a
Ray worker returns it as it is.
"""

from __future__ import annotations

import time
import traceback
from pathlib import Path
from typing import Any

from ..errors import XaibenchError
from ..files import write_json
from . import results
from .plan import WorkUnit
from .resources import Resources
from .unit import run_unit


def execute_unit(unit: WorkUnit, res: Resources, plugins: dict[str, Any], run_id: str) -> dict[str, Any]:
    out: Path = res.out
    marker = unit.marker(out)
    if marker.exists():  # another run (or worker) finished it meanwhile
        return {"state": "existing", "reason": "written by a concurrent run"}
    started = time.perf_counter()
    try:
        tables = run_unit(unit, res, plugins, run_id)
    except XaibenchError:
        raise
    except Exception as exc:  # one broken unit must not lose the others
        return {
            "state": "failed",
            "reason": f"{type(exc).__name__}: {exc}",
            "traceback": "".join(traceback.format_exception(exc)),
        }
    parts = {}
    for name, table in tables.items():
        path = results.part_path(out, name, res.suite.name, unit.model.label, unit.explainer.label, unit.unit_id)
        results.write_part(path, table)
        parts[name] = {"path": str(path.relative_to(out)), "rows": table.num_rows}
    wall = time.perf_counter() - started
    write_json(marker, {"unit_id": unit.unit_id, "run_id": run_id, "parts": parts, "wall_s": wall})
    return {
        "state": "done",
        "wall_s": wall,
        "rows": sum(t.num_rows for n, t in tables.items() if n != "examples"),
        "rows_by_table": {n: t.num_rows for n, t in tables.items()},
    }
