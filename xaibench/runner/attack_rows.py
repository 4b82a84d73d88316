"""One attack on one unit: corrupt the originals, explain every corrupted copy, write the
robustness rows, the faithfulness rows of the attacked explanations and the examples.

Nothing here knows an attack's columns: the rows carry whatever the attack's ``AttackOutput``
columns are; the grid point used for faithfulness and examples is the attack's recorded
reference point (provenance / plan.attack_reference), and a row represents it when the attack's
declared ``representative_row`` values match (eXIAA: its most confident attack image).
"""

from __future__ import annotations

import json
import math
from typing import Any

import torch
from torch import Tensor

from . import degenerate, examples, faithfulness_rows
from .model_access import chunks
from .outputs import finite, nan_where, nonfinite_fraction
from .tables import gate


def _matches(value: Any, wanted: Any) -> bool:
    try:
        return math.isclose(float(value), float(wanted))
    except (TypeError, ValueError):
        return value == wanted


def reference_point(attack: Any, record: dict[str, Any]) -> dict[str, Any]:
    """The recorded reference point when it is a grid point, else the attack's own."""
    point = dict(record.get("reference") or {})
    grid = attack.grid() if hasattr(attack, "grid") else []
    if any(all(_matches(p.get(k), v) for k, v in point.items()) for p in grid):
        return point
    own = getattr(attack, "reference_point", None)
    return dict(own()) if callable(own) else {}


def select_rows(columns: dict[str, list[Any]], point: dict[str, Any], representative: dict[str, Any], rows: int) -> list[int]:
    """Rows at ``point`` whose columns also match the attack's ``representative`` values."""
    wanted = {k: v for k, v in {**point, **representative}.items() if k in columns}
    return [r for r in range(rows) if all(_matches(columns[k][r], v) for k, v in wanted.items())]


def _chosen_rows(run: Any, attack: Any, record: dict[str, Any], output: Any, rows: int) -> list[int]:
    mode = run.suite.faithfulness_on_attacked
    if mode == "all":
        return list(range(rows))
    if mode == "reference" or run.unit.example_images > 0:
        representative = dict(getattr(attack, "representative_row", {}) or {})
        return select_rows(output.columns, reference_point(attack, record), representative, rows)
    return []


def _explain_rows(run: Any, output: Any, origin: Tensor, kept: set[int]) -> dict[str, Any]:
    """Explain every corrupted image in explain-sized chunks (memory bounded by the chunk) and
    compute the robustness metrics; keep the explanations of the ``kept`` rows."""
    access, rows = run.access, output.images.shape[0]
    values: dict[str, list[float]] = {spec.label: [] for _, spec in run.robustness}
    out: dict[str, Any] = {"predicted": [], "gap": [], "nonfinite": [], "degenerate": [], "kept": {}, "values": values}
    for part in chunks(rows, max(access.sizes.get(access.explain_key), 1)):
        images, rows_origin = output.images[part], origin[part]
        # One forward + backward per chunk where the explainer fuses prediction; the logits
        # also serve the completeness gap (no second forward of the corrupted images).
        logits, predicted, attributions = access.predict_and_explain(
            images, [run.noise_ids[i] for i in rows_origin.tolist()]
        )
        gap = access.completeness_gap(images, predicted, attributions, logits=logits)
        bad = nonfinite_fraction(run.clean[rows_origin], attributions)
        clean = [run.clean_kinds[i] for i in rows_origin.tolist()]
        kinds = {"clean": clean, "corrupted": degenerate.map_kinds(attributions)}
        labels = degenerate.describe(kinds, bad)
        skip = degenerate.excluded(bad, labels)
        tensors = {
            "original": run.batch.pixels[rows_origin],
            "corrupted": images,
            "expl_original": run.clean_finite[rows_origin],
            "expl_corrupted": finite(attributions),
            "probs_original": run.probs[rows_origin],
            "probs_corrupted": torch.softmax(logits, dim=1),
        }
        for metric, spec in run.robustness:
            values[spec.label].extend(nan_where(metric(**{name: tensors[name] for name in metric.needs}), skip))
        out["nonfinite"].extend(bad.tolist())
        out["degenerate"].extend(labels)
        out["predicted"].extend(predicted.tolist())
        out["gap"].extend(gap.tolist() if gap is not None else [math.nan] * images.shape[0])
        for offset, row in enumerate(range(part.start, part.stop)):
            if row in kept:
                out["kept"][row] = (attributions[offset], int(predicted[offset]))
    return out


def _robustness_columns(run: Any, spec: Any, output: Any, origin: list[int], done: dict[str, Any]) -> dict[str, Any]:
    batch, rows = run.batch, len(origin)
    return {
        "image_id": [batch.ids[i] for i in origin],
        "label": [int(batch.labels[i]) for i in origin],
        "predicted_class": [int(run.predicted[i]) for i in origin],
        "predicted_prob": [float(run.probs[i, run.predicted[i]]) for i in origin],
        "predicted_class_corrupted": done["predicted"],
        "attack": [spec.label] * rows,
        "attack_name": [spec.name] * rows,
        "attack_params": [json.dumps(spec.params, sort_keys=True)] * rows,
        **output.columns,
        **done["values"],
        **{f"noise_floor_{label}": [values[i] for i in origin] for label, values in run.floors.items()},
        "nonfinite_fraction": done["nonfinite"],
        degenerate.COLUMN: done["degenerate"],
        "max_completeness_gap": [gate(run.unit.explainer)] * rows,
        "completeness_gap": [math.nan if run.clean_gap is None else float(run.clean_gap[i]) for i in origin],
        "completeness_gap_corrupted": done["gap"],
    }


def _attacked_faithfulness(run: Any, spec: Any, output: Any, origin: list[int], selected: list[int], kept: dict[int, Any]) -> None:
    count = len(selected)
    extra = {
        "on": ["attacked"] * count,
        "attack": [spec.label] * count,
        "attack_name": [spec.name] * count,
        **{name: [values[r] for r in selected] for name, values in output.columns.items()},
    }
    attributions = torch.stack([kept[r][0] for r in selected])
    target = torch.tensor([kept[r][1] for r in selected])
    faithfulness_rows.score(run, output.images[selected], attributions, target, [origin[r] for r in selected], extra)


def _examples(run: Any, spec: Any, output: Any, origin: list[int], selected: list[int], done: dict[str, Any]) -> None:
    first_row_of: dict[int, int] = {}
    for row in selected:
        first_row_of.setdefault(origin[row], row)
    count = min(run.unit.example_images, len(run.batch))
    rows = [first_row_of[i] for i in range(count) if i in first_row_of]
    if not rows:
        return
    total = len(origin)
    columns = {
        "attack": [spec.label] * total,
        "attack_name": [spec.name] * total,
        **output.columns,
        **done["values"],
    }
    run.tables.add("examples", examples.example_rows(
        rows, ids=run.batch.ids, origin=origin, originals=run.batch.pixels, corrupted=output.images,
        clean=run.clean, attacked={r: done["kept"][r][0] for r in rows}, columns=columns,
    ))


def attack_unit(run: Any, spec: Any, attack: Any, oracle: Any, context: Any) -> None:
    """Run ``attack`` on the unit's originals and add its rows to ``run.tables``."""
    record = run.plugins["attacks"].get(spec.label, {})
    output = attack.perturb(run.batch.pixels, oracle, context)
    origin_tensor = output.origin.long()
    rows = output.images.shape[0]
    selected = _chosen_rows(run, attack, record, output, rows)
    done = _explain_rows(run, output, origin_tensor, set(selected))
    origin = origin_tensor.tolist()
    run.tables.add("robustness", _robustness_columns(run, spec, output, origin, done))
    if run.faithfulness and run.suite.faithfulness_on_attacked != "none" and selected:
        _attacked_faithfulness(run, spec, output, origin, selected, done["kept"])
    if run.unit.example_images > 0 and selected:
        _examples(run, spec, output, origin, selected, done)
