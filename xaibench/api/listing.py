"""``xaibench.list_plugins``: what ``xaibench list`` shows, as data."""

from __future__ import annotations

import fnmatch

from .. import registry

KINDS = (*registry.REGISTRIES, "suites")


def list_plugins(kind: str | None = None, pattern: str = "*", *, providers: bool = True) -> list[str] | dict[str, list[str]]:
    """Plugin names of one kind matching ``pattern`` (a glob, as timm's ``list_models("vit*")``),
    or, without ``kind``, a dict of every kind. ``providers`` includes the families other
    libraries define (``captum.*``, ``quantus.*``), importing those libraries to list them."""
    from ..runner.suite import builtin_suites

    if kind is None:
        return {k: list_plugins(k, pattern, providers=providers) for k in KINDS}  # type: ignore[misc]
    if kind.rstrip("s") == "suite":
        return [s for s in builtin_suites() if fnmatch.fnmatch(s, pattern)]
    reg = registry.registry_for(kind)  # an unknown kind: UnknownPluginError with a did-you-mean
    names = reg.names(pattern)
    if providers:
        names = sorted({*names, *reg.provided_names(pattern)})
    return names
