"""Suite files: TOML → a validated ``Suite``. Every error is raised before any compute.

Layout (see docs/suites.md)::

    [suite]       name, description, seed, device, batch_size, images_per_unit, reference
    [dataset]     name, n_classes, pool_size, limit, and the dataset's own parameters
    [[models]]    name (+ label) and the model factory's parameters
    [[explainers]] name (+ label) and the explainer's parameters
    [[attacks]]   name (+ label) and the attack's parameters (its grid)
    metrics = ["name", …]  or  [[metrics]] tables with name and parameters
                  (+ ``explainers = [labels]``: score only those explainers)
    [[sweeps]]    explainer, label, reference = {…} and lists of values per parameter:
                  expanded into one explainer per value (varied one at a time)
"""

from __future__ import annotations

import difflib
import hashlib
import json
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from .. import registry
from ..errors import ConfigError, UnknownPluginError

SUITE_KEYS = {
    "name": "a string",
    "description": "a string",
    "seed": "an integer",
    "device": "'auto', 'cpu' or 'cuda'",
    "batch_size": "'auto' (measure the fastest chunk size, the default) or a positive integer (images per chunk)",
    "max_batch_size": "a positive integer: the largest chunk 'auto' tries on a CPU (×4 on a GPU; default 32)",
    "precision": "'fp32' (default) or 'bf16': bf16 runs the explainers' and metrics' passes under torch.autocast (docs/performance.md, section bf16)",
    "images_per_unit": "a positive integer (originals per work unit)",
    "reference": "a table {alpha = …, topk = …}: the grid point the leaderboard ranks by",
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
DEFAULT_METRICS = (
    "explanation_change_pct",
    "ssim",
    "confidence_drop_pct",
    "prediction_flipped",
    "topk_intersection",
    "rank_correlation",
)


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
        payload = json.dumps(self.to_dict(), sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def builtin_suites() -> list[str]:
    folder = resources.files("xaibench") / "suites"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def resolve_suite_path(name_or_path: str) -> tuple[str, str]:
    """Return (display source, TOML text) for a built-in suite name or a file path."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise ConfigError(f"suite file {name_or_path!r} does not exist")
        return str(path), path.read_text(encoding="utf-8")
    builtin = resources.files("xaibench") / "suites" / f"{name_or_path}.toml"
    if builtin.is_file():
        return f"xaibench/suites/{name_or_path}.toml", builtin.read_text(encoding="utf-8")
    known = builtin_suites()
    close = difflib.get_close_matches(name_or_path, known, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ConfigError(
        f"unknown suite {name_or_path!r}.{hint} Built-in suites: {', '.join(known)}; "
        "or pass the path of a .toml file."
    )


def load_suite(name_or_path: str, overrides: dict[str, Any] | None = None) -> Suite:
    source, text = resolve_suite_path(name_or_path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", file=source) from exc
    return parse_suite(data, source, overrides or {})


def _check_keys(table: dict[str, Any], allowed: dict[str, str], source: str, where: str) -> None:
    for key in table:
        if key not in allowed:
            close = difflib.get_close_matches(key, list(allowed), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            expected = "; ".join(f"{k} ({v})" for k, v in allowed.items())
            raise ConfigError(f"unknown key {key!r}.{hint} Expected: {expected}.", file=source, key=where)


def _int(value: Any, source: str, key: str, *, minimum: int = 1, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigError(f"expected an integer ≥ {minimum}, got {value!r}", file=source, key=key)
    return value


def _plugin_specs(
    entries: Any, kind: str, source: str, *, allow_strings: bool = False
) -> list[PluginSpec]:
    reg = registry.registry_for(kind)
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"expected a non-empty array of [[{kind}]] tables", file=source, key=kind)
    specs = []
    labels: set[str] = set()
    for index, entry in enumerate(entries):
        where = f"{kind}[{index}]"
        if isinstance(entry, str) and allow_strings:
            entry = {"name": entry}
        if not isinstance(entry, dict) or "name" not in entry:
            raise ConfigError("expected a table with a 'name' key", file=source, key=where)
        name = entry["name"]
        try:
            canonical = reg.resolve(name)
        except UnknownPluginError as exc:
            # Models may be any timm architecture: checked by the model layer.
            if kind == "models" and _is_timm_model(name):
                canonical = name
            else:
                raise UnknownPluginError(str(exc), file=source, key=f"{where}.name") from None
        reserved = PLUGIN_RESERVED + (
            METRIC_RESERVED if kind == "metrics" else EXPLAINER_RESERVED if kind == "explainers" else ()
        )
        params = {k: v for k, v in entry.items() if k not in reserved}
        gate = _completeness_gate(entry, canonical, reg, source, where) if kind == "explainers" else None
        only: tuple[str, ...] = ()
        if kind == "metrics" and "explainers" in entry:
            names = entry["explainers"]
            if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
                raise ConfigError(
                    "expected a non-empty array of explainer labels", file=source, key=f"{where}.explainers"
                )
            only = tuple(names)
        _check_misplaced(params, source, where)
        if canonical in reg:
            reg.validate_params(canonical, params, where=where)
        label = str(entry.get("label", name))
        if label in labels:
            raise ConfigError(
                f"two {kind} are both called {label!r}; give one a distinct 'label'",
                file=source,
                key=where,
            )
        labels.add(label)
        specs.append(PluginSpec(kind, canonical, params, label, only=only, max_completeness_gap=gate))
    return specs


def _completeness_gate(entry: dict[str, Any], name: str, reg: Any, source: str, where: str) -> float | None:
    """``max_completeness_gap`` of an [[explainers]] entry: a number > 0, for an explainer
    whose attributions should add up to f(x) − f(baseline) (``has_completeness``)."""
    if "max_completeness_gap" not in entry:
        return None
    value = entry["max_completeness_gap"]
    key = f"{where}.max_completeness_gap"
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigError(f"expected a number > 0 (e.g. 0.1 = 10 %), got {value!r}", file=source, key=key)
    if name in reg and not getattr(reg.get(name), "has_completeness", False):
        raise ConfigError(
            f"{name!r} has no completeness property (its attributions need not add up to "
            "f(x) − f(baseline)), so there is no gap to bound; remove the key",
            file=source,
            key=key,
        )
    return float(value)


def _format_value(value: Any) -> str:
    return json.dumps(value) if isinstance(value, str) else str(value)


def _sweep_specs(entries: Any, source: str, seed: int) -> list[PluginSpec]:
    """Expand ``[[sweeps]]`` into explainers: the reference setting, then one explainer per
    listed value of each parameter with every other parameter at its reference value."""
    if not isinstance(entries, list) or not entries:
        raise ConfigError("expected a non-empty array of [[sweeps]] tables", file=source, key="sweeps")
    specs: list[PluginSpec] = []
    for index, entry in enumerate(entries):
        where = f"sweeps[{index}]"
        if not isinstance(entry, dict) or "explainer" not in entry:
            raise ConfigError("expected a table with an 'explainer' key", file=source, key=where)
        try:
            name = registry.explainers.resolve(entry["explainer"])
        except UnknownPluginError as exc:
            raise UnknownPluginError(str(exc), file=source, key=f"{where}.explainer") from None
        declared = {p.name: p for p in registry.explainers.params(name)}
        reference = entry.get("reference", {})
        if not isinstance(reference, dict):
            raise ConfigError("expected a table of parameters", file=source, key=f"{where}.reference")
        registry.explainers.validate_params(name, reference, where=f"{where}.reference")
        label = str(entry.get("label", name))
        varied = {k: v for k, v in entry.items() if k not in SWEEP_KEYS}
        if not varied:
            raise ConfigError(
                "a sweep needs at least one parameter with a list of values, e.g. stdevs = [0.05, 0.3]",
                file=source,
                key=where,
            )
        for param, values in varied.items():
            if param not in declared:
                close = difflib.get_close_matches(param, list(declared), n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise ConfigError(
                    f"{name!r} has no parameter {param!r}.{hint} Its parameters: "
                    f"{', '.join(sorted(declared))}; sweep keys: {', '.join(SWEEP_KEYS)}",
                    file=source,
                    key=f"{where}.{param}",
                )
            if not isinstance(values, list) or not values:
                raise ConfigError(
                    f"expected a non-empty array of values for {param!r}", file=source, key=f"{where}.{param}"
                )
        # An explainer's own seed defaults to the suite seed (runner.engine._explainer_params).
        defaults = {p: (seed if p == "seed" else declared[p].default) for p in varied}
        reference_values = {p: reference.get(p, defaults[p]) for p in varied}
        sweep_info = {"sweep": label, "reference": dict(sorted(reference.items()))}
        specs.append(PluginSpec("explainers", name, dict(reference), label, sweep={**sweep_info, "param": None, "value": None}))
        for param, values in varied.items():
            for value in values:
                if value == reference_values[param]:
                    continue  # the reference setting is already in the sweep
                params = {**reference, param: value}
                registry.explainers.validate_params(name, params, where=f"{where}.{param}")
                specs.append(PluginSpec(
                    "explainers", name, params, f"{label} {param}={_format_value(value)}",
                    sweep={**sweep_info, "param": param, "value": value},
                ))
    return specs


def _check_misplaced(table: dict[str, Any], source: str, where: str) -> None:
    misplaced = sorted(set(table) & set(TOP_LEVEL))
    if misplaced:
        raise ConfigError(
            f"{misplaced[0]!r} is a top-level key but sits inside this table: in TOML every "
            "key after a [table] header belongs to that table; move it above the first table",
            file=source,
            key=where,
        )


def _is_timm_model(name: str) -> bool:
    try:
        import timm

        return bool(timm.is_model(name))
    except Exception:
        return False


def _with_source(exc: ConfigError, source: str) -> ConfigError:
    if exc.file:
        return exc
    return type(exc)(str(exc), file=source)


def parse_suite(data: dict[str, Any], source: str, overrides: dict[str, Any]) -> Suite:
    try:
        suite = _parse_suite(data, source, overrides)
    except ConfigError as exc:
        raise _with_source(exc, source) from None
    suite.raw, suite.overrides = data, dict(overrides)
    return suite


def _parse_suite(data: dict[str, Any], source: str, overrides: dict[str, Any]) -> Suite:
    _check_keys(data, TOP_LEVEL, source, "top level")
    for required in ("suite", "dataset", "models"):
        if required not in data:
            raise ConfigError(f"missing the [{required}] section", file=source)
    head = data["suite"]
    if not isinstance(head, dict):
        raise ConfigError("expected a table", file=source, key="suite")
    _check_keys(head, SUITE_KEYS, source, "suite")
    head = {**head, **{k: v for k, v in overrides.items() if k in SUITE_KEYS and v is not None}}
    name = head.get("name") or Path(source).stem
    if not isinstance(name, str) or not name or "/" in name or "=" in name:
        raise ConfigError(f"expected a plain name, got {name!r}", file=source, key="suite.name")
    seed = head.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ConfigError(f"expected an integer, got {seed!r}", file=source, key="suite.seed")
    device = head.get("device", "auto")
    if device not in ("auto", "cpu", "cuda") and not str(device).startswith("cuda:"):
        raise ConfigError(
            f"expected 'auto', 'cpu' or 'cuda', got {device!r}", file=source, key="suite.device"
        )
    batch_size: int | str = head.get("batch_size", "auto")
    if batch_size != "auto":
        batch_size = _int(batch_size, source, "suite.batch_size")  # type: ignore[assignment]
    max_batch_size = _int(head.get("max_batch_size", 32), source, "suite.max_batch_size")
    precision = head.get("precision", "fp32")
    if precision not in ("fp32", "bf16"):
        raise ConfigError(f"expected 'fp32' or 'bf16', got {precision!r}", file=source, key="suite.precision")
    images_per_unit = _int(head.get("images_per_unit", 4), source, "suite.images_per_unit")

    dataset_table = data["dataset"]
    if not isinstance(dataset_table, dict) or "name" not in dataset_table:
        raise ConfigError("expected a table with a 'name' key", file=source, key="dataset")
    dataset_name = dataset_table["name"]
    try:
        dataset_name = registry.datasets.resolve(dataset_name)
    except UnknownPluginError as exc:
        raise UnknownPluginError(str(exc), file=source, key="dataset.name") from None
    dataset_params = {k: v for k, v in dataset_table.items() if k not in DATASET_RESERVED}
    _check_misplaced(dataset_params, source, "dataset")
    if overrides.get("data") is not None:
        if "root" not in {p.name for p in registry.datasets.params(dataset_name)}:
            raise ConfigError(
                f"--data was given but the dataset {dataset_name!r} takes no 'root' parameter",
                file=source,
                key="dataset",
            )
        dataset_params["root"] = overrides["data"]
    registry.datasets.validate_params(dataset_name, dataset_params, where="dataset")
    n_classes = _int(dataset_table.get("n_classes"), source, "dataset.n_classes", allow_none=True)
    pool_size = _int(dataset_table.get("pool_size"), source, "dataset.pool_size", allow_none=True)
    limit = _int(dataset_table.get("limit"), source, "dataset.limit", allow_none=True)
    per_class = _int(dataset_table.get("per_class", 1), source, "dataset.per_class")
    if overrides.get("limit") is not None:
        limit = _int(overrides["limit"], "--limit", "limit")

    models = _plugin_specs(data["models"], "models", source)
    if "explainers" not in data and "sweeps" not in data:
        raise ConfigError("missing the [[explainers]] section (or [[sweeps]])", file=source)
    explainers = _plugin_specs(data["explainers"], "explainers", source) if "explainers" in data else []
    if "sweeps" in data:
        explainers += _sweep_specs(data["sweeps"], source, seed)
    seen: set[str] = set()
    for spec in explainers:
        if spec.label in seen:
            raise ConfigError(
                f"two explainers are both called {spec.label!r} (a sweep's label or value repeats "
                "an explainer's); give one a distinct 'label'",
                file=source,
            )
        seen.add(spec.label)
    attacks = _plugin_specs(data.get("attacks", []), "attacks", source) if data.get("attacks") else []
    metric_entries = data.get("metrics", list(DEFAULT_METRICS))
    metrics = _plugin_specs(metric_entries, "metrics", source, allow_strings=True)
    labels = [e.label for e in explainers]
    for index, spec in enumerate(metrics):
        unknown = [name for name in spec.only if name not in labels]
        if unknown:
            raise ConfigError(
                f"no explainer is labelled {unknown[0]!r}; explainer labels: {', '.join(labels)}",
                file=source,
                key=f"metrics[{index}].explainers",
            )

    # Attacks and metrics validate their own parameters (ranges of α, top-k, …) when built.
    for index, spec in enumerate(attacks):
        _construct(registry.attacks, spec, source, f"attacks[{index}]")
    for index, spec in enumerate(metrics):
        _construct(registry.metrics, spec, source, f"metrics[{index}]")

    reference = head.get("reference", {})
    if not isinstance(reference, dict) or set(reference) - {"alpha", "topk"}:
        raise ConfigError(
            "expected a table {alpha = …, topk = …}", file=source, key="suite.reference"
        )

    examples = _int(head.get("examples", 2), source, "suite.examples", minimum=0)
    on_attacked = head.get("faithfulness_on_attacked", "reference")
    if on_attacked not in ("reference", "all", "none"):
        raise ConfigError(
            f"expected 'reference', 'all' or 'none', got {on_attacked!r}",
            file=source,
            key="suite.faithfulness_on_attacked",
        )
    if not attacks and not any(
        getattr(registry.metrics.get(m.name), "category", "") == "faithfulness" for m in metrics
    ):
        raise ConfigError(
            "the suite has no [[attacks]] and no faithfulness metric, so it would compute nothing",
            file=source,
        )

    return Suite(
        name=name,
        description=str(head.get("description", "")),
        source=source,
        seed=seed,
        device=device,
        batch_size=batch_size,  # type: ignore[arg-type]
        images_per_unit=images_per_unit,  # type: ignore[arg-type]
        dataset=PluginSpec("datasets", dataset_name, dataset_params, dataset_name),
        n_classes=n_classes,
        pool_size=pool_size,
        limit=limit,
        models=models,
        explainers=explainers,
        attacks=attacks,
        metrics=metrics,
        reference=dict(reference),
        examples=examples,  # type: ignore[arg-type]
        max_batch_size=max_batch_size,  # type: ignore[arg-type]
        precision=precision,
        faithfulness_on_attacked=on_attacked,
        per_class=per_class,  # type: ignore[arg-type]
    )


def _construct(reg: registry.Registry[Any], spec: PluginSpec, source: str, where: str) -> Any:
    try:
        return reg.get(spec.name)(**spec.params)
    except ConfigError as exc:
        raise ConfigError(str(exc), file=source, key=exc.key or where) from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid parameters for {spec.name!r}: {exc}", file=source, key=where) from None
