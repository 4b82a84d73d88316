"""``Results``: what ``xaibench.evaluate``, ``xaibench.run`` and ``xaibench.load`` return.

A view of one results folder — the very Parquet layout ``xaibench run`` writes — with its rows
as pandas DataFrames, the summary table the CLI prints, the static leaderboard site, and
``save`` to copy it elsewhere (``xaibench show`` and ``xaibench leaderboard`` read the copy).
"""

from __future__ import annotations

import shutil
import weakref
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import XaibenchError


class Results:
    def __init__(self, out: str | Path, *, report: Any = None, temporary: bool = False):
        self.out = Path(out)
        if not self.out.is_dir():
            raise XaibenchError(f"results folder {str(self.out)!r} does not exist")
        self.report = report  # the RunReport when this object comes from a run
        self._tables: dict[str, pd.DataFrame] = {}
        if temporary:  # evaluate()'s own folder: removed with this object (save() copies it)
            weakref.finalize(self, shutil.rmtree, str(self.out), True)

    def __repr__(self) -> str:
        counts = ", ".join(f"{t} {len(self.table(t))}" for t in ("robustness", "faithfulness") if len(self.table(t)))
        return f"Results({str(self.out)!r}: {counts or 'no rows'})"

    # -- rows ---------------------------------------------------------------------------
    def table(self, name: str = "robustness") -> pd.DataFrame:
        """One results table (robustness, faithfulness, examples, sensitivity); empty if absent."""
        if name not in self._tables:
            from ..leaderboard.load import restore_labels
            from ..runner.results import has_table, read_results

            frame = read_results(self.out, table=name) if has_table(self.out, name) else pd.DataFrame()
            self._tables[name] = restore_labels(self.out, frame) if len(frame) else frame
        return self._tables[name]

    @property
    def rows(self) -> pd.DataFrame:
        """The robustness rows: the same columns as the Parquet files."""
        return self.table("robustness")

    @property
    def faithfulness(self) -> pd.DataFrame:
        return self.table("faithfulness")

    @property
    def manifest(self) -> dict[str, Any]:
        from ..runner.results import read_manifest

        return read_manifest(self.out) or {}

    # -- views --------------------------------------------------------------------------
    def summary(self, table: str = "robustness") -> pd.DataFrame:
        """The mean ± std table ``xaibench show`` prints (per model × explainer × attack × grid
        point for robustness; per model × explainer × metric, ranked, for faithfulness)."""
        from ..summary import summarize, summarize_faithfulness

        if table == "robustness":
            return summarize(self.rows, self.manifest.get("plugins")) if len(self.rows) else pd.DataFrame()
        if table == "faithfulness":
            robustness = self.rows if len(self.rows) else None
            return summarize_faithfulness(self.faithfulness, robustness) if len(self.faithfulness) else pd.DataFrame()
        raise XaibenchError(f"summary() takes 'robustness' or 'faithfulness', got {table!r}")

    def leaderboard(self, out: str | Path, **options: Any) -> Path:
        """Build the static site (``xaibench leaderboard``) into ``out``; the path of index.html."""
        from ..leaderboard import build_site

        return build_site([self.out], Path(out), **options)

    def save(self, path: str | Path) -> Results:
        """Copy the results folder to ``path`` (new or empty); the copy's ``Results``."""
        target = Path(path)
        if target.exists() and (not target.is_dir() or any(target.iterdir())):
            raise XaibenchError(f"save: {str(target)!r} exists and is not an empty folder; choose a new path")
        if target.exists():
            target.rmdir()
        shutil.copytree(self.out, target, ignore=shutil.ignore_patterns("_leases", "_quarantine"))
        return Results(target, report=self.report)
