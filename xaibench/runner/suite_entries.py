"""Validation of a suite's entries: keys, integers, plugin tables, sweeps, completeness gates."""

from __future__ import annotations

import difflib
import json
from typing import Any

from .. import registry
from ..errors import ConfigError, UnknownPluginError
from .suite_spec import (
    EXPLAINER_RESERVED,
    METRIC_RESERVED,
    PLUGIN_RESERVED,
    SWEEP_KEYS,
    TOP_LEVEL,
    PluginSpec,
)


def check_keys(table: dict[str, Any], allowed: dict[str, str], source: str, where: str) -> None:
    for key in table:
        if key not in allowed:
            close = difflib.get_close_matches(key, list(allowed), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            expected = "; ".join(f"{k} ({v})" for k, v in allowed.items())
            raise ConfigError(f"unknown key {key!r}.{hint} Expected: {expected}.", file=source, key=where)


#: Seeds reach ``torch.Generator.manual_seed``, which takes at most 64 bits; the derived per-image
#: seeds add to them, so a suite seed stays below 2**63.
SEED_LIMIT = 2**63


def seed_value(value: Any, source: str, key: str | None) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < SEED_LIMIT:
        raise ConfigError(f"expected an integer in [0, 2**63), got {value!r}", file=source, key=key)
    return value


def integer(value: Any, source: str, key: str | None, *, minimum: int = 1, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigError(f"expected an integer ≥ {minimum}, got {value!r}", file=source, key=key)
    return value


def plugin_specs(
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
        if not isinstance(name, str) or not name:
            raise ConfigError(
                f"expected the name of a registered plugin as a string, got {name!r} "
                f"(see 'xaibench list {kind}')",
                file=source,
                key=f"{where}.name",
            )
        if "label" in entry and (not isinstance(entry["label"], str) or not entry["label"]):
            raise ConfigError(f"expected a non-empty string, got {entry['label']!r}", file=source, key=f"{where}.label")
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
        check_misplaced(params, source, where)
        if canonical in reg:  # checked against the declaration and converted (3.0 → 3 for an int)
            params = reg.coerce_params(canonical, params, where=where)
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


def sweep_specs(entries: Any, source: str, seed: int) -> list[PluginSpec]:
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
        reference = registry.explainers.coerce_params(name, reference, where=f"{where}.reference")
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
        # An explainer's own seed defaults to the suite seed (runner.plan.explainer_params).
        defaults = {p: (seed if p == "seed" else declared[p].default) for p in varied}
        reference_values = {p: reference.get(p, defaults[p]) for p in varied}
        sweep_info = {"sweep": label, "reference": dict(sorted(reference.items()))}
        specs.append(PluginSpec("explainers", name, dict(reference), label, sweep={**sweep_info, "param": None, "value": None}))
        for param, values in varied.items():
            for value in values:
                if value == reference_values[param]:
                    continue  # the reference setting is already in the sweep
                params = registry.explainers.coerce_params(name, {**reference, param: value}, where=f"{where}.{param}")
                specs.append(PluginSpec(
                    "explainers", name, params, f"{label} {param}={_format_value(params[param])}",
                    sweep={**sweep_info, "param": param, "value": params[param]},
                ))
    return specs


def check_misplaced(table: dict[str, Any], source: str, where: str) -> None:
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


def construct(reg: registry.Registry[Any], spec: PluginSpec, source: str, where: str) -> Any:
    try:
        return reg.get(spec.name)(**spec.params)
    except ConfigError as exc:
        raise ConfigError(str(exc), file=source, key=exc.key or where) from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid parameters for {spec.name!r}: {exc}", file=source, key=where) from None
