"""Build the static leaderboard site: ``index.html`` plus ``assets/`` (SVG figures, PNG examples).

Every string from a suite, a plugin or a file name reaches the page through Jinja2's
autoescaping, and asset file names are slugs (ASCII, with a hash of the original name), so
a hostile name can neither inject markup nor escape the assets folder.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, StrictUndefined
from markupsafe import Markup

from .. import __version__
from ..files import write_atomic_bytes
from .board import Leaderboard, build_leaderboard
from .flags import COMPLETENESS_GAP_LIMIT
from .load import SuiteResults
from .output_folder import SiteFolder
from .provenance import convergence, run_view, weights
from .slugs import slugify
from .stats import DEFAULT_RESAMPLES, DEFAULT_SEED
from .tables import Row, Table
from .template import PAGE, SCRIPT, STYLE

__all__ = ["Leaderboard", "build_leaderboard", "build_site", "render_html", "site_size", "slugify"]

DEFAULT_EXAMPLES = 3


@dataclass
class TableView:
    anchor: str
    title: str
    caption: str
    columns: list[Any]
    rows: list[dict[str, Any]]
    notes: list[str]


@dataclass
class SuiteView:
    """What the template shows of one suite."""

    name: str
    anchor: str
    description: str
    counts: str
    notes: list[str]
    tables: list[TableView]
    figures: list[Any] = field(default_factory=list)
    figure_notes: list[str] = field(default_factory=list)
    examples: list[dict[str, Any]] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    weights: list[dict[str, str]] = field(default_factory=list)
    convergence: list[dict[str, str]] = field(default_factory=list)
    plugins: list[dict[str, str]] = field(default_factory=list)


def _counts(suite: SuiteResults) -> str:
    frame = suite.robustness if not suite.robustness.empty else suite.faithfulness
    parts = []
    for column, word in (("model", "model"), ("explainer", "explainer"), ("image_id", "image")):
        if column in frame.columns:
            n = frame[column].nunique()
            parts.append(f"{n} {word}{'s' if n != 1 else ''}")
    parts.append(f"{len(suite.robustness)} robustness rows")
    if not suite.faithfulness.empty:
        parts.append(f"{len(suite.faithfulness)} faithfulness rows")
    dirs = sorted({run.results_dir for run in suite.runs})
    parts.append(f"from {len(dirs)} results folder{'s' if len(dirs) != 1 else ''}")
    return ", ".join(parts)


def _table_view(table: Table) -> TableView:
    return TableView(
        anchor=slugify(table.id, length=32), title=table.title, caption=table.caption,
        columns=table.columns, rows=[row if isinstance(row, Row) else Row(row) for row in table.rows],
        notes=table.notes,
    )


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode() + "'"


def render_html(views: list[SuiteView], *, title: str, seed: int, resamples: int) -> str:
    from .images import colormap_css

    style = STYLE.replace("%(colormap)s", colormap_css())
    csp = (
        "default-src 'none'; img-src 'self' data:; "
        f"style-src {_csp_hash(style)}; script-src {_csp_hash(SCRIPT)}; "
        "base-uri 'none'; form-action 'none'"
    )
    env = Environment(autoescape=True, undefined=StrictUndefined, keep_trailing_newline=True)
    template = env.from_string(PAGE)
    return template.render(
        suites=views,
        title=title,
        csp=csp,
        style=Markup(style),
        script=Markup(SCRIPT),
        version=__version__,
        built=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        seed=seed,
        resamples=resamples,
        gap_limit=COMPLETENESS_GAP_LIMIT,
    )


def suite_view(board: Leaderboard, suite: SuiteResults, assets: Path, examples: int) -> SuiteView:
    from .examples import example_views
    from .gallery import suite_figures

    figures, figure_notes = suite_figures(suite, assets, seed=board.seed, resamples=board.resamples)
    return SuiteView(
        name=suite.name,
        anchor=slugify("suite", suite.name, length=32),
        description=suite.description,
        counts=_counts(suite),
        notes=suite.notes,
        tables=[_table_view(t) for t in board.tables[suite.name]],
        figures=figures,
        figure_notes=figure_notes,
        examples=example_views(suite, assets, examples),
        runs=[run_view(run) for run in suite.runs],
        weights=weights(suite.runs),
        convergence=convergence(suite.runs),
        plugins=suite.plugins.listing(),
    )


def build_site(
    dirs: list[str | Path],
    out: str | Path,
    *,
    seed: int = DEFAULT_SEED,
    resamples: int = DEFAULT_RESAMPLES,
    examples: int = DEFAULT_EXAMPLES,
    title: str = "xaibench leaderboard",
) -> Path:
    """Write ``out/index.html`` and ``out/assets/``; return the path of ``index.html``.

    ``out`` must be new, empty or a folder an earlier build made (see :mod:`.output_folder`):
    checked before anything is read. Files the user put there are never overwritten or removed.
    """
    folder = SiteFolder(out)
    board = build_leaderboard(dirs, seed=seed, resamples=resamples)
    with folder.staging() as stage:
        assets = stage / "assets"
        assets.mkdir()
        views = [suite_view(board, suite, assets, examples) for suite in board.suites]
        html = render_html(views, title=title, seed=seed, resamples=resamples)
        write_atomic_bytes(stage / "index.html", html.encode("utf-8"))
        folder.publish(stage)
    return folder.path / "index.html"


def site_size(out: str | Path) -> int:
    """Bytes of every file under ``out``."""
    return sum(p.stat().st_size for p in Path(out).rglob("*") if p.is_file())
