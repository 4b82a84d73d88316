"""The robustness metrics split by where each row's attack image came from.

An attack that takes its attack images from the running-up class (eXIAA's rule, and the
baseline that injects at the same entries) records per row ``attack_image_source``: "class"
when the image is of that class, "pool" when the pool had too few and the slot fell back to
the most confident other image (docs/attacks.md). With a pool of one image per class (the
eXIAA paper's 500-class sample) most rows are fallbacks, so every claim about the attack
should be read for both groups: this table shows them side by side at each attack's
reference point, one row per model × explainer × attack × source, means over originals with
95 % bootstrap intervals (each original's rows of that source averaged first).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from .flags import IMAGE_SOURCE, POOL
from .grid import reference_rows
from .robustness import KEYS, scope_of
from .stats import summarize
from .tables import Column, Table, count_cell, estimate_cells, text_cell

SOURCE_TITLES = {"class": "running-up class", POOL: "other pool image"}


def _split_rows(scope: Any, attack: str) -> tuple[pd.DataFrame, dict[str, Any]]:
    info = scope.suite.attack(attack)
    rows = scope.frame[scope.frame["attack"].astype(str) == attack]
    return reference_rows(rows, info.point_axes, info.reference)


def source_split_tables(suite: Any, *, seed: int, resamples: int) -> list[Table]:
    """One table for the suite when some attack's rows at its reference point have both sources."""
    scope = scope_of(suite, seed=seed, resamples=resamples)
    if scope is None or IMAGE_SOURCE not in scope.frame.columns:
        return []
    metrics = list(scope.metrics)
    keys = [*KEYS, "attack", IMAGE_SOURCE]
    parts, points = [], {}
    for attack in suite.attack_order(scope.frame["attack"].dropna()):
        rows, point = _split_rows(scope, attack)
        if set(rows[IMAGE_SOURCE].dropna().astype(str)) >= {"class", POOL}:
            parts.append(rows.assign(**{IMAGE_SOURCE: rows[IMAGE_SOURCE].astype(str)}))
            points[attack] = point
    if not parts:
        return []
    frame = pd.concat(parts, ignore_index=True)
    summary = summarize(frame, keys, [m.label for m in metrics], seed=seed, resamples=resamples,
                        tag=f"{suite.name}|source-split")
    counts = frame.groupby(keys, sort=True).size()
    columns = [
        Column("model", "model", numeric=False), Column("explainer", "explainer", numeric=False),
        Column("attack", "attack", numeric=False), Column("source", "attack image", numeric=False),
        Column("images", "originals", "originals with at least one row of this source"),
        Column("rows", "rows", "rows (one per attack image) at the reference point"),
    ] + [Column(m.label, m.title, m.summary) for m in metrics]
    cells = {m.label: estimate_cells(list(summary[m.label]), m.digits) for m in metrics}
    table_rows = []
    for position, record in enumerate(summary.itertuples(index=False)):
        values = dict(zip(summary.columns, record, strict=True))
        key = tuple(values[k] for k in keys)
        row = {
            "model": text_cell(str(values["model"])), "explainer": text_cell(str(values["explainer"])),
            "attack": text_cell(suite.attack(str(values["attack"])).title),
            "source": text_cell(SOURCE_TITLES.get(str(values[IMAGE_SOURCE]), str(values[IMAGE_SOURCE]))),
            "images": count_cell(int(values["images"])), "rows": count_cell(int(counts.get(key, 0))),
        }
        row.update({m.label: cells[m.label][position] for m in metrics})
        table_rows.append(row)
    where = "; ".join(
        f"{suite.attack(a).title} at {', '.join(f'{k} {v}' for k, v in p.items())}" for a, p in points.items()
    )
    return [Table(
        id="source-split",
        title="By attack-image source: running-up class vs other pool images",
        caption=(
            f"Each attack at its reference point ({where}), its rows split by their attack image: "
            "of the running-up class (the paper's attack) or, where the pool held too few images of "
            "that class, the most confident other pool image. Means over originals, 95 % bootstrap intervals."
        ),
        columns=columns,
        rows=table_rows,
    )]
