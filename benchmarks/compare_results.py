"""Do two results folders hold the same numbers? ``python -m benchmarks.compare_results OLD NEW``.

Used to prove that a refactor changed no value (issue 12): the same suite run before and after
gives the same rows (matched on their identifying columns) and the same values, equal up to
float rounding. Provenance that legitimately differs between two runs (run and unit ids,
wall times, throughput, versions, chunk sizes) is not compared; columns only one side has are
listed, not compared. Exit status 1 when a value differs beyond the tolerance or rows differ.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from xaibench.leaderboard.load import restore_labels
from xaibench.runner.results import has_table, read_results

#: Columns that identify a row, where present (the attack's own columns are added per table).
KEYS = ("suite", "model", "explainer", "image_id", "attack", "on", "metric", "sweep", "param", "value")
#: Columns of provenance that differ between two runs by design.
IGNORED = {
    "run_id", "unit_id", "unit_wall_s", "explainer_images_per_s", "explain_chunk_size", "forward_chunk_size",
    "xaibench_version", "torch_version", "captum_version", "original_png", "corrupted_png", "metric_params",
    "attack_name", "metric_name",
}
#: Float tolerance: the same machine and kernels give the same bits; this allows rounding only.
RTOL, ATOL = 1e-6, 1e-9


def _keys(old: pd.DataFrame, new: pd.DataFrame) -> list[str]:
    grid_like = [c for c in ("alpha", "topk", "attack_image_id", "attack_image_rank", "sigma") if c in old and c in new]
    return [k for k in KEYS if k in old.columns and k in new.columns] + grid_like


def _comparable(value: object) -> object:
    if isinstance(value, list | np.ndarray):
        return json.dumps(np.asarray(value, dtype=float).round(12).tolist())
    return value


def compare_table(old: pd.DataFrame, new: pd.DataFrame, table: str) -> list[str]:
    problems: list[str] = []
    keys = _keys(old, new)
    if len(old) != len(new):
        problems.append(f"{table}: {len(old)} rows before, {len(new)} after")
        return problems
    old = old.sort_values(keys, kind="stable").reset_index(drop=True)
    new = new.sort_values(keys, kind="stable").reset_index(drop=True)
    if not old[keys].astype(str).equals(new[keys].astype(str)):
        problems.append(f"{table}: the rows differ in their identifying columns {keys}")
        return problems
    common = [c for c in old.columns if c in new.columns and c not in IGNORED and c not in keys]
    for column in common:
        a, b = old[column], new[column]
        if pd.api.types.is_numeric_dtype(a) and pd.api.types.is_numeric_dtype(b):
            x, y = a.to_numpy(dtype=float), b.to_numpy(dtype=float)
            same_nan = np.isnan(x) == np.isnan(y)
            close = np.isclose(x, y, rtol=RTOL, atol=ATOL, equal_nan=True)
            if not (same_nan.all() and close.all()):
                worst = np.nanmax(np.abs(x - y)) if np.isfinite(x - y).any() else float("nan")
                problems.append(f"{table}.{column}: {int((~close).sum())} values differ (max |Δ| {worst:.3g})")
        elif not a.map(_comparable).astype(str).equals(b.map(_comparable).astype(str)):
            problems.append(f"{table}.{column}: values differ")
    only_old = sorted(set(old.columns) - set(new.columns))
    only_new = sorted(set(new.columns) - set(old.columns))
    if only_old or only_new:
        print(f"  {table}: columns only before: {only_old or '–'}; only after: {only_new or '–'}")
    print(f"  {table}: {len(old)} rows, {len(common)} columns compared")
    return problems


def compare(old_dir: Path, new_dir: Path) -> list[str]:
    problems = []
    for table in ("robustness", "faithfulness", "sensitivity", "examples"):
        present = has_table(old_dir, table), has_table(new_dir, table)
        if present == (False, False):
            continue
        if present != (True, True):
            problems.append(f"{table}: present {'before' if present[0] else 'after'} only")
            continue
        # Older results keep labels only in folder-safe folder names: restore them first.
        old = restore_labels(old_dir, read_results(old_dir, table=table))
        new = restore_labels(new_dir, read_results(new_dir, table=table))
        problems += compare_table(old, new, table)
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    args = parser.parse_args(argv)
    print(f"{args.old} → {args.new}")
    problems = compare(args.old, args.new)
    for problem in problems:
        print(f"  DIFFERENT {problem}")
    print("  same values" if not problems else f"  {len(problems)} differences")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
