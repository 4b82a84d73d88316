"""Degenerate explanations: a map that is all zero, or constant, ranks nothing.

Every metric that compares, ranks or deletes by attribution is undefined on such a map or
silently arbitrary (an all-zero map scored top-k intersection 1.0 and the best deletion AUC,
by index order). So, like a map with non-finite entries, a row whose explanation is
degenerate gets NaN metrics and says why in the ``degenerate_map`` column:

* robustness rows: ``"clean all-zero"``, ``"corrupted constant"``,
  ``"clean and corrupted all-zero"``, ``"clean all-zero, corrupted constant"``, …;
* faithfulness rows (the map scored): ``"all-zero"`` or ``"constant"``;
* ``""`` for every other row, including rows already excluded for non-finite entries (that
  reason comes first, so each excluded row is counted once).

Exact tests, no tolerance: ``max |a| == 0`` is all-zero, ``max a == min a`` is constant.
Nothing here knows a plugin; the column is the runner's, like ``nonfinite_fraction``.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import torch
from torch import Tensor

COLUMN = "degenerate_map"
ALL_ZERO = "all-zero"
CONSTANT = "constant"


def map_kinds(attributions: Tensor) -> list[str]:
    """Per row of an ``N×…`` map: ``"all-zero"``, ``"constant"`` or ``""`` (rows with a
    non-finite entry are ``""``: they are excluded for that)."""
    flat = attributions.detach().flatten(1)
    if flat.shape[1] == 0:
        return [""] * flat.shape[0]
    finite = torch.isfinite(flat).all(dim=1)
    zero = finite & (flat.abs().amax(dim=1) == 0)
    constant = finite & (flat.amax(dim=1) == flat.amin(dim=1)) & ~zero
    kinds = torch.where(zero, 2, torch.where(constant, 1, 0)).tolist()
    return [(ALL_ZERO if k == 2 else CONSTANT if k == 1 else "") for k in kinds]


def describe(maps: dict[str, Sequence[str]], nonfinite: Tensor | None = None) -> list[str]:
    """Per row, which of the named maps were degenerate and how (``maps``: name → the
    ``map_kinds`` of that map); ``""`` where none was, or where ``nonfinite`` > 0."""
    names = list(maps)
    rows = len(maps[names[0]]) if names else 0
    skip = [False] * rows if nonfinite is None else (nonfinite.detach().cpu() > 0).tolist()
    out = []
    for row in range(rows):
        parts = [(name, maps[name][row]) for name in names if maps[name][row]]
        if skip[row] or not parts:
            out.append("")
        elif len(parts) > 1 and len({kind for _, kind in parts}) == 1:
            out.append(f"{' and '.join(name for name, _ in parts)} {parts[0][1]}")
        else:
            out.append(", ".join(f"{name} {kind}" for name, kind in parts))
    return out


def excluded(nonfinite: Tensor, labels: Sequence[str]) -> Tensor:
    """The rows whose metrics are NaN'd (> 0): non-finite entries or a degenerate map."""
    degenerate = torch.tensor([bool(label) for label in labels], dtype=torch.float64)
    return nonfinite.detach().double().cpu() + degenerate


def flags(frame: pd.DataFrame) -> pd.Series:
    """Per row of a results frame: whether its explanation was degenerate (False where the
    column is absent, e.g. older results)."""
    if frame.empty or COLUMN not in frame.columns:
        return pd.Series(False, index=frame.index)
    return frame[COLUMN].fillna("").astype(str) != ""


def what(labels: pd.Series | Sequence[str]) -> str:
    """``"an all-zero explanation"``, ``"a constant explanation"`` or both, from the labels."""
    found = {kind for label in labels for kind in (ALL_ZERO, CONSTANT) if kind in str(label)}
    if found == {ALL_ZERO}:
        return "an all-zero explanation"
    if found == {CONSTANT}:
        return "a constant explanation"
    return "an all-zero or constant explanation"


def degenerate_warning(frame: pd.DataFrame, table: str = "robustness") -> str | None:
    """The one line to print after a run when rows of ``frame`` (one results table, named
    ``table`` in the text) had a degenerate explanation; None when none had. E.g.
    ``"warning: 4 of 8 robustness rows had an all-zero explanation (digits_cnn × zeros: 4 of
    4); their metrics are NaN and excluded from the means and ranks (column degenerate_map)"``.
    """
    bad = flags(frame)
    if not bad.any():
        return None
    pairs = []
    if {"model", "explainer"} <= set(frame.columns):
        counts = bad.groupby([frame["model"].astype(str), frame["explainer"].astype(str)]).agg(["sum", "size"])
        pairs = [f"{m} × {e}: {int(r['sum'])} of {int(r['size'])}" for (m, e), r in counts.iterrows() if r["sum"] > 0]
    where = f" ({'; '.join(pairs)})" if pairs else ""
    return (
        f"warning: {int(bad.sum())} of {len(frame)} {table} rows had {what(frame.loc[bad, COLUMN])}{where}; "
        f"their metrics are NaN and excluded from the means and ranks (column {COLUMN})"
    )
