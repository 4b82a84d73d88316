"""Parquet results: one part file per work unit, hive-partitioned, written atomically.

Layout::

    OUT/suite=<suite>/model=<model>/explainer=<explainer>/part-<unit id>.parquet
    OUT/manifest.json            the latest run (resolved suite, environment, unit states)
    OUT/runs/<run id>.json       every run's manifest, kept
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

PARTITION_KEYS = ("suite", "model", "explainer")
_SAFE = re.compile(r"[^A-Za-z0-9_.+-]")


def partition_value(value: str) -> str:
    """A value safe as a hive directory name (``/`` and ``=`` would break the layout)."""
    return _SAFE.sub("_", value)


def part_path(out: Path, suite: str, model: str, explainer: str, unit_id: str) -> Path:
    return (
        out
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


def part_files(results_dir: Path) -> list[Path]:
    return sorted(p for p in results_dir.rglob("part-*.parquet") if not p.name.startswith("."))


def read_results(results_dir: str | Path, suite: str | None = None) -> pd.DataFrame:
    """All rows of a results folder as a DataFrame (partition columns included)."""
    folder = Path(results_dir)
    if not folder.is_dir():
        raise XaibenchError(f"results folder {str(folder)!r} does not exist")
    files = part_files(folder)
    if suite is not None:
        files = [f for f in files if f"suite={partition_value(suite)}" in f.parts]
    if not files:
        raise XaibenchError(
            f"no results in {str(folder)!r}: expected part-*.parquet files written by 'xaibench run'"
        )
    # Partition keys live only in the folder names; read them back as strings always.
    partitioning = pads.partitioning(
        pa.schema([(key, pa.string()) for key in PARTITION_KEYS]), flavor="hive"
    )
    dataset = pads.dataset(
        [str(f) for f in files], format="parquet", partitioning=partitioning,
        partition_base_dir=str(folder),
    )
    return dataset.to_table().to_pandas()


def read_manifest(results_dir: str | Path) -> dict[str, Any] | None:
    path = Path(results_dir) / "manifest.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))
