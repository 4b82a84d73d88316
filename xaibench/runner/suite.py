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
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from .. import registry
from ..errors import ConfigError, UnknownPluginError
from .suite_entries import (
    check_keys,
    check_misplaced,
    construct,
    integer,
    plugin_specs,
    seed_value,
    sweep_specs,
)
from .suite_spec import DATASET_RESERVED, SUITE_KEYS, TOP_LEVEL, PluginSpec, Suite

__all__ = ["PluginSpec", "Suite", "builtin_suites", "default_metrics", "load_suite", "parse_suite"]


def builtin_suites() -> list[str]:
    folder = resources.files("xaibench") / "suites"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def resolve_suite_path(name_or_path: str) -> tuple[str, str]:
    """Return (display source, TOML text) for a built-in suite name or a file path."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        if path.is_dir():
            raise ConfigError(
                f"suite {name_or_path!r} is a folder; pass a .toml file (e.g. {name_or_path.rstrip('/')}/suite.toml) "
                "or a built-in suite name"
            )
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


#: What the command line (and ``xaibench.run``) may override in a suite.
OVERRIDES = ("device", "batch_size", "seed", "limit", "data", "precision", "n_classes", "models", "explainers")


def load_suite(name_or_path: str, overrides: dict[str, Any] | None = None) -> Suite:
    source, text = resolve_suite_path(name_or_path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", file=source) from exc
    return parse_suite(data, source, overrides or {})


def default_metrics() -> list[str]:
    """The metrics of a suite that names none: those that declare a ``default_position``."""
    ranked = []
    for name in registry.metrics.names():
        position = getattr(registry.metrics.get(name), "default_position", None)
        if position is not None:
            ranked.append((position, name))
    return [name for _, name in sorted(ranked)]


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


def _head(data: dict[str, Any], source: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """The [suite] table's settings, validated, with the command line's overrides."""
    head = data["suite"]
    if not isinstance(head, dict):
        raise ConfigError("expected a table", file=source, key="suite")
    check_keys(head, SUITE_KEYS, source, "suite")
    given = {k: v for k, v in overrides.items() if k in SUITE_KEYS and v is not None}
    head = {**head, **given}

    def where(key: str) -> tuple[str, str | None]:
        """An overridden setting is blamed on its flag, not on the suite file."""
        return (f"--{key.replace('_', '-')}", None) if key in given else (source, f"suite.{key}")

    def blame(key: str) -> dict[str, str | None]:
        file, at = where(key)
        return {"file": file, "key": at}

    name = head.get("name") or Path(source).stem
    if not isinstance(name, str) or not name or "/" in name or "=" in name:
        raise ConfigError(f"expected a plain name, got {name!r}", file=source, key="suite.name")
    seed = seed_value(head.get("seed", 0), *where("seed"))
    device = head.get("device", "auto")
    if device not in ("auto", "cpu", "cuda") and not str(device).startswith("cuda:"):
        raise ConfigError(f"expected 'auto', 'cpu' or 'cuda', got {device!r}", **blame("device"))
    batch_size: int | str = head.get("batch_size", "auto")
    if batch_size != "auto":
        batch_size = integer(batch_size, *where("batch_size"))  # type: ignore[assignment]
    precision = head.get("precision", "fp32")
    if precision not in ("fp32", "bf16"):
        raise ConfigError(f"expected 'fp32' or 'bf16', got {precision!r}", **blame("precision"))
    on_attacked = head.get("faithfulness_on_attacked", "reference")
    if on_attacked not in ("reference", "all", "none"):
        raise ConfigError(
            f"expected 'reference', 'all' or 'none', got {on_attacked!r}", file=source, key="suite.faithfulness_on_attacked"
        )
    return {
        "name": name,
        "description": str(head.get("description", "")),
        "seed": seed,
        "device": device,
        "batch_size": batch_size,
        "max_batch_size": integer(head.get("max_batch_size", 32), source, "suite.max_batch_size"),
        "precision": precision,
        "images_per_unit": integer(head.get("images_per_unit", 4), source, "suite.images_per_unit"),
        "examples": integer(head.get("examples", 2), source, "suite.examples", minimum=0),
        "faithfulness_on_attacked": on_attacked,
        "reference": head.get("reference", {}),
    }


def _dataset(data: dict[str, Any], source: str, overrides: dict[str, Any]) -> dict[str, Any]:
    table = data["dataset"]
    if not isinstance(table, dict) or "name" not in table:
        raise ConfigError("expected a table with a 'name' key", file=source, key="dataset")
    try:
        name = registry.datasets.resolve(table["name"])
    except UnknownPluginError as exc:
        raise UnknownPluginError(str(exc), file=source, key="dataset.name") from None
    params = {k: v for k, v in table.items() if k not in DATASET_RESERVED}
    check_misplaced(params, source, "dataset")
    if overrides.get("data") is not None:
        if "root" not in {p.name for p in registry.datasets.params(name)}:
            raise ConfigError(
                f"--data was given but the dataset {name!r} takes no 'root' parameter", file=source, key="dataset"
            )
        params["root"] = overrides["data"]
    params = registry.datasets.coerce_params(name, params, where="dataset")
    limit = integer(table.get("limit"), source, "dataset.limit", allow_none=True)
    if overrides.get("limit") is not None:
        limit = integer(overrides["limit"], "--limit", None)
    n_classes = integer(table.get("n_classes"), source, "dataset.n_classes", allow_none=True)
    if overrides.get("n_classes") is not None:
        n_classes = integer(overrides["n_classes"], "--n-classes", None)
    return {
        "dataset": PluginSpec("datasets", name, params, name),
        "n_classes": n_classes,
        "pool_size": integer(table.get("pool_size"), source, "dataset.pool_size", allow_none=True),
        "limit": limit,
        "per_class": integer(table.get("per_class", 1), source, "dataset.per_class"),
    }


def _explainers(data: dict[str, Any], source: str, seed: int) -> list[PluginSpec]:
    if "explainers" not in data and "sweeps" not in data:
        raise ConfigError("missing the [[explainers]] section (or [[sweeps]])", file=source)
    explainers = plugin_specs(data["explainers"], "explainers", source) if "explainers" in data else []
    if "sweeps" in data:
        explainers += sweep_specs(data["sweeps"], source, seed)
    seen: set[str] = set()
    for spec in explainers:
        if spec.label in seen:
            raise ConfigError(
                f"two explainers are both called {spec.label!r} (a sweep's label or value repeats "
                "an explainer's); give one a distinct 'label'",
                file=source,
            )
        seen.add(spec.label)
    return explainers


def _chosen_models(specs: list[PluginSpec], names: list[str] | None) -> list[PluginSpec]:
    """``--model NAME`` (repeatable) replaces the suite's model list.

    A name the suite lists (by label or name) keeps the suite's entry with its parameters;
    any other registered model (or timm architecture) is added with its defaults.
    """
    if not names:
        return specs
    chosen: list[PluginSpec] = []
    for name in names:
        match = next((s for s in specs if s.label == name), None)
        if match is None:
            spec = plugin_specs([{"name": name}], "models", "--model")[0]  # resolves an alias, or refuses
            match = next((s for s in specs if s.name == spec.name), None) or PluginSpec(
                "models", spec.name, spec.params, spec.name
            )
        if match.label in {s.label for s in chosen}:
            raise ConfigError(f"the model {name!r} is given twice", file="--model")
        chosen.append(match)
    return chosen


def _chosen_explainers(specs: list[PluginSpec], labels: list[str] | None) -> list[PluginSpec]:
    """``--explainer LABEL`` (repeatable) keeps only these of the suite's explainers, with
    their parameters (the suite defines how each is configured; this only chooses)."""
    if not labels:
        return specs
    known = [s.label for s in specs]
    chosen = []
    for label in labels:
        match = next((s for s in specs if s.label == label), None) or next((s for s in specs if s.name == label), None)
        if match is None:
            close = difflib.get_close_matches(label, known, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"the suite has no explainer {label!r}.{hint} Its explainers: {', '.join(known)}", file="--explainer"
            )
        if match not in chosen:
            chosen.append(match)
    # Sweeps keep their reference setting's row only when it is chosen; order as in the suite.
    return [s for s in specs if s in chosen]


def _metrics(data: dict[str, Any], source: str, explainers: list[PluginSpec]) -> list[PluginSpec]:
    metrics = plugin_specs(data.get("metrics", default_metrics()), "metrics", source, allow_strings=True)
    labels = [e.label for e in explainers]
    for index, spec in enumerate(metrics):
        unknown = [name for name in spec.only if name not in labels]
        if unknown:
            raise ConfigError(
                f"no explainer is labelled {unknown[0]!r}; explainer labels: {', '.join(labels)}",
                file=source,
                key=f"metrics[{index}].explainers",
            )
    return metrics


def _check_reference(reference: Any, attacks: list[Any], source: str) -> dict[str, Any]:
    """``reference`` names grid axes of the suite's attacks (whatever they are)."""
    axes: list[str] = []
    for attack in attacks:
        declared = attack.metadata().get("grid_axes", ()) if callable(getattr(attack, "metadata", None)) else ()
        axes += [a for a in declared if a not in axes]
    if not isinstance(reference, dict):
        raise ConfigError("expected a table of grid-axis values", file=source, key="suite.reference")
    for key, value in reference.items():
        if key not in axes:
            close = difflib.get_close_matches(key, axes, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"{key!r} is not a grid axis of this suite's attacks.{hint} Grid axes: {', '.join(axes) or '(none)'}",
                file=source,
                key="suite.reference",
            )
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ConfigError(f"expected a number for {key!r}, got {value!r}", file=source, key="suite.reference")
    return dict(reference)


def _parse_suite(data: dict[str, Any], source: str, overrides: dict[str, Any]) -> Suite:
    check_keys(data, TOP_LEVEL, source, "top level")
    for required in ("suite", "dataset", "models"):
        if required not in data:
            raise ConfigError(f"missing the [{required}] section", file=source)
    head = _head(data, source, overrides)
    dataset = _dataset(data, source, overrides)
    models = _chosen_models(plugin_specs(data["models"], "models", source), overrides.get("models"))
    every_explainer = _explainers(data, source, head["seed"])
    explainers = _chosen_explainers(every_explainer, overrides.get("explainers"))
    attacks = plugin_specs(data.get("attacks", []), "attacks", source) if data.get("attacks") else []
    metrics = _metrics(data, source, every_explainer)
    # Attacks and metrics validate their own parameters (ranges of α, top-k, …) when built.
    built = [construct(registry.attacks, spec, source, f"attacks[{i}]") for i, spec in enumerate(attacks)]
    for index, spec in enumerate(metrics):
        construct(registry.metrics, spec, source, f"metrics[{index}]")
    head["reference"] = _check_reference(head["reference"], built, source)
    if not attacks and not any(
        getattr(registry.metrics.get(m.name), "category", "") == "faithfulness" for m in metrics
    ):
        raise ConfigError("the suite has no [[attacks]] and no faithfulness metric, so it would compute nothing", file=source)
    return Suite(
        source=source, models=models, explainers=explainers, attacks=attacks, metrics=metrics, **head, **dataset
    )
