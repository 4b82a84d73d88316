"""Generic plugin registries with decorator registration and entry-point discovery.

Every kind of plugin (models, datasets, explainers, attacks, metrics) lives in one
``Registry``. A plugin is a class or a factory function; its parameters are the keyword
parameters of its constructor (or of the function), read with ``inspect``. Third-party
packages register through the entry-point groups ``xaibench.<kind>``: the entry point's
object is imported, which runs its ``@register`` decorators (or, if it is a plugin class or
factory that is not yet registered, it is registered under the entry point's name).
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Generic, TypeVar

from .errors import ConfigError, UnknownPluginError

T = TypeVar("T")

_MISSING = inspect.Parameter.empty


@dataclass(frozen=True)
class ParamSpec:
    """One declared parameter of a plugin."""

    name: str
    default: Any
    annotation: str

    @property
    def required(self) -> bool:
        return self.default is _MISSING

    def describe(self) -> str:
        if self.required:
            return f"{self.name}: {self.annotation} (required)"
        return f"{self.name}: {self.annotation} = {self.default!r}"


def closest(name: str, candidates: list[str]) -> str | None:
    """The likeliest intended name: a close spelling, or a candidate the name starts with."""
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.5)
    if close:
        return close[0]
    prefixes = [c for c in candidates if name.startswith(c) or c.startswith(name)]
    return max(prefixes, key=len) if prefixes else None


def _annotation_name(annotation: Any) -> str:
    if annotation is _MISSING:
        return "any"
    if isinstance(annotation, str):
        return annotation
    return getattr(annotation, "__name__", str(annotation))


def declared_params(obj: Callable[..., Any], skip: tuple[str, ...] = ()) -> list[ParamSpec]:
    """The user-settable keyword parameters of a plugin class or factory.

    Positional-only parameters, ``*args``/``**kwargs`` and the names in ``skip`` (objects the
    runner passes in, such as the classifier) are not user parameters.
    """
    target = obj.__init__ if inspect.isclass(obj) else obj
    signature = inspect.signature(target)
    params = []
    for name, parameter in signature.parameters.items():
        if name in ("self", *skip):
            continue
        if parameter.kind in (
            inspect.Parameter.VAR_POSITIONAL,
            inspect.Parameter.VAR_KEYWORD,
            inspect.Parameter.POSITIONAL_ONLY,
        ):
            continue
        params.append(ParamSpec(name, parameter.default, _annotation_name(parameter.annotation)))
    return params


class Registry(Generic[T]):
    """Name → plugin mapping for one kind, with entry-point discovery.

    >>> attacks = Registry("attacks")
    >>> @attacks.register("my_attack")
    ... class MyAttack: ...
    """

    def __init__(self, kind: str, *, runtime_args: tuple[str, ...] = ()):
        self.kind = kind
        self.group = f"xaibench.{kind}"
        # Arguments the runner supplies itself; they are not suite parameters.
        self.runtime_args = runtime_args
        self._plugins: dict[str, T] = {}
        self._aliases: dict[str, str] = {}
        self._origins: dict[str, str] = {}
        self._entry_points_loaded = False
        self.failed: dict[str, str] = {}

    # -- registration -------------------------------------------------------------------
    def register(
        self, name: str | None = None, *, aliases: tuple[str, ...] = (), origin: str = "xaibench"
    ) -> Callable[[T], T]:
        def decorator(plugin: T) -> T:
            # Only a name the class sets itself counts: a subclass must not inherit its
            # parent's registered name and silently replace it.
            own = vars(plugin).get("name") if inspect.isclass(plugin) else None
            key = name or (own if isinstance(own, str) else None) or plugin.__name__
            if key in self._plugins and self._plugins[key] is not plugin:
                raise ValueError(f"{self.kind}: the name {key!r} is already registered")
            self._plugins[key] = plugin
            self._origins[key] = origin
            if inspect.isclass(plugin) and not isinstance(vars(plugin).get("name"), str):
                plugin.name = key  # type: ignore[attr-defined]
            for alias in aliases:
                self._aliases[alias] = key
            return plugin

        return decorator

    def add(self, name: str, plugin: T, *, origin: str = "xaibench") -> None:
        self.register(name, origin=origin)(plugin)

    # -- discovery ----------------------------------------------------------------------
    def load_entry_points(self, *, force: bool = False) -> None:
        """Import third-party plugins; a plugin that fails is recorded, the rest still load."""
        if self._entry_points_loaded and not force:
            return
        self._entry_points_loaded = True
        for entry_point in metadata.entry_points(group=self.group):
            before = set(self._plugins)
            try:
                loaded = entry_point.load()
            except Exception as exc:  # a broken plugin must not take the others down
                message = f"{type(exc).__name__}: {exc}"
                self.failed[entry_point.name] = message
                warnings.warn(
                    f"xaibench: the {self.kind} plugin {entry_point.name!r} "
                    f"({entry_point.value}) failed to import and is skipped: {message}",
                    RuntimeWarning,
                    stacklevel=2,
                )
                continue
            origin = entry_point.dist.name if entry_point.dist else entry_point.value
            # Plugins registered by decorators while the package was imported come from it.
            for name in set(self._plugins) - before:
                self._origins[name] = origin
            if (
                entry_point.name not in self._plugins
                and callable(loaded)
                and not inspect.ismodule(loaded)
            ):
                self.register(entry_point.name, origin=origin)(loaded)

    # -- lookup -------------------------------------------------------------------------
    def resolve(self, name: str) -> str:
        self.load_entry_points()
        if name in self._plugins:
            return name
        if name in self._aliases:
            return self._aliases[name]
        raise UnknownPluginError(self._unknown_message(name))

    def _unknown_message(self, name: str) -> str:
        known = self.names()
        close = closest(name, known + list(self._aliases))
        hint = f" Did you mean {close!r}?" if close else ""
        failed = ""
        if name in self.failed:
            failed = f" A plugin named {name!r} exists but failed to import: {self.failed[name]}."
        return (
            f"unknown {self.kind[:-1] if self.kind.endswith('s') else self.kind} {name!r}.{hint}{failed} "
            f"Known {self.kind}: {', '.join(known) or '(none)'}."
        )

    def get(self, name: str) -> T:
        return self._plugins[self.resolve(name)]

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        try:
            self.resolve(name)
        except UnknownPluginError:
            return False
        return True

    def names(self, pattern: str = "*") -> list[str]:
        self.load_entry_points()
        return sorted(n for n in self._plugins if fnmatch.fnmatch(n, pattern))

    def aliases_of(self, name: str) -> list[str]:
        return sorted(a for a, target in self._aliases.items() if target == name)

    def origin(self, name: str) -> str:
        return self._origins[self.resolve(name)]

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    # -- parameters ---------------------------------------------------------------------
    def params(self, name: str) -> list[ParamSpec]:
        return declared_params(self.get(name), skip=self.runtime_args)

    def validate_params(self, name: str, params: dict[str, Any], *, where: str = "") -> None:
        """Reject unknown and missing parameters before any work, with what is expected."""
        declared = {p.name: p for p in self.params(name)}
        plugin = self.get(name)
        target = plugin.__init__ if inspect.isclass(plugin) else plugin
        accepts_anything = any(
            p.kind is inspect.Parameter.VAR_KEYWORD
            for p in inspect.signature(target).parameters.values()
        )
        for key in params:
            if key not in declared and not accepts_anything:
                close = closest(key, list(declared))
                hint = f" Did you mean {close!r}?" if close else ""
                expected = ", ".join(p.describe() for p in declared.values()) or "no parameters"
                raise ConfigError(
                    f"unknown parameter {key!r} for {self.kind[:-1]} {name!r}.{hint} "
                    f"Expected: {expected}.",
                    key=where or None,
                )
        for spec in declared.values():
            if spec.required and spec.name not in params:
                raise ConfigError(
                    f"{self.kind[:-1]} {name!r} needs the parameter {spec.describe()}",
                    key=where or None,
                )


# The five registries. Importing ``xaibench`` fills them with the built-in plugins.
models: Registry[Any] = Registry("models")
datasets: Registry[Any] = Registry("datasets", runtime_args=("input_size", "channels"))
explainers: Registry[Any] = Registry("explainers", runtime_args=("classifier",))
attacks: Registry[Any] = Registry("attacks")
metrics: Registry[Any] = Registry("metrics")

REGISTRIES: dict[str, Registry[Any]] = {
    "models": models,
    "datasets": datasets,
    "explainers": explainers,
    "attacks": attacks,
    "metrics": metrics,
}


def registry_for(kind: str) -> Registry[Any]:
    key = kind if kind.endswith("s") else kind + "s"
    if key not in REGISTRIES:
        close = difflib.get_close_matches(key, list(REGISTRIES), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise UnknownPluginError(
            f"unknown plugin kind {kind!r}.{hint} Kinds: {', '.join(REGISTRIES)}."
        )
    return REGISTRIES[key]
