"""What a suite is, once parsed: its plugin entries (``PluginSpec``) and settings (``Suite``),
and the keys a suite file may use (suite.py validates against them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..hashing import stable_hash

SUITE_KEYS = {
    "name": "a string",
    "description": "a string",
    "seed": "an integer",
    "device": "'auto', 'cpu' or 'cuda'",
    "batch_size": "'auto' (measure the fastest chunk size, the default) or a positive integer (images per chunk)",
    "max_batch_size": "a positive integer: the largest chunk 'auto' tries on a CPU (×4 on a GPU; default 32)",
    "precision": "'fp32' (default) or 'bf16': bf16 runs the explainers' and metrics' passes under torch.autocast (docs/performance.md, section bf16)",
    "images_per_unit": "a positive integer (originals per work unit)",
    "reference": "a table of grid-axis values, e.g. {alpha = 0.15, topk = 0.2}: the grid point each attack with those axes is ranked at (default: the attack's own reference point)",
    "examples": "a non-negative integer: example images stored per model × explainer (default 2)",
    "faithfulness_on_attacked": "'reference' (default), 'all' or 'none': which attacked explanations faithfulness metrics also score",
}
DATASET_RESERVED = {
    "name": "a registered dataset name",
    "n_classes": "a positive integer: one random image from each of N random classes",
    "pool_size": "a positive integer: images in the attack-image pool (default: the whole dataset)",
    "limit": "a positive integer: at most this many originals",
    "per_class": "a positive integer: images drawn from each chosen class (default 1)",
}
TOP_LEVEL = {
    "suite": "a table",
    "dataset": "a table",
    "models": "an array of tables [[models]]",
    "explainers": "an array of tables [[explainers]]",
    "attacks": "an array of tables [[attacks]]",
    "metrics": "an array of names or of tables [[metrics]]",
    "sweeps": "an array of tables [[sweeps]]: hyperparameter sweeps of one explainer",
}
PLUGIN_RESERVED = ("name", "label")
#: Keys of an [[explainers]] table that the runner reads (not the explainer's parameters).
EXPLAINER_RESERVED = ("max_completeness_gap",)
#: Keys of a [[metrics]] table that are not the metric's parameters.
METRIC_RESERVED = ("explainers",)
SWEEP_KEYS = {
    "explainer": "a registered explainer name",
    "label": "a short name for the sweep (default: the explainer name)",
    "reference": "a table of the reference setting's parameters (the explainer's defaults where absent)",
}
@dataclass(frozen=True)
class PluginSpec:
    """A named plugin with its parameters, as written in the suite."""

    kind: str
    name: str
    params: dict[str, Any]
    label: str
    #: Metrics only: the explainer labels this metric scores (empty: all of them).
    only: tuple[str, ...] = ()
    #: Explainers expanded from a [[sweeps]] entry: ``{"sweep", "param", "value",
    #: "reference"}`` (``param`` is None for the reference setting itself).
    sweep: dict[str, Any] | None = None
    #: Explainers with completeness only: the convergence gate (docs/explainers.md). The
    #: runner doubles the explainer's ``convergence_param`` until the median relative
    #: completeness gap on the first images is below it; the leaderboard ranks no row above it.
    max_completeness_gap: float | None = None

    def key(self) -> dict[str, Any]:
        key: dict[str, Any] = {"name": self.name, "params": self.params}
        if self.only:
            key["explainers"] = list(self.only)
        if self.max_completeness_gap is not None:
            key["max_completeness_gap"] = self.max_completeness_gap
        if self.sweep is not None:
            key["reference"] = self.sweep["reference"]
        return key

    def applies_to(self, explainer_label: str) -> bool:
        return not self.only or explainer_label in self.only


@dataclass
class Suite:
    name: str
    description: str
    source: str
    seed: int
    device: str
    batch_size: int | str
    images_per_unit: int
    dataset: PluginSpec
    n_classes: int | None
    pool_size: int | None
    limit: int | None
    models: list[PluginSpec]
    explainers: list[PluginSpec]
    attacks: list[PluginSpec]
    metrics: list[PluginSpec]
    reference: dict[str, float] = field(default_factory=dict)
    examples: int = 2
    faithfulness_on_attacked: str = "reference"
    max_batch_size: int = 32
    per_class: int = 1
    precision: str = "fp32"  # "fp32" | "bf16" (autocast of every model pass)
    # What the suite was built from, so another process (a Ray worker) can rebuild it exactly.
    raw: dict[str, Any] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        def spec(s: PluginSpec) -> dict[str, Any]:
            out = {"name": s.name, "label": s.label, **s.params}
            if s.max_completeness_gap is not None:
                out["max_completeness_gap"] = s.max_completeness_gap
            if s.only:
                out["explainers"] = list(s.only)
            if s.sweep is not None:
                out["sweep"] = s.sweep
            return out

        return {
            "suite": {
                "name": self.name,
                "description": self.description,
                "seed": self.seed,
                "device": self.device,
                "batch_size": self.batch_size,
                "max_batch_size": self.max_batch_size,
                "precision": self.precision,
                "images_per_unit": self.images_per_unit,
                "reference": self.reference,
                "examples": self.examples,
                "faithfulness_on_attacked": self.faithfulness_on_attacked,
            },
            "dataset": {
                "name": self.dataset.name,
                "n_classes": self.n_classes,
                "pool_size": self.pool_size,
                "limit": self.limit,
                "per_class": self.per_class,
                **self.dataset.params,
            },
            "models": [spec(s) for s in self.models],
            "explainers": [spec(s) for s in self.explainers],
            "attacks": [spec(s) for s in self.attacks],
            "metrics": [spec(s) for s in self.metrics],
            "source": self.source,
        }

    def fingerprint(self) -> str:
        return stable_hash(self.to_dict())


