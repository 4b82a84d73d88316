"""What resume checks before it skips a unit, and what it does with a unit that fails the check.

A unit counts as complete when its marker (``_units/<id>.json``) is readable and every part it
lists exists, is readable Parquet (its footer is read) and holds the rows the marker says. A
marker that lists no part at all (written by an older xaibench for a unit whose images could
not be read) does not count. A unit that fails the check is recomputed; its marker and part
files are first moved, never deleted, to ``_quarantine/<run id>/`` under the same relative
paths, so nothing a user might want back is lost.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from . import results


def incomplete_reason(out: Path, unit_id: str) -> str:
    """Why the unit with a marker is not complete on disk ("" when it is)."""
    marker = results.unit_marker(out, unit_id)
    try:
        record = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return f"its marker {marker.name} is unreadable ({type(exc).__name__})"
    parts = record.get("parts") if isinstance(record, dict) else None
    if not isinstance(parts, dict) or not parts:
        return "its marker lists no results (written when none of its images could be read)"
    for table, part in parts.items():
        relative = str(part.get("path", "")) if isinstance(part, dict) else ""
        path = out / relative
        if not relative or not path.is_file():
            return f"its {table} part {relative or '(unnamed)'} is missing"
        try:
            rows = pq.read_metadata(path).num_rows
        except (pa.ArrowException, OSError) as exc:
            return f"its {table} part {relative} is not readable Parquet ({type(exc).__name__})"
        if rows != part.get("rows"):
            return f"its {table} part {relative} holds {rows} rows, its marker says {part.get('rows')}"
    return ""


def quarantine(out: Path, unit_id: str, run_id: str) -> list[str]:
    """Move the unit's marker and part files to ``_quarantine/<run id>/``; the moved paths."""
    found = [results.unit_marker(out, unit_id)]
    for table in results.TABLES:
        folder = out / table
        if folder.is_dir():
            found += list(folder.rglob(f"part-{unit_id}.parquet"))
    moved = []
    for path in found:
        if not path.exists():
            continue
        relative = path.relative_to(out)
        target = out / "_quarantine" / run_id / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)
        moved.append(str(relative))
    return moved
