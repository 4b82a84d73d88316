"""The unit's tables as column lists, and the columns every row of a unit shares."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any

import pyarrow as pa
import torch

from .. import __version__
from . import results
from .provenance import package_version


class UnitTables:
    """Column lists for the unit's tables (``results.TABLES``)."""

    def __init__(self) -> None:
        self.columns: dict[str, dict[str, list[Any]]] = {name: {} for name in results.TABLES}
        self.rows: dict[str, int] = dict.fromkeys(results.TABLES, 0)

    def add(self, table: str, values: dict[str, Iterable[Any]]) -> None:
        lists = {name: list(column) for name, column in values.items()}
        counts = {len(column) for column in lists.values()}
        if len(counts) > 1:
            raise ValueError(f"{table}: columns of different lengths {counts}")
        count = counts.pop() if counts else 0
        target = self.columns[table]
        for name in set(target) | set(lists):
            # A column that appears later (a plugin's extra column) is null-filled before.
            target.setdefault(name, [None] * self.rows[table]).extend(lists.get(name, [None] * count))
        self.rows[table] += count

    def arrow(self, shared: dict[str, Any], labels: dict[str, Any]) -> dict[str, pa.Table]:
        """Arrow tables: ``labels`` (suite, model, explainer) on every table, ``shared`` (the
        unit's provenance) on every table but the examples."""
        out: dict[str, pa.Table] = {}
        for table, columns in self.columns.items():
            count = self.rows[table]
            if not count:
                continue
            extra = {**labels, **(shared if table != "examples" else {"run_id": shared["run_id"]})}
            for name, value in extra.items():
                columns[name] = [value] * count
            out[table] = pa.table(columns)
        return out


def gate(spec: Any) -> float:
    """The explainer's convergence gate (``max_completeness_gap``), NaN when it has none."""
    value = getattr(spec, "max_completeness_gap", None)
    return math.nan if value is None else float(value)


def shared_columns(unit: Any, suite: Any, classifier: Any, access: Any, device: Any, run_id: str, wall: float) -> dict[str, Any]:
    """Provenance every robustness / faithfulness / sensitivity row of the unit carries."""
    return {
        "run_id": run_id,
        "unit_id": unit.unit_id,
        "seed": suite.seed,
        "dataset": suite.dataset.name,
        "model_name": unit.model.name,
        "model_params": json.dumps(unit.model.params, sort_keys=True),
        "pretrained_source": classifier.pretrained_source,
        # The model's own held-out accuracy where it knows it (trained models do).
        "model_test_accuracy": float(getattr(classifier, "test_accuracy", math.nan)),
        "explainer_name": unit.explainer.name,
        "explainer_params": json.dumps(unit.explainer_params, sort_keys=True),
        "device": str(device),
        "precision": suite.precision,
        "xaibench_version": __version__,
        "torch_version": torch.__version__,
        "captum_version": package_version("captum"),
        "unit_wall_s": wall,
        "unit_forward_images": access.forward_images,
        "unit_explained_images": access.explained_images,
        "explain_chunk_size": access.sizes.get(access.explain_key),
        "forward_chunk_size": access.sizes.get(access.forward_key),
        "explainer_images_per_s": access.explainer_images_per_s(),
    }
