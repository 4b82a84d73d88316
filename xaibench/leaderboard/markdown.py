"""The overview tables as GitHub-flavoured markdown (``xaibench leaderboard --format markdown``)."""

from __future__ import annotations

import re

from .board import Leaderboard
from .flags import COMPLETENESS_GAP_LIMIT
from .tables import UNRANKED, Table

_SPECIAL = re.compile(r"([\\`*|~])")
# Square brackets only matter as the start of a link or image: "[text](…)", "[text][ref]".
_LINK = re.compile(r"(\[)(?=[^\]]*\][(\[:])")
# An underscore inside a word is literal in CommonMark; only ones at a word's edge emphasise.
_EDGE_UNDERSCORE = re.compile(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")


def escape(text: str) -> str:
    """Text safe inside a markdown table cell: no markup, no HTML, no cell breaks."""
    text = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _SPECIAL.sub(r"\\\1", text)
    text = _LINK.sub(r"\\\1", text).replace("](", "]\\(")
    text = _EDGE_UNDERSCORE.sub(r"\\_", text)
    return " ".join(text.split())


def table_markdown(table: Table) -> str:
    """One table, its caption and notes, and the footnotes of its ⚠ flags; a row that is shown
    but not ranked has ⊘ for its rank and its reason in the notes (else under the table)."""
    lines = [f"### {escape(table.title)}", "", escape(table.caption), ""]
    lines += [f"> ⚠ {escape(note)}" for note in table.notes]
    if table.notes:
        lines.append("")
    lines.append("| " + " | ".join(escape(c.title) for c in table.columns) + " |")
    lines.append("|" + "|".join("---:" if c.numeric else "---" for c in table.columns) + "|")
    flags = []
    unranked = []
    for row in table.rows:
        model = row["model"].text if "model" in row else ""
        explainer = row["explainer"].text if "explainer" in row else ""
        who = " × ".join(escape(t) for t in (model, explainer) if t)
        cells = []
        for column in table.columns:
            cell = row[column.key]
            text = escape(cell.full)
            if cell.flag:
                text += " ⚠"
                where = who if column.key in ("model", "explainer") else f"{who}, {escape(column.title)}"
                flags.append(f"⚠ {where or escape(cell.text)}: {escape(cell.flag)}")
            cells.append(text)
        lines.append("| " + " | ".join(cells) + " |")
        reason = getattr(row, "unranked", "")
        if reason and not any(reason in note for note in table.notes):  # else the note says it
            unranked.append(f"{UNRANKED} {who}: {escape(reason)}")
    if flags or unranked:
        lines.append("")
        lines += [f"- {line}" for line in dict.fromkeys(unranked + flags)]
    return "\n".join(lines)


def plugins_markdown(listing: list[dict[str, str]]) -> list[str]:
    """The suite's plugins as the runs recorded them: a line each (explainers, attacks and
    metrics; models and data sets are in the provenance of the site)."""
    shown = [p for p in listing if p["kind"] in ("explainer", "attack", "metric")]
    if not shown:
        return []
    lines = ["Plugins:", ""]
    for plugin in shown:
        source = f", {plugin['source']}" if plugin["source"] else ""
        lines.append(
            f"- {plugin['kind']} {escape(plugin['label'])}: {escape(plugin['title'])} "
            f"({escape(plugin['name'])}{escape(source)})"
        )
    return [*lines, ""]


def render_markdown(board: Leaderboard) -> str:
    """Every suite's overview tables."""
    out = ["# xaibench leaderboard", ""]
    for suite in board.suites:
        out += [f"## Suite {escape(suite.name)}", ""]
        if suite.description:
            out += [escape(suite.description), ""]
        runs = ", ".join(dict.fromkeys(escape(r.run_id) for r in suite.runs))
        if runs:
            out += [f"Runs: {runs}", ""]
        out += [f"> ⚠ {escape(note)}" for note in suite.notes]
        if suite.notes:
            out.append("")
        tables = board.tables.get(suite.name, [])
        if not tables:
            out += ["No rows to rank.", ""]
        for table in tables:
            out += [table_markdown(table), ""]
        out += plugins_markdown(suite.plugins.listing())
    out.append(
        f"Means over images (rows of one image averaged first) with 95 % percentile bootstrap "
        f"intervals ({board.resamples} resamples of the images, seed {board.seed}); ranks within "
        f"each model; ⚠ = a flag, explained under its table (e.g. a median completeness gap above the "
        f"pair's gate, the rows' max_completeness_gap, else {COMPLETENESS_GAP_LIMIT}); {UNRANKED} = shown "
        "but not ranked (under-converged, or no value), the reason under the table."
    )
    return "\n".join(out) + "\n"
