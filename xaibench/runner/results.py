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
import re
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from ..errors import XaibenchError
from ..files import write_atomic_bytes

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


def write_part(path: Path, table: pa.Table) -> None:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    write_atomic_bytes(path, sink.getvalue().to_pybytes())


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
    schemas = _schemas(files)
    if not schemas:
        raise XaibenchError(
            f"no readable {table} results in {str(folder)!r}: every part file is damaged; re-run "
            "'xaibench run' with the same suite and --out to recompute them"
        )
    try:
        return _read_files(list(schemas), schemas, folder / table)
    except (pa.ArrowException, OSError):  # a part whose footer reads but whose data does not
        readable = {f: s for f, s in schemas.items() if _fully_readable(f)}
        return _read_files(list(readable), readable, folder / table)


class UnreadablePartWarning(RuntimeWarning):
    """A part file that is not readable Parquet (truncated, damaged): its rows are left out."""


def _warn_unreadable(path: Path, exc: BaseException) -> None:
    warnings.warn(
        f"left out the unreadable results file {path} ({type(exc).__name__}: {exc}); re-run 'xaibench run' "
        "with the same suite and --out: resume recomputes its unit",
        UnreadablePartWarning,
        stacklevel=4,
    )


def _schemas(files: list[Path]) -> dict[Path, pa.Schema]:
    schemas = {}
    for path in files:
        try:
            schemas[path] = pq.read_schema(path)
        except (pa.ArrowException, OSError) as exc:
            _warn_unreadable(path, exc)
    return schemas


def _fully_readable(path: Path) -> bool:
    try:
        pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        _warn_unreadable(path, exc)
        return False
    return True


def _read_files(files: list[Path], schemas: dict[Path, pa.Schema], base: Path) -> pd.DataFrame:
    labelled = [f for f in files if set(PARTITION_KEYS) <= set(schemas[f].names)]
    older = [f for f in files if f not in set(labelled)]
    frames = [_read_labelled(labelled, schemas)] if labelled else []
    if older:
        frames.append(_read_partitioned(older, schemas, base))
    if not frames:
        return pd.DataFrame()
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def _read_labelled(files: list[Path], schemas: dict[Path, pa.Schema]) -> pd.DataFrame:
    """Parts that carry their labels as columns (results format 3): read as they are."""
    # Parts may differ in columns (a plugin's extra column, all-null curves): read them with
    # the union of their schemas instead of the first file's.
    schema = pa.unify_schemas([schemas[f] for f in files], promote_options="permissive")
    return pads.dataset([str(f) for f in files], schema=schema, format="parquet").to_table().to_pandas()


def _read_partitioned(files: list[Path], schemas: dict[Path, pa.Schema], base: Path) -> pd.DataFrame:
    """Older parts: the labels live only in the (folder-safe) hive folder names."""
    partitioning = pads.partitioning(pa.schema([(key, pa.string()) for key in PARTITION_KEYS]), flavor="hive")
    schema = pa.unify_schemas(
        [schemas[f] for f in files] + [pa.schema([(key, pa.string()) for key in PARTITION_KEYS])],
        promote_options="permissive",
    )
    dataset = pads.dataset(
        [str(f) for f in files], schema=schema, format="parquet", partitioning=partitioning,
        partition_base_dir=str(base),
    )
    return dataset.to_table().to_pandas()


def read_manifest(results_dir: str | Path) -> dict[str, Any] | None:
    """The folder's ``manifest.json``; ``None`` if there is none; a clear error if it is damaged."""
    path = Path(results_dir) / "manifest.json"
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise XaibenchError(
            f"{path} is not a readable manifest ({exc}); the results themselves are the Parquet parts: "
            f"re-running 'xaibench run' with the same suite and --out {results_dir} rewrites the manifest "
            "without recomputing finished units"
        ) from None
    if not isinstance(manifest, dict):
        raise XaibenchError(f"{path} is not a manifest (expected a JSON object, got {type(manifest).__name__})")
    return manifest
