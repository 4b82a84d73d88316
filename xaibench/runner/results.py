"""Parquet results: one part file per work unit, hive-partitioned, written atomically.

Layout (docs/results.md)::

    OUT/<table>/suite=<suite>/model=<model>/explainer=<explainer>/part-<unit id>.parquet
    OUT/_units/<unit id>.json    written last: the unit is complete
    OUT/manifest.json            the latest run (resolved suite, environment, unit states)
    OUT/runs/<run id>.json       every run's manifest, kept

Tables: ``robustness``, ``faithfulness``, ``examples``, ``sensitivity``.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from ..errors import XaibenchError

TABLES = ("robustness", "faithfulness", "examples", "sensitivity")
PARTITION_KEYS = ("suite", "model", "explainer")
_SAFE = re.compile(r"[^A-Za-z0-9_.+-]")


def partition_value(value: str) -> str:
    """A value safe as a hive directory name (``/`` and ``=`` would break the layout)."""
    return _SAFE.sub("_", value)


def part_path(out: Path, table: str, suite: str, model: str, explainer: str, unit_id: str) -> Path:
    return (
        out
        / table
        / f"suite={partition_value(suite)}"
        / f"model={partition_value(model)}"
        / f"explainer={partition_value(explainer)}"
        / f"part-{unit_id}.parquet"
    )


def write_atomic_bytes(path: Path, payload: bytes) -> None:
    """Write to a unique temporary name in the same folder, then rename over the target.

    A reader (or a resumed run) sees either no file or a complete one, never a torn one, even
    if the process is killed mid-write or two runs write the same unit.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(payload)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise


def write_part(path: Path, table: pa.Table) -> None:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    write_atomic_bytes(path, sink.getvalue().to_pybytes())


def write_json(path: Path, payload: dict[str, Any]) -> None:
    write_atomic_bytes(path, json.dumps(payload, indent=2, default=str).encode("utf-8"))


def unit_marker(out: Path, unit_id: str) -> Path:
    return out / "_units" / f"{unit_id}.json"


def part_files(results_dir: Path, table: str = "robustness") -> list[Path]:
    folder = results_dir / table
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("part-*.parquet") if not p.name.startswith("."))


def has_table(results_dir: str | Path, table: str) -> bool:
    return bool(part_files(Path(results_dir), table))


def read_results(
    results_dir: str | Path, suite: str | None = None, *, table: str = "robustness"
) -> pd.DataFrame:
    """All rows of one table of a results folder as a DataFrame (partition columns included)."""
    if table not in TABLES:
        raise XaibenchError(f"unknown results table {table!r}; tables: {', '.join(TABLES)}")
    folder = Path(results_dir)
    if not folder.is_dir():
        raise XaibenchError(f"results folder {str(folder)!r} does not exist")
    files = part_files(folder, table)
    if suite is not None:
        files = [f for f in files if f"suite={partition_value(suite)}" in f.parts]
    if not files:
        raise XaibenchError(
            f"no {table} results in {str(folder)!r}: expected {table}/…/part-*.parquet files "
            "written by 'xaibench run'"
        )
    # Partition keys live only in the folder names; read them back as strings always.
    partitioning = pads.partitioning(
        pa.schema([(key, pa.string()) for key in PARTITION_KEYS]), flavor="hive"
    )
    # Parts may differ in columns (a plugin's extra column, all-null curves): read them with
    # the union of their schemas instead of the first file's.
    schema = pa.unify_schemas(
        [pq.read_schema(f) for f in files]
        + [pa.schema([(key, pa.string()) for key in PARTITION_KEYS])],
        promote_options="permissive",
    )
    dataset = pads.dataset(
        [str(f) for f in files], schema=schema, format="parquet", partitioning=partitioning,
        partition_base_dir=str(folder / table),
    )
    return dataset.to_table().to_pandas()


def read_manifest(results_dir: str | Path) -> dict[str, Any] | None:
    path = Path(results_dir) / "manifest.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))
