"""``xaibench plan``'s table: the cost of each model × explainer and the totals."""

from __future__ import annotations

from typing import Any

from rich.table import Table


def duration(seconds: float | None) -> str:
    """``3 h 05 min``, ``12 min 30 s``, ``45 s``; ``?`` when unknown."""
    if seconds is None:
        return "?"
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


def size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def count(n: int | None) -> str:
    if n is None:
        return "?"
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f}{unit}"
    return str(n)


def _rate(seconds: float | None) -> str:
    return "?" if not seconds else f"{1 / seconds:.1f}"


def print_plan(cost: Any, console: Any) -> None:
    table = Table(title=f"plan: suite {cost.suite} on {cost.device}", title_justify="left")
    for header in ("model", "explainer", "units to run", "originals", "corrupted", "explained",
                   "forward passes", "backward passes", "disk", "explained img/s", "estimate"):
        table.add_column(header, justify="left" if header in ("model", "explainer") else "right")
    for pair in cost.pairs:
        if pair.incompatible:
            table.add_row(pair.model, pair.explainer, "skipped", *[""] * 7, pair.incompatible[:40])
            continue
        table.add_row(
            pair.model, pair.explainer, f"{pair.pending}/{pair.units}", count(pair.originals), count(pair.corrupted),
            count(pair.explained), count(pair.forward_passes), count(pair.backward_passes), size(pair.disk_bytes),
            _rate(pair.explain_s) if pair.pending else "", duration(pair.estimate_s),
        )
    console.print(table)
    console.print(
        f"total: {cost.total('pending')} units to run, {count(cost.total('explained'))} images explained, "
        f"{size(cost.total('disk_bytes'))} on disk, estimated [bold]{duration(cost.estimate_s)}[/bold] on "
        f"{cost.device} (probe {cost.probe_s:.0f} s)",
        highlight=False,
    )
    for note in cost.notes:
        console.print(f"[dim]note: {note}[/dim]", highlight=False)
