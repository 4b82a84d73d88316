"""Read one or more results folders into per-suite tables with their provenance.

A results folder holds up to three tables (``robustness/``, ``faithfulness/``, ``examples/``,
docs/results.md).
The same suite found in several folders is merged: rows are concatenated, units present in
more than one folder are kept once, and the provenance lists every run that contributed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import XaibenchError
from ..runner import results as runner_results
from .manifests import apply_labels, label_maps, read_manifests, restore_labels, suite_block
from .meta import AttackInfo, ExplainerInfo, MetricInfo, PluginMeta
from .runs import RunInfo, convergence_records, run_info

TABLES = runner_results.TABLES

__all__ = ["RunInfo", "SuiteResults", "convergence_records", "load_results", "read_table", "restore_labels"]


@dataclass
class SuiteResults:
    """All rows of one suite, merged over results folders."""

    name: str
    robustness: pd.DataFrame
    faithfulness: pd.DataFrame
    examples: pd.DataFrame
    runs: list[RunInfo]
    reference: dict[str, Any]  # the suite's reference table, else the first attack's point
    reference_source: str  # "suite" (the suite names it) or "largest grid point"
    description: str = ""
    sensitivity: pd.DataFrame = field(default_factory=pd.DataFrame)
    attack_names: dict[str, str] = field(default_factory=dict)  # attack label -> plugin name
    duplicate_units: int = 0
    notes: list[str] = field(default_factory=list)
    plugins: PluginMeta = field(default_factory=PluginMeta)  # what the runs recorded (meta.py)

    def attack(self, label: str) -> AttackInfo:
        suite_reference = self.reference if self.reference_source == "suite" else None
        return self.plugins.attack(str(label), name=self.attack_names.get(str(label)), suite_reference=suite_reference)

    def metric(self, label: str) -> MetricInfo:
        return self.plugins.metric(str(label))

    def explainer(self, label: str) -> ExplainerInfo:
        return self.plugins.explainer(str(label))

    def is_baseline(self, attack: str) -> bool:
        """Whether the attack declares itself a baseline of another attack."""
        return self.attack(attack).baseline_of is not None

    def attack_order(self, labels: Any) -> list[str]:
        """``labels`` (attacks found in rows) in suite order, unknown ones after them."""
        found = list(dict.fromkeys(str(a) for a in labels))
        order = list(dict.fromkeys([*self.plugins.recorded["attacks"], *self.plugins.suite_attacks]))
        return [a for a in order if a in found] + [a for a in found if a not in order]

    def baselines_of(self, attack: str, present: list[str]) -> list[str]:
        """The attacks in ``present`` that declare themselves a baseline of ``attack``."""
        name = self.attack(attack).name
        return [b for b in present if b != attack and self.attack(b).baseline_of == name]

    def main_attacks(self, present: list[str]) -> list[str]:
        """``present`` less the attacks shown as another present attack's baseline."""
        shown_beside = {b for a in present for b in self.baselines_of(a, present) if not self.is_baseline(a)}
        return [a for a in present if a not in shown_beside]


def read_table(folder: str | Path, table: str) -> pd.DataFrame:
    """One table of one results folder (an empty DataFrame when the folder has none)."""
    if not runner_results.has_table(folder, table):
        return pd.DataFrame()
    return runner_results.read_results(folder, table=table)


@dataclass
class _Collected:
    """What the folders gave one suite so far."""

    tables: list[dict[str, pd.DataFrame]] = field(default_factory=list)
    runs: list[RunInfo] = field(default_factory=list)
    manifests: list[dict[str, Any]] = field(default_factory=list)
    seen_units: set[str] = field(default_factory=set)
    duplicates: int = 0


def _read_folder(folder: Path) -> tuple[dict[str, pd.DataFrame], dict[str, dict[str, Any]]]:
    """A folder's tables (labels restored where only folder names carry them) and manifests."""
    if not folder.is_dir():
        raise XaibenchError(f"results folder {str(folder)!r} does not exist")
    tables = {table: read_table(folder, table) for table in TABLES}
    if tables["robustness"].empty and tables["faithfulness"].empty:
        raise XaibenchError(
            f"no results in {str(folder)!r}: expected robustness/…/part-*.parquet or "
            "faithfulness/…/part-*.parquet files written by 'xaibench run'"
        )
    manifests = read_manifests(folder)
    maps = label_maps(manifests)
    return {name: apply_labels(frame, maps) for name, frame in tables.items()}, manifests


def _take_rows(collected: _Collected, tables: dict[str, pd.DataFrame], suite: str, folder: Path) -> dict[str, pd.DataFrame]:
    """The suite's rows of each table, less the work units another folder gave already."""
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
            repeated = rows["unit_id"].isin(collected.seen_units)
            if table == "robustness":
                collected.duplicates += int(rows.loc[repeated, "unit_id"].nunique())
            rows = rows[~repeated]
            units_here |= set(rows["unit_id"].dropna().unique())
        rows = rows.copy()
        rows["results_dir"] = str(folder)
        parts[table] = rows
    collected.seen_units |= units_here
    collected.tables.append(parts)
    return parts


def _add_runs(collected: _Collected, parts: dict[str, pd.DataFrame], manifests: dict[str, dict[str, Any]],
              folder: Path, suite: str) -> None:
    """The runs that contributed the rows, with their manifests (or what the rows record)."""
    counts: dict[str, int] = {}
    for table in ("robustness", "faithfulness"):
        rows = parts[table]
        if not rows.empty and "run_id" in rows.columns:
            for run_id, count in rows["run_id"].astype(str).value_counts().items():
                counts[str(run_id)] = counts.get(str(run_id), 0) + int(count)
    for run_id in sorted(counts):
        manifest = manifests.get(run_id)
        rows = pd.DataFrame()
        if manifest is None:  # what the rows themselves record
            table = parts["robustness"] if not parts["robustness"].empty else parts["faithfulness"]
            rows = table[table["run_id"].astype(str) == run_id] if "run_id" in table.columns else table
        info = run_info(folder, run_id, rows, manifest)
        info.rows = counts[run_id]
        collected.runs.append(info)
        if manifest is not None:
            collected.manifests.append(manifest)
    if not counts:
        collected.manifests += [m for m in manifests.values() if suite_block(m).get("name") == suite]


def load_results(dirs: list[str | Path]) -> list[SuiteResults]:
    """Read every folder and group the rows by suite, in order of first appearance."""
    per_suite: dict[str, _Collected] = {}
    for raw in dirs:
        folder = Path(raw)
        tables, manifests = _read_folder(folder)
        suites: list[str] = []
        for frame in tables.values():
            if "suite" in frame.columns:
                suites += [s for s in frame["suite"].dropna().unique() if s not in suites]
        for suite in suites:
            collected = per_suite.setdefault(suite, _Collected())
            parts = _take_rows(collected, tables, suite, folder)
            _add_runs(collected, parts, manifests, folder, suite)
    return [_merge(suite, collected) for suite, collected in per_suite.items()]


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True)


def _row_attack_names(frames: list[pd.DataFrame]) -> dict[str, str]:
    """Attack label -> plugin name, as the rows record it (``attack_name``)."""
    names: dict[str, str] = {}
    for frame in frames:
        if frame.empty or not {"attack", "attack_name"} <= set(frame.columns):
            continue
        pairs = frame[["attack", "attack_name"]].dropna().drop_duplicates("attack")
        for label, name in pairs.itertuples(index=False):
            names.setdefault(str(label), str(name))
    return names


def _suite_reference(manifests: list[dict[str, Any]], notes: list[str]) -> dict[str, Any]:
    """The suite block's ``reference`` table (the first run's; a note when runs disagree)."""
    reference: dict[str, Any] = {}
    for manifest in manifests:
        candidate = suite_block(manifest).get("reference")
        if not isinstance(candidate, dict) or not candidate:
            continue
        clean = {
            str(k): float(v) if isinstance(v, int | float) else v for k, v in candidate.items()
            if not isinstance(v, bool) and (not isinstance(v, int | float) or math.isfinite(float(v)))
        }
        if not reference:
            reference = clean
        elif clean != reference:
            notes.append(
                f"runs disagree on the reference grid point; using {reference} "
                f"(another run asks for {clean})"
            )
    return reference


def _merge(suite: str, collected: _Collected) -> SuiteResults:
    tables = {
        name: _concat([t[name] for t in collected.tables])
        for name in ("robustness", "faithfulness", "examples", "sensitivity")
    }
    manifests = collected.manifests
    duplicate_units = collected.duplicates
    notes: list[str] = []
    plugins = PluginMeta.from_manifests(manifests)
    description = next((str(suite_block(m).get("description")) for m in manifests if suite_block(m).get("description")), "")
    attack_names = _row_attack_names(list(tables.values()))
    for label, name in plugins.suite_attacks.items():
        attack_names.setdefault(label, name)
    reference = _suite_reference(manifests, notes)
    result = SuiteResults(
        name=suite, robustness=tables["robustness"], faithfulness=tables["faithfulness"],
        examples=tables["examples"], sensitivity=tables["sensitivity"], runs=collected.runs,
        reference=reference, reference_source="suite" if reference else "largest grid point",
        description=description, attack_names=attack_names, duplicate_units=duplicate_units,
        plugins=plugins,
    )
    if not reference:  # each attack's own point; the suite's is the first attack's
        present = result.attack_order(plugins.recorded["attacks"])
        first = next((a for a in result.main_attacks(present)), None)
        result.reference = dict(result.attack(first).reference) if first else {}
    if duplicate_units:
        notes.append(
            f"{duplicate_units} work unit(s) appear in more than one results folder; "
            "each is counted once (the first folder's rows)"
        )
    result.notes = list(dict.fromkeys(notes + plugins.notes))
    return result
