"""What the rows declare about themselves: the convergence gate, non-finite explanations,
attack-image fallbacks and the explainer's noise floor (docs/leaderboard.md).

Everything here reads runner columns only (``completeness_gap``, ``max_completeness_gap``,
``nonfinite_fraction``, ``degenerate_map``, ``attack_image_source``, ``noise_floor_<metric>``); what a plugin is
called or how it behaves comes from the recorded metadata (``meta``), never from its name.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from ..runner.degenerate import COLUMN as DEGENERATE
from ..runner.degenerate import flags as degenerate_flags
from ..runner.degenerate import what as degenerate_what
from .stats import Estimate, per_image

COMPLETENESS_GAP_LIMIT = 0.1


def completeness_gaps(robustness: pd.DataFrame) -> dict[tuple[str, str], float]:
    """Median over images of the clean explanation's relative completeness gap, per
    (model, explainer), for methods that have completeness (others are NaN and left out)."""
    if robustness.empty or "completeness_gap" not in robustness.columns:
        return {}
    images = per_image(robustness, ["model", "explainer"], "completeness_gap")
    medians = images.groupby(["model", "explainer"])["completeness_gap"].median()
    return {(str(m), str(e)): float(v) for (m, e), v in medians.items() if math.isfinite(v)}


NONFINITE = "nonfinite_fraction"
GATE = "max_completeness_gap"
NOISE_FLOOR = "noise_floor_"
IMAGE_SOURCE = "attack_image_source"
POOL = "pool"  # attack_image_source of a row whose attack image came from the whole pool
NOISE_FLOOR_FLAG = "within the explainer's noise floor"
NOISE_FLOOR_NOTE = (
    "noise floor: the same metric between two clean explanations of each image drawn with "
    "independent random seeds, i.e. the explainer's own randomness (– for deterministic "
    "explainers); an attack effect within the noise floor is not distinguishable from the "
    "explainer's own randomness (⚠ on the cell)"
)
NONFINITE_REASON = "the explainer returned non-finite attributions (NaN/inf)"
POOL_REASON = (
    "took their attack image from the whole pool: the pool held no (labelled) image of the "
    "running-up class, which the paper's rule takes its attack images from"
)


def _pair(model: Any, explainer: Any) -> tuple[str, str]:
    return str(model), str(explainer)


def _short(value: float) -> str:
    """A gap or gate for a sentence: two decimals, more significant digits when tiny."""
    return f"{value:.2f}" if value == 0 or abs(value) >= 0.01 else f"{value:.2g}"


def completeness_gates(frame: pd.DataFrame) -> dict[tuple[str, str], float]:
    """The convergence gate of each (model, explainer) as its rows declare it
    (``max_completeness_gap``; the strictest when rows disagree). Pairs whose rows declare
    none are absent: :data:`COMPLETENESS_GAP_LIMIT` applies to them."""
    if frame.empty or GATE not in frame.columns:
        return {}
    gates = pd.to_numeric(frame[GATE], errors="coerce")
    rows = frame.assign(_gate=gates)[np.isfinite(gates.to_numpy(dtype=np.float64))]
    if rows.empty:
        return {}
    found = rows.groupby([rows["model"].astype(str), rows["explainer"].astype(str)])["_gate"].min()
    return {_pair(m, e): float(v) for (m, e), v in found.items()}


def under_converged(frame: pd.DataFrame) -> dict[tuple[str, str], str]:
    """Per (model, explainer) whose median completeness gap exceeds its gate: why it is not
    ranked. Such pairs are shown (greyed) but left out of every ranking."""
    gaps = completeness_gaps(frame)
    gates = completeness_gates(frame)
    out = {}
    for pair, gap in gaps.items():
        gate = gates.get(pair, COMPLETENESS_GAP_LIMIT)
        if gap > gate:
            source = "its max_completeness_gap" if pair in gates else "the leaderboard's default limit"
            out[pair] = (
                f"not ranked: median completeness gap {_short(gap)} > {_short(gate)} ({source}) — "
                "under-converged; raise n_steps or set max_completeness_gap"
            )
    return out


class Excluded(NamedTuple):
    """The rows of a (model, explainer) left out of its means, by reason."""

    nonfinite: int  # rows with non-finite attributions
    total: int  # rows
    degenerate: int = 0  # other rows whose explanation was all zero or constant
    what: str = ""  # "an all-zero explanation", … (``degenerate_what``)

    def texts(self, of: str = "") -> list[str]:
        """``"k of n rows{of} excluded: <reason>"``, one per reason with rows."""
        reasons = [(self.nonfinite, NONFINITE_REASON), (self.degenerate, degenerate_reason(self.what))]
        return [f"{k} of {_rows(self.total)}{of} excluded: {why}" for k, why in reasons if k]


def degenerate_reason(what: str = "") -> str:
    """Why rows with a degenerate explanation are left out (``what``: ``degenerate_what``)."""
    return f"the explainer returned {what or 'an all-zero or constant explanation'}, on which the metrics are undefined"


def _nonfinite_rows(frame: pd.DataFrame) -> pd.Series:
    if NONFINITE not in frame.columns:
        return pd.Series(False, index=frame.index)
    return pd.to_numeric(frame[NONFINITE], errors="coerce").fillna(0.0) > 0


def exclusion_counts(frame: pd.DataFrame) -> dict[tuple[str, str], Excluded]:
    """Per (model, explainer) with rows left out of its means: how many, and why (non-finite
    attributions first; else an all-zero or constant explanation, ``degenerate_map``). Rows
    without these columns (older results) count as kept."""
    if frame.empty:
        return {}
    nonfinite = _nonfinite_rows(frame)
    degenerate = degenerate_flags(frame) & ~nonfinite
    if not (nonfinite.any() or degenerate.any()):
        return {}
    rows = pd.DataFrame({"n": nonfinite, "d": degenerate, "label": frame.get(DEGENERATE, pd.Series("", index=frame.index))})
    out = {}
    for (m, e), group in rows.groupby([frame["model"].astype(str), frame["explainer"].astype(str)]):
        if group["n"].any() or group["d"].any():
            what = degenerate_what(group.loc[group["d"], "label"]) if group["d"].any() else ""
            out[_pair(m, e)] = Excluded(int(group["n"].sum()), len(group), int(group["d"].sum()), what)
    return out


#: The leaderboard's tables call it by this name; it counts degenerate explanations too.
nonfinite_counts = exclusion_counts


def mask_nonfinite(frame: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """``frame`` with ``metrics`` NaN on the rows with non-finite attributions or a degenerate
    explanation (the runner writes them so already; this keeps the notes true for rows that
    were not)."""
    if frame.empty:
        return frame
    bad = (_nonfinite_rows(frame) | degenerate_flags(frame)).to_numpy()
    present = [m for m in metrics if m in frame.columns]
    if not bad.any() or not present:
        return frame
    frame = frame.copy()
    frame.loc[bad, present] = np.nan
    return frame


def _rows(n: int) -> str:
    return f"{n} row{'s' if n != 1 else ''}"


def exclusion_notes(frame: pd.DataFrame) -> list[str]:
    """A table note per (model, explainer) and reason with rows left out: non-finite
    attributions, or an all-zero / constant explanation."""
    return [
        text
        for (model, explainer), counts in sorted(exclusion_counts(frame).items())
        for text in counts.texts(f" of {explainer} × {model}")
    ]


#: The leaderboard's tables call it by this name; it notes degenerate explanations too.
nonfinite_notes = exclusion_notes


def undefined_notes(frame: pd.DataFrame, metric: str, title: str) -> list[str]:
    """A table note per (model, explainer) with rows whose ``metric`` is missing for another
    reason than non-finite attributions or a degenerate explanation (e.g. the explanation
    change of an all-zero explanation in results written before ``degenerate_map``)."""
    if frame.empty or metric not in frame.columns:
        return []
    missing = pd.to_numeric(frame[metric], errors="coerce").isna()
    missing &= ~(_nonfinite_rows(frame) | degenerate_flags(frame))  # said by exclusion_notes
    counts = missing.groupby([frame["model"].astype(str), frame["explainer"].astype(str)]).agg(["sum", "size"])
    return [
        f"{int(r['sum'])} of {_rows(int(r['size']))} of {e} × {m} have no {title} value "
        "(the metric is undefined for them, e.g. an all-zero explanation) and are left out"
        for (m, e), r in counts.iterrows() if r["sum"] > 0
    ]


def _declared_source(params: Any) -> str | None:
    try:
        decoded = json.loads(params) if isinstance(params, str) else None
    except ValueError:
        return None
    value = decoded.get(IMAGE_SOURCE) if isinstance(decoded, dict) else None
    return str(value) if value is not None else None


def pool_fallback_note(frame: pd.DataFrame, what: str = "") -> str | None:
    """``"n of m rows took their attack image from the whole pool: …"`` when rows of an
    attack that asked for its source class's images (the default rule) fell back to the
    pool; an attack configured with ``attack_image_source = "pool"`` is not counted."""
    if frame.empty or IMAGE_SOURCE not in frame.columns:
        return None
    rows = frame[frame[IMAGE_SOURCE].notna()]
    if "attack_params" in rows.columns:
        asked = rows["attack_params"].map(_declared_source)
        rows = rows[asked.astype(object).ne(POOL).to_numpy()]
    fallback = int((rows[IMAGE_SOURCE].astype(str) == POOL).sum())
    if not fallback:
        return None
    return f"{fallback} of {_rows(len(rows))}{what} {POOL_REASON}"


def noise_floor_flag(effect: Estimate, floor: Estimate, higher_is_better: bool, digits: int) -> str:
    """The ⚠ of an attack's cell whose mean is not beyond its noise floor's interval (above
    the upper end for a change, below the lower end for a similarity); empty otherwise."""
    if effect.missing or floor.missing:
        return ""
    if higher_is_better:  # a similarity: the attack must push it below the floor
        bound = floor.low if math.isfinite(floor.low) else floor.mean
        if effect.mean < bound:
            return ""
        relation, end = "is not below", "lower"
    else:
        bound = floor.high if math.isfinite(floor.high) else floor.mean
        if effect.mean > bound:
            return ""
        relation, end = "is not above", "upper"
    return (
        f"{NOISE_FLOOR_FLAG}: the mean {effect.mean:.{digits}f} {relation} {bound:.{digits}f}, the "
        f"{end} end of the noise floor's 95 % interval"
    )


def completeness_warning(gap: float, title: str = "", convergence_param: str | None = None,
                         has_completeness: bool | None = None) -> str:
    """The tooltip of a flagged pair, from the explainer's recorded capabilities: a method
    whose completeness is approximated (``convergence_param``) was not run long enough; one
    that has completeness by its propagation rules (no such parameter) has rules that are not
    exact for this model; without metadata, the plain fact."""
    if convergence_param:
        return (
            f"attributions do not add up to the output difference on this model "
            f"(median completeness gap {gap:.2f}); e.g. {convergence_param} too small"
        )
    if has_completeness and title:
        return f"{title} rules not exact for this model (median completeness gap {gap:.2f})"
    return (
        f"attributions do not add up to the output difference on this model "
        f"(median completeness gap {gap:.2f})"
    )


def explainer_warning(suite: Any) -> Callable[[str, float], str]:
    """``warning(explainer label, gap)`` for ``tables.flag_cells``, from the suite's
    recorded explainer capabilities."""

    def warning(explainer: str, gap: float) -> str:
        info = suite.explainer(explainer)
        return completeness_warning(gap, info.title, info.convergence_param, info.has_completeness)

    return warning
