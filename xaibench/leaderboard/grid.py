"""Grid points of an attack: the rows at a reference point over the attack's own grid axes,
and how a point reads in a caption. Which columns are axes comes from the recorded metadata
(``meta.AttackInfo.grid_axes``); nothing here knows an attack."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd


def _numeric(values: pd.Series) -> pd.Series | None:
    """``values`` as floats when every non-null value is a number, else None."""
    present = values.dropna()
    if present.empty:
        return None
    converted = pd.to_numeric(present, errors="coerce")
    if converted.isna().any() or present.map(lambda v: isinstance(v, bool)).any():
        return None
    return pd.to_numeric(values, errors="coerce").astype(np.float64)


def _nearest(available: np.ndarray, target: float) -> float:
    return float(available[np.argmin(np.abs(available - target))])


def _pick(values: pd.Series, wanted: Any) -> tuple[Any, np.ndarray] | None:
    """The grid value nearest ``wanted`` (the largest when None) and the rows that have it."""
    numeric = _numeric(values)
    if numeric is not None:
        available = np.unique(numeric.dropna().to_numpy(dtype=np.float64))
        try:
            target = float(wanted) if wanted is not None else float(available.max())
        except (TypeError, ValueError):
            target = float(available.max())
        value = _nearest(available, target)
        return value, np.isclose(numeric.to_numpy(dtype=np.float64), value)
    present = values.dropna()
    if present.empty:
        return None
    texts = present.astype(str)
    value = str(wanted) if wanted is not None and str(wanted) in set(texts) else max(texts)
    return value, (values.astype(str) == value).to_numpy() & values.notna().to_numpy()


def reference_rows(
    frame: pd.DataFrame, axes: Sequence[str], wanted: Mapping[str, Any]
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Rows at the grid point ``wanted`` over ``axes`` (the nearest grid value per axis when
    it is absent; the largest value of an axis ``wanted`` does not name) and that point."""
    point: dict[str, Any] = {}
    rows = frame
    for axis in axes:
        if axis not in rows.columns or rows[axis].isna().all():
            continue
        picked = _pick(rows[axis], wanted.get(axis))
        if picked is None:
            continue
        point[axis], mask = picked
        rows = rows[mask]
    return rows, point


def off_grid(point: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    """Whether ``wanted`` names a value the rows did not have on an axis of ``point``."""
    for axis, value in wanted.items():
        if axis not in point:
            continue
        try:
            if not math.isclose(float(point[axis]), float(value)):
                return True
        except (TypeError, ValueError):
            if str(point[axis]) != str(value):
                return True
    return False


def value_text(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        return str(value)
    return f"{float(value):g}"


def point_text(point: Mapping[str, Any], titles: Mapping[str, str] | None = None) -> str:
    """``"α = 0.15, top-k = 0.2"``: each axis by its recorded title (else its column name)."""
    titles = titles or {}
    return ", ".join(f"{titles.get(k, k)} = {value_text(v)}" for k, v in point.items())


def primary_source_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of an attack's own protocol: an attack run from several source classes (the
    running-up-class ablation) contributes only its rank-1 rows to the overview tables and
    figures; the other ranks are compared in the ablation table."""
    if frame.empty or "source_class_rank" not in frame.columns or "attack" not in frame.columns:
        return frame
    rank = frame["source_class_rank"]
    has_rank_one = frame.groupby("attack")["source_class_rank"].transform(lambda r: bool((r == 1).any()))
    return frame[~has_rank_one | rank.isna() | (rank == 1)]


def at_rest_axes(frame: pd.DataFrame, axes: Sequence[str], reference: Mapping[str, Any]) -> pd.DataFrame:
    """An attack's rows at its reference value on every axis after the first two (a figure
    shows two axes; the others are held at the reference point)."""
    rows, _ = reference_rows(frame, list(axes)[2:], reference)
    return rows
