"""``xaibench show`` and the summary after ``xaibench run``: one block per suite in the folder.

A results folder may hold several suites (two runs into one ``--out``): each is summarised on
its own, under its name, with the plugin metadata of the latest run of that suite. A damaged
manifest or part file is reported in one line and left out; it never hides the other rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console
from rich.markup import escape

from .errors import XaibenchError


def _suite_manifests(folder: Path) -> dict[str, dict[str, Any]]:
    """The latest run manifest of each suite in the folder (by run id, which sorts by time)."""
    from .leaderboard.manifests import read_manifests, suite_block

    latest: dict[str, dict[str, Any]] = {}
    manifests = read_manifests(folder)
    for run_id in sorted(manifests):
        manifest = manifests[run_id]
        name = suite_block(manifest).get("name")
        if name:
            latest[str(name)] = manifest
    return latest


def _tables(folder: Path) -> dict[str, pd.DataFrame]:
    from .leaderboard.load import restore_labels
    from .runner.results import has_table, read_results

    return {
        table: restore_labels(folder, read_results(folder, table=table))
        for table in ("robustness", "faithfulness")
        if has_table(folder, table)
    }


def print_manifest(folder: Path, manifest: dict[str, Any], console: Console) -> None:
    """The latest run in one line (tolerant of a manifest that lacks fields)."""
    env = manifest.get("environment") or {}
    states: dict[str, int] = {}
    for unit in manifest.get("units") or []:
        state = unit.get("state", "unknown") if isinstance(unit, dict) else "unknown"
        states[state] = states.get(state, 0) + 1
    suite = ((manifest.get("suite") or {}).get("suite") or {}).get("name", "?")
    console.print(
        f"last run {manifest.get('run_id', '?')} ({manifest.get('started', '?')}), suite {suite}, "
        f"device {env.get('device', '?')}, torch {env.get('torch', '?')}, units {states}",
        markup=False, highlight=False,
    )
    for model, info in (manifest.get("models") or {}).items():
        source = info.get("pretrained_source") if isinstance(info, dict) else None
        console.print(f"  {model}: weights from {source}", markup=False, highlight=False)


def _warn(console: Console, line: str | None) -> None:
    if line:
        text = escape(line.removeprefix("warning: "))
        console.print(f"[yellow]warning:[/yellow] {text}", highlight=False)


def print_summaries(folder: Path, console: Console, suite: str | None = None) -> bool:
    """The robustness and faithfulness summaries of every suite (or of ``suite``); False if none."""
    from .runner.degenerate import degenerate_warning
    from .summary import render_faithfulness, render_summary, summarize, summarize_faithfulness

    folder = Path(folder)
    tables = _tables(folder)
    manifests = _suite_manifests(folder)
    names = sorted({str(s) for frame in tables.values() if "suite" in frame.columns for s in frame["suite"].dropna()})
    printed = False
    for name in [n for n in names if suite is None or n == suite]:
        rows = {t: f[f["suite"] == name] for t, f in tables.items()}
        heading = f" — suite {name}" if len(names) > 1 else ""
        robustness = rows.get("robustness")
        if robustness is not None and len(robustness):
            plugins = (manifests.get(name) or {}).get("plugins")
            console.print(f"{len(robustness)} robustness rows in {folder}{heading}", markup=False, highlight=False)
            render_summary(summarize(robustness, plugins), console, title=f"Robustness{heading}: mean ± std over rows", plugins=plugins)
            printed = True
            _warn(console, degenerate_warning(robustness, "robustness"))
        faithfulness = rows.get("faithfulness")
        if faithfulness is not None and len(faithfulness):
            console.print(f"{len(faithfulness)} faithfulness rows in {folder}{heading}", markup=False, highlight=False)
            # The robustness rows carry the completeness gaps: under-converged pairs get no rank.
            render_faithfulness(
                summarize_faithfulness(faithfulness, robustness if robustness is not None and len(robustness) else None),
                console, title=f"Faithfulness{heading}: mean ± std, rank per metric",
            )
            printed = True
            _warn(console, degenerate_warning(faithfulness, "faithfulness"))
    return printed


def show(folder: Path, console: Console) -> None:
    from .runner.results import read_manifest

    folder = Path(folder)
    if not folder.is_dir():
        raise XaibenchError(
            f"results folder {str(folder)!r} " + ("is a file" if folder.exists() else "does not exist")
        )
    manifest = read_manifest(folder)
    if manifest:
        print_manifest(folder, manifest, console)
    if not print_summaries(folder, console):
        raise XaibenchError(f"no results in {str(folder)!r}: run 'xaibench run --out {folder}' first")
