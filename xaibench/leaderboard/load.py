"""Read one or more results folders into per-suite tables with their provenance.

A results folder holds up to three tables (``robustness/``, ``faithfulness/``, ``examples/``,
docs/results.md).
The same suite found in several folders is merged: rows are concatenated, units present in
more than one folder are kept once, and the provenance lists every run that contributed.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import XaibenchError
from ..runner import results as runner_results

TABLES = runner_results.TABLES
PARTITION_KEYS = runner_results.PARTITION_KEYS
BASELINE_ATTACKS = ("gaussian_noise",)


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


@dataclass
class SuiteResults:
    """All rows of one suite, merged over results folders."""

    name: str
    robustness: pd.DataFrame
    faithfulness: pd.DataFrame
    examples: pd.DataFrame
    runs: list[RunInfo]
    reference: dict[str, float]
    reference_source: str  # "suite" or "largest grid point"
    description: str = ""
    sensitivity: pd.DataFrame = field(default_factory=pd.DataFrame)
    attack_names: dict[str, str] = field(default_factory=dict)  # attack label -> plugin name
    duplicate_units: int = 0
    notes: list[str] = field(default_factory=list)

    def is_baseline(self, attack: str) -> bool:
        return attack in BASELINE_ATTACKS or self.attack_names.get(attack) in BASELINE_ATTACKS


def read_table(folder: str | Path, table: str) -> pd.DataFrame:
    """One table of one results folder (an empty DataFrame when the folder has none)."""
    if not runner_results.has_table(folder, table):
        return pd.DataFrame()
    return runner_results.read_results(folder, table=table)


def _manifests(folder: Path) -> dict[str, dict[str, Any]]:
    """Every run manifest in the folder, by run id (runs/*.json, then manifest.json)."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted((folder / "runs").glob("*.json")) + [folder / "manifest.json"]:
        if not path.is_file():
            continue
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(manifest, dict) and manifest.get("run_id"):
            found.setdefault(str(manifest["run_id"]), manifest)
    return found


def _suite_block(manifest: dict[str, Any]) -> dict[str, Any]:
    return (manifest.get("suite") or {}).get("suite") or {}


def _label_maps(manifests: dict[str, dict[str, Any]]) -> dict[str, dict[str, str]]:
    """Folder-safe value -> the label the suite gave, per partition key (from the manifests).

    The runner writes ``partition_value(label)`` as the folder name (``resnet/18`` becomes
    ``resnet_18``); the manifest keeps the label itself. Ambiguous values are left alone.
    """
    labels: dict[str, set[str]] = {key: set() for key in PARTITION_KEYS}
    for manifest in manifests.values():
        suite = manifest.get("suite") or {}
        if _suite_block(manifest).get("name"):
            labels["suite"].add(str(_suite_block(manifest)["name"]))
        for key, plural in (("model", "models"), ("explainer", "explainers")):
            for spec in suite.get(plural) or []:
                if isinstance(spec, dict) and spec.get("label"):
                    labels[key].add(str(spec["label"]))
    maps: dict[str, dict[str, str]] = {}
    for key, values in labels.items():
        by_folder: dict[str, set[str]] = {}
        for value in values:
            by_folder.setdefault(runner_results.partition_value(value), set()).add(value)
        maps[key] = {
            folder: next(iter(found)) for folder, found in by_folder.items()
            if len(found) == 1 and next(iter(found)) != folder
        }
    return maps


def _restore_labels(frame: pd.DataFrame, maps: dict[str, dict[str, str]]) -> pd.DataFrame:
    for key, mapping in maps.items():
        if mapping and key in frame.columns:
            frame[key] = frame[key].map(lambda v, m=mapping: m.get(v, v) if isinstance(v, str) else v)
    return frame


def restore_labels(folder: str | Path, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` (rows read from ``folder``) with the suite's own model/explainer labels in
    place of their folder-safe forms (``SG stdevs=0.05`` for ``SG_stdevs_0.05``)."""
    return _restore_labels(frame, _label_maps(_manifests(Path(folder))))


def _first_value(frame: pd.DataFrame, column: str) -> Any:
    if column not in frame.columns or frame.empty:
        return None
    values = frame[column].dropna()
    return values.iloc[0] if len(values) else None


def _run_info(folder: Path, run_id: str, rows: pd.DataFrame, manifest: dict[str, Any] | None) -> RunInfo:
    info = RunInfo(results_dir=str(folder), run_id=run_id, rows=len(rows))
    if manifest is not None:
        suite = manifest.get("suite") or {}
        info.from_manifest = True
        info.started = manifest.get("started")
        info.suite_source = suite.get("source")
        info.seed = _suite_block(manifest).get("seed")
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


def _largest_point(robustness: pd.DataFrame) -> dict[str, float]:
    point = {}
    for key in ("alpha", "topk"):
        if key in robustness.columns and robustness[key].notna().any():
            point[key] = float(robustness[key].max())
    return point


def load_results(dirs: list[str | Path]) -> list[SuiteResults]:
    """Read every folder and group the rows by suite, in order of first appearance."""
    per_suite: dict[str, dict[str, list[Any]]] = {}
    order: list[str] = []
    seen_units: dict[str, set[str]] = {}
    duplicates: dict[str, int] = {}
    for raw in dirs:
        folder = Path(raw)
        if not folder.is_dir():
            raise XaibenchError(f"results folder {str(folder)!r} does not exist")
        tables = {table: read_table(folder, table) for table in TABLES}
        if tables["robustness"].empty and tables["faithfulness"].empty:
            raise XaibenchError(
                f"no results in {str(folder)!r}: expected robustness/…/part-*.parquet or "
                "faithfulness/…/part-*.parquet files written by 'xaibench run'"
            )
        manifests = _manifests(folder)
        maps = _label_maps(manifests)
        tables = {name: _restore_labels(frame, maps) for name, frame in tables.items()}
        suites = []
        for frame in tables.values():
            if "suite" in frame.columns:
                suites += [s for s in frame["suite"].dropna().unique() if s not in suites]
        for suite in suites:
            if suite not in per_suite:
                per_suite[suite] = {"tables": [], "runs": [], "manifests": []}
                order.append(suite)
                seen_units[suite] = set()
                duplicates[suite] = 0
            parts = {}
            units_here: set[str] = set()
            for table, frame in tables.items():
                if frame.empty or "suite" not in frame.columns:
                    parts[table] = pd.DataFrame()
                    continue
                rows = frame[frame["suite"] == suite]
                if "unit_id" in rows.columns and len(rows):
                    # A unit's id is a hash of everything that determines its output: the
                    # same unit in two folders is the same work, counted once.
                    repeated = rows["unit_id"].isin(seen_units[suite])
                    if table == "robustness":
                        duplicates[suite] += int(rows.loc[repeated, "unit_id"].nunique())
                    rows = rows[~repeated]
                    units_here |= set(rows["unit_id"].dropna().unique())
                rows = rows.copy()
                rows["results_dir"] = str(folder)
                parts[table] = rows
            seen_units[suite] |= units_here
            per_suite[suite]["tables"].append(parts)
            counts: dict[str, int] = {}
            for table in ("robustness", "faithfulness"):
                rows = parts[table]
                if not rows.empty and "run_id" in rows.columns:
                    for run_id, count in rows["run_id"].astype(str).value_counts().items():
                        counts[str(run_id)] = counts.get(str(run_id), 0) + int(count)
            run_ids = sorted(counts)
            for run_id in run_ids:
                manifest = manifests.get(run_id)
                rows = pd.DataFrame()
                if manifest is None:  # what the rows themselves record
                    table = parts["robustness"] if not parts["robustness"].empty else parts["faithfulness"]
                    rows = table[table["run_id"].astype(str) == run_id] if "run_id" in table.columns else table
                info = _run_info(folder, run_id, rows, manifest)
                info.rows = counts[run_id]
                per_suite[suite]["runs"].append(info)
                if manifest is not None:
                    per_suite[suite]["manifests"].append(manifest)
            if not run_ids:
                for manifest in manifests.values():
                    if _suite_block(manifest).get("name") == suite:
                        per_suite[suite]["manifests"].append(manifest)
    out = []
    for suite in order:
        out.append(_merge(suite, per_suite[suite], duplicates[suite]))
    return out


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True)


def _merge(suite: str, collected: dict[str, list[Any]], duplicate_units: int) -> SuiteResults:
    robustness = _concat([t["robustness"] for t in collected["tables"]])
    faithfulness = _concat([t["faithfulness"] for t in collected["tables"]])
    examples = _concat([t["examples"] for t in collected["tables"]])
    sensitivity = _concat([t["sensitivity"] for t in collected["tables"]])
    manifests = collected["manifests"]
    notes = []
    reference: dict[str, float] = {}
    reference_source = "largest grid point"
    description = ""
    attack_names: dict[str, str] = {}
    for manifest in manifests:
        block = _suite_block(manifest)
        description = description or str(block.get("description") or "")
        for attack in (manifest.get("suite") or {}).get("attacks") or []:
            if isinstance(attack, dict) and attack.get("label"):
                attack_names.setdefault(str(attack["label"]), str(attack.get("name", "")))
        candidate = block.get("reference")
        if isinstance(candidate, dict) and candidate:
            clean = {
                str(k): float(v) for k, v in candidate.items()
                if isinstance(v, int | float) and math.isfinite(float(v))
            }
            if not reference:
                reference, reference_source = clean, "suite"
            elif clean != reference:
                notes.append(
                    f"runs disagree on the reference grid point; using {reference} "
                    f"(another run asks for {clean})"
                )
    if not reference:
        reference = _largest_point(robustness)
    if duplicate_units:
        notes.append(
            f"{duplicate_units} work unit(s) appear in more than one results folder; "
            "each is counted once (the first folder's rows)"
        )
    return SuiteResults(
        name=suite,
        robustness=robustness,
        faithfulness=faithfulness,
        examples=examples,
        sensitivity=sensitivity,
        runs=collected["runs"],
        reference=reference,
        reference_source=reference_source,
        description=description,
        attack_names=attack_names,
        duplicate_units=duplicate_units,
        notes=list(dict.fromkeys(notes)),
    )
