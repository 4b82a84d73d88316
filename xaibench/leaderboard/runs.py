"""Provenance of the runs that contributed rows to a suite: from each run's manifest, or,
for parts without one (copied parts), from what the rows themselves record."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .manifests import suite_block


@dataclass
class RunInfo:
    """Provenance of one run that contributed rows to a suite."""

    results_dir: str
    run_id: str
    started: str | None = None
    suite_source: str | None = None
    seed: Any = None
    environment: dict[str, Any] = field(default_factory=dict)
    models: dict[str, str] = field(default_factory=dict)  # label -> pretrained_source
    rows: int = 0
    from_manifest: bool = False
    convergence: list[dict[str, Any]] = field(default_factory=list)  # per model × explainer



def _first_value(frame: pd.DataFrame, column: str) -> Any:
    if column not in frame.columns or frame.empty:
        return None
    values = frame[column].dropna()
    return values.iloc[0] if len(values) else None


def run_info(folder: Path, run_id: str, rows: pd.DataFrame, manifest: dict[str, Any] | None) -> RunInfo:
    info = RunInfo(results_dir=str(folder), run_id=run_id, rows=len(rows))
    if manifest is not None:
        suite = manifest.get("suite") or {}
        info.from_manifest = True
        info.started = manifest.get("started")
        info.suite_source = suite.get("source")
        info.seed = suite_block(manifest).get("seed")
        info.environment = dict(manifest.get("environment") or {})
        info.models = {
            str(label): str((meta or {}).get("pretrained_source", ""))
            for label, meta in (manifest.get("models") or {}).items()
        }
        info.convergence = convergence_records(manifest.get("convergence"))
        return info
    # No manifest for this run (copied parts): what the rows themselves record.
    info.seed = _first_value(rows, "seed")
    for column, key in (
        ("device", "device"), ("xaibench_version", "xaibench"),
        ("torch_version", "torch"), ("captum_version", "captum"),
    ):
        value = _first_value(rows, column)
        if value is not None:
            info.environment[key] = value
    if "pretrained_source" in rows.columns and "model" in rows.columns:
        for label, group in rows.groupby("model"):
            info.models[str(label)] = str(_first_value(group, "pretrained_source") or "")
    return info


_RECORD_KEYS = {"gate", "param", "trials", "converged", "requested", "chosen", "median_gap"}


def _is_record(value: Any) -> bool:
    return isinstance(value, dict) and bool(_RECORD_KEYS & set(value))


def convergence_records(entry: Any) -> list[dict[str, Any]]:
    """A manifest's ``convergence`` entry as one record per model × explainer.

    Accepted shapes: ``{model: {explainer: record}}``, ``{"<model>|<explainer>": record}`` or
    ``[{"model": …, "explainer": …, **record}]``; a record is what
    ``runner.convergence.choose`` returns (``gate``, ``param``, ``requested``, ``chosen``,
    ``trials``, ``converged``) or any flat dict (``n_steps``, ``median_gap``, …).
    """
    out: list[dict[str, Any]] = []
    if isinstance(entry, list):
        out = [dict(item) for item in entry if isinstance(item, dict)]
    elif isinstance(entry, dict):
        for key, value in entry.items():
            if _is_record(value):
                model, _, explainer = str(key).partition("|")
                out.append({"model": model, "explainer": explainer, **value})
            elif isinstance(value, dict):
                for explainer, record in value.items():
                    if isinstance(record, dict):
                        out.append({"model": str(key), "explainer": str(explainer), **record})
    return out
