"""Generic plugin registries with decorator registration and entry-point discovery.

Every kind of plugin (models, datasets, explainers, attacks, metrics) lives in one
``Registry``. A plugin is a class or a factory function; its parameters are the keyword
parameters of its constructor (or of the function): the signature, with its annotations and
defaults, is the one declaration. ``validate_params`` checks a suite's values against the
annotations (``bool``, ``int``, ``float``, ``str``, ``Literal[...]``, ``list[X]``,
``tuple[X, Y]``, ``X | None``, …) before any work; ``coerce_params`` also returns them
converted (``3.0`` for an ``int`` becomes ``3``); ``resolved_params`` merges them with the
declared defaults, JSON-able, for the results.

Third-party packages register through the entry-point groups ``xaibench.<kind>``: the entry
point's object is imported, which runs its ``@register`` decorators (or, if it is a plugin
class or factory that is not yet registered, it is registered under the entry point's name).
A function can be an explainer: ``@explainers.function("name")`` (``ExplainerRegistry``).
"""

from __future__ import annotations

import collections.abc
import difflib
import fnmatch
import functools
import inspect
import numbers
import sys
import types
import typing
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Generic, TypeVar

from .errors import ConfigError, UnknownPluginError

T = TypeVar("T")

_MISSING = inspect.Parameter.empty


# --------------------------------------------------------------------------------------
# Types: display and checking
# --------------------------------------------------------------------------------------

_SEQUENCES = (list, tuple, collections.abc.Sequence, collections.abc.MutableSequence, typing.Sequence)


def type_name(annotation: Any) -> str:
    """How a parameter's type reads in ``xaibench list`` and in error messages.

    ``list[float]``, ``tuple[int, int]``, ``Literal['a', 'b']``, ``int | None``; any sequence
    type reads ``list[…]`` (a suite writes a TOML array), no annotation reads ``any``.
    """
    if annotation is _MISSING or annotation is Any or annotation is object:
        return "any"
    if annotation is None or annotation is type(None):
        return "None"
    if isinstance(annotation, str):
        return annotation
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return type_name(args[0])
    if origin is typing.Literal:
        return f"Literal[{', '.join(repr(a) for a in args)}]"
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(a) for a in args)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"tuple[{type_name(args[0])}, ...]"
        return f"tuple[{', '.join(type_name(a) for a in args)}]" if args else "tuple"
    if origin in _SEQUENCES or annotation in _SEQUENCES:
        return f"list[{type_name(args[0])}]" if args else "list"
    if origin is not None:
        inner = ", ".join(type_name(a) for a in args)
        base = getattr(origin, "__name__", str(origin))
        return f"{base}[{inner}]" if args else base
    return getattr(annotation, "__name__", str(annotation).replace("typing.", ""))


class _Mismatch(Exception):
    """A value that does not fit an annotation (the message says what was expected)."""


_UNCHANGED = object()


def _convert(value: Any, annotation: Any) -> Any:
    """``value`` checked against ``annotation`` and converted where that is lossless.

    Raises ``_Mismatch``. Annotations this does not understand (a string that could not be
    evaluated, a type variable) accept anything.
    """
    if annotation is _MISSING or annotation is Any or annotation is object or isinstance(annotation, str | TypeVar):
        return value
    if annotation is None or annotation is type(None):
        if value is None:
            return None
        raise _Mismatch
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _convert(value, args[0])
    if origin is typing.Literal:
        for choice in args:
            if type(choice) is type(value) and choice == value:
                return value
        raise _Mismatch
    if origin in (typing.Union, types.UnionType):
        converted = _UNCHANGED
        for member in args:
            try:
                result = _convert(value, member)
            except _Mismatch:
                continue
            if result is value:
                return value  # a member that takes the value as it is wins (int | float: 3.0 stays)
            if converted is _UNCHANGED:
                converted = result
        if converted is _UNCHANGED:
            raise _Mismatch
        return converted
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise _Mismatch
    if annotation is int:
        if isinstance(value, bool):
            raise _Mismatch
        if isinstance(value, numbers.Integral):
            return value
        if isinstance(value, numbers.Real) and float(value).is_integer():
            return int(value)
        raise _Mismatch
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise _Mismatch
        return value
    if annotation is str:
        if isinstance(value, str):
            return value
        raise _Mismatch
    container = origin or annotation
    if container is tuple or container in _SEQUENCES:
        if isinstance(value, str | bytes) or not isinstance(value, list | tuple):
            raise _Mismatch
        if container is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            if len(value) != len(args):
                raise _Mismatch
            items = [_convert(v, a) for v, a in zip(value, args, strict=True)]
        else:
            element = args[0] if args else Any
            items = [_convert(v, element) for v in value]
        if all(new is old for new, old in zip(items, value, strict=True)):
            return value
        return type(value)(items)
    if container in (dict, collections.abc.Mapping, typing.Mapping):
        if not isinstance(value, dict):
            raise _Mismatch
        key_type, value_type = args if len(args) == 2 else (Any, Any)
        pairs = [(_convert(k, key_type), _convert(v, value_type)) for k, v in value.items()]
        if all(k is old_k and v is old_v for (k, v), (old_k, old_v) in zip(pairs, value.items(), strict=True)):
            return value
        return dict(pairs)
    if isinstance(container, type):
        if isinstance(value, container):
            return value
        raise _Mismatch
    return value


def jsonable(value: Any) -> Any:
    """``value`` with tuples as lists (recursively): what a results file records."""
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    return str(value)


@dataclass(frozen=True)
class ParamSpec:
    """One declared parameter of a plugin: its name, default and (evaluated) annotation."""

    name: str
    default: Any
    annotation: Any = _MISSING

    @property
    def required(self) -> bool:
        return self.default is _MISSING

    @property
    def type_name(self) -> str:
        """The annotation as it reads to a user: ``list[float]``, ``Literal['a', 'b']``, …"""
        return type_name(self.annotation)

    @property
    def choices(self) -> tuple[Any, ...] | None:
        """The allowed values of a ``Literal`` parameter (also inside ``Literal[...] | None``)."""
        annotation = self.annotation
        origin = typing.get_origin(annotation)
        if origin in (typing.Union, types.UnionType):
            literals = [a for a in typing.get_args(annotation) if typing.get_origin(a) is typing.Literal]
            if len(literals) != 1:
                return None
            annotation, origin = literals[0], typing.Literal
        return typing.get_args(annotation) if origin is typing.Literal else None

    def convert(self, value: Any) -> Any:
        """``value`` checked against the annotation (see ``Registry.coerce_params``); raises
        ``ValueError`` with what was expected."""
        try:
            return _convert(value, self.annotation)
        except _Mismatch:
            raise ValueError(self.mismatch(value)) from None

    def mismatch(self, value: Any) -> str:
        choices = self.choices
        if choices is not None:
            listed = ", ".join(repr(c) for c in choices)
            union = typing.get_origin(self.annotation) in (typing.Union, types.UnionType)
            others = [
                type_name(member)
                for member in (typing.get_args(self.annotation) if union else ())
                if typing.get_origin(member) is not typing.Literal
            ]
            alternatives = "".join(f" or {other}" for other in others)
            return f"expects one of {listed}{alternatives}, got {value!r}"
        expected = self.type_name
        hint = ""
        if self.annotation is bool and isinstance(value, str | int | float):
            hint = " (write true or false, without quotes)"
        elif self.annotation is int and isinstance(value, float):
            hint = " (a whole number)"
        return f"expects {expected}{hint}, got {value!r} ({type(value).__name__})"

    def describe(self) -> str:
        if self.required:
            return f"{self.name}: {self.type_name} (required)"
        return f"{self.name}: {self.type_name} = {jsonable(self.default)!r}"


def closest(name: str, candidates: list[str]) -> str | None:
    """The likeliest intended name: a close spelling, or a candidate the name starts with."""
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.5)
    if close:
        return close[0]
    prefixes = [c for c in candidates if name.startswith(c) or c.startswith(name)]
    return max(prefixes, key=len) if prefixes else None


def _signature(obj: Callable[..., Any]) -> inspect.Signature:
    """The signature of a plugin class's ``__init__`` (or of a factory), annotations evaluated
    where they can be (``from __future__ import annotations`` makes them strings)."""
    target = obj.__init__ if inspect.isclass(obj) else obj
    try:
        return inspect.signature(target, eval_str=True)
    except Exception:  # an annotation naming something not importable at run time
        return inspect.signature(target)


def declared_params(obj: Callable[..., Any], skip: tuple[str, ...] = ()) -> list[ParamSpec]:
    """The user-settable keyword parameters of a plugin class or factory.

    Positional-only parameters, ``*args``/``**kwargs`` and the names in ``skip`` (objects the
    runner passes in, such as the classifier) are not user parameters.
    """
    params = []
    for name, parameter in _signature(obj).parameters.items():
        if name in ("self", *skip):
            continue
        if parameter.kind in (
            inspect.Parameter.VAR_POSITIONAL,
            inspect.Parameter.VAR_KEYWORD,
            inspect.Parameter.POSITIONAL_ONLY,
        ):
            continue
        params.append(ParamSpec(name, parameter.default, parameter.annotation))
    return params


@functools.lru_cache(maxsize=1)
def _top_level_distributions() -> dict[str, list[str]]:
    try:
        return dict(metadata.packages_distributions())
    except Exception:  # pragma: no cover - broken metadata must not break listing
        return {}


def _module_origin(module: str | None) -> str:
    """The distribution that provides ``module`` (its top-level package), else its name."""
    top = (module or "").partition(".")[0]
    if not top or top == "xaibench":
        return "xaibench"
    distributions = _top_level_distributions().get(top)
    return distributions[0] if distributions else top


# --------------------------------------------------------------------------------------
# Registries
# --------------------------------------------------------------------------------------


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
        self._origins: dict[str, str | None] = {}
        self._entry_points_loaded = False
        self.failed: dict[str, str] = {}
        self._providers: list[Any] = []  # providers.Provider: families named <prefix><Name>

    @property
    def singular(self) -> str:
        return self.kind[:-1] if self.kind.endswith("s") else self.kind

    # -- registration -------------------------------------------------------------------
    def register(
        self, name: str | None = None, *, aliases: tuple[str, ...] = (), origin: str | None = None
    ) -> Callable[[T], T]:
        """Register a plugin class or factory under ``name`` (default: its own ``name``
        attribute, else its ``__name__``). ``origin`` (the distribution that provides it)
        defaults to the one that installed the plugin's module."""

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

    def add(self, name: str, plugin: T, *, origin: str | None = None) -> None:
        self.register(name, origin=origin)(plugin)

    def add_provider(self, provider: Any) -> None:
        """A family of plugins another library defines (``providers.Provider``), built on first use."""
        self._providers.append(provider)

    def provided_names(self, pattern: str = "*") -> list[str]:
        """The names the providers offer (their libraries imported to list them), not yet registered."""
        self.load_entry_points()
        offered = [n for p in self._providers if _may_match(p.prefix, pattern) for n in p.names()]
        return sorted(n for n in offered if n not in self._plugins and fnmatch.fnmatch(n, pattern))

    def _provide(self, name: str) -> bool:
        for provider in self._providers:
            if provider.owns(name):
                plugin = provider.plugin(name)
                if plugin is not None:
                    self.register(name, origin=provider.distribution)(plugin)
                    return True
        return False

    # -- discovery ----------------------------------------------------------------------
    def load_entry_points(self, *, force: bool = False) -> None:
        """Import third-party plugins; a plugin that fails is recorded, the rest still load."""
        if self._entry_points_loaded and not force:
            return
        self._entry_points_loaded = True
        from . import load_builtins

        load_builtins()
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
        if isinstance(name, str) and self._provide(name):
            return name
        raise UnknownPluginError(self._unknown_message(name))

    def _unknown_message(self, name: str) -> str:
        known = self.names()
        close = closest(name, known + list(self._aliases))
        if not close and isinstance(name, str) and "." not in name:  # another library's name, unprefixed?
            offered = {n.split(".", 1)[1]: n for p in self._providers for n in p.names()}
            close = offered.get(name) or offered.get(closest(name, list(offered)) or "")
        hint = f" Did you mean {close!r}?" if close else ""
        failed = ""
        if name in self.failed:
            failed = f" A plugin named {name!r} exists but failed to import: {self.failed[name]}."
        return (
            f"unknown {self.singular} {name!r}.{hint}{failed} "
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
        """The distribution that provides the plugin ("xaibench" for the built-ins); for a
        plugin registered outside any installed distribution, its top-level module."""
        key = self.resolve(name)
        if self._origins.get(key) is None:
            self._origins[key] = _module_origin(getattr(self._plugins[key], "__module__", None))
        return str(self._origins[key])

    def version(self, name: str) -> str | None:
        """The installed version of the plugin's distribution, ``None`` when it has none."""
        origin = self.origin(name)
        if origin == "xaibench":
            return str(getattr(sys.modules.get("xaibench"), "__version__", None) or metadata.version("xaibench"))
        try:
            return metadata.version(origin)
        except metadata.PackageNotFoundError:
            return None

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    # -- parameters ---------------------------------------------------------------------
    def params(self, name: str) -> list[ParamSpec]:
        return declared_params(self.get(name), skip=self.runtime_args)

    def _accepts_any_keyword(self, name: str) -> bool:
        return any(
            p.kind is inspect.Parameter.VAR_KEYWORD for p in _signature(self.get(name)).parameters.values()
        )

    def coerce_params(self, name: str, params: dict[str, Any], *, where: str = "") -> dict[str, Any]:
        """``params`` checked against the plugin's declaration and converted.

        Unknown and missing parameters and values that do not fit the annotation raise
        ``ConfigError`` naming the plugin, the parameter, the expected type and the value.
        ``bool`` takes only true/false; ``int`` takes a whole number (``3.0`` becomes ``3``,
        ``2.9`` is refused); ``float`` takes ints too (kept as given); ``Literal`` takes
        its choices; sequences take a list or tuple whose elements fit; ``X | None`` takes
        ``None``; an unannotated parameter takes anything. Only the given keys are returned.
        """
        declared = {p.name: p for p in self.params(name)}
        accepts_anything = self._accepts_any_keyword(name)
        what = f"{self.singular} {name!r}"
        key = where or None
        for param in params:
            if param not in declared and not accepts_anything:
                close = closest(param, list(declared))
                hint = f" Did you mean {close!r}?" if close else ""
                expected = ", ".join(p.describe() for p in declared.values()) or "no parameters"
                raise ConfigError(f"unknown parameter {param!r} for {what}.{hint} Expected: {expected}.", key=key)
        for spec in declared.values():
            if spec.required and spec.name not in params:
                raise ConfigError(f"{what} needs the parameter {spec.describe()}", key=key)
        converted = {}
        for param, value in params.items():
            spec = declared.get(param)
            if spec is None:
                converted[param] = value
                continue
            try:
                converted[param] = spec.convert(value)
            except ValueError as exc:
                raise ConfigError(f"{what}: parameter {param!r} {exc}", key=key) from None
        return converted

    def validate_params(self, name: str, params: dict[str, Any], *, where: str = "") -> None:
        """Reject unknown, missing and ill-typed parameters before any work (``coerce_params``)."""
        self.coerce_params(name, params, where=where)

    def resolved_params(self, name: str, params: dict[str, Any], *, where: str = "") -> dict[str, Any]:
        """The parameters the plugin runs with: declared defaults merged with ``params``
        (validated and converted), JSON-able (tuples as lists).

        A plugin class may define a classmethod ``effective_params(params) -> dict`` to say
        which of them it actually uses (e.g. a metric whose ``perturbation`` makes other
        parameters irrelevant); it receives and returns the merged dict.
        """
        merged = {p.name: p.default for p in self.params(name) if not p.required}
        merged.update(self.coerce_params(name, params, where=where))
        effective = getattr(self.get(name), "effective_params", None)
        if callable(effective):
            merged = dict(effective(merged))
        return {k: jsonable(v) for k, v in merged.items()}


class ExplainerRegistry(Registry[Any]):
    """The explainer registry; ``function`` makes a plain function an explainer."""

    def function(
        self,
        name: str | None = None,
        *,
        is_random: bool = False,
        multiplies_by_inputs: bool = False,
        needs_gradients: bool = True,
        title: str = "",
        summary: str = "",
        aliases: tuple[str, ...] = (),
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Register ``fn(model, x01, target, **params) -> attributions`` as an explainer.

        >>> @explainers.function("gradient_sign", title="Gradient sign")
        ... def gradient_sign(model, x01, target, scale: float = 1.0):
        ...     ...

        The parameters after the first three are the explainer's (shown by ``xaibench
        list``, validated in suites). A random function (``is_random=True``) should take a
        ``noise_ids`` keyword too: the runner passes one id per image, and
        ``xaibench.types.explanation_seeds(x01, target, seed, noise_ids)`` turns them into
        per-image seeds (common random numbers). The function is returned unchanged; the
        registered class is ``explainers.get(name)`` (``xaibench.function_explainer``).
        """
        from .function_explainer import function_explainer

        def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
            cls = function_explainer(
                fn,
                name=name,
                is_random=is_random,
                multiplies_by_inputs=multiplies_by_inputs,
                needs_gradients=needs_gradients,
                title=title,
                summary=summary,
            )
            self.register(cls.name, aliases=aliases)(cls)
            return fn

        return decorator


# The five registries. Importing ``xaibench`` fills them with the built-in plugins.
models: Registry[Any] = Registry("models")
datasets: Registry[Any] = Registry("datasets", runtime_args=("input_size", "channels"))
explainers: ExplainerRegistry = ExplainerRegistry("explainers", runtime_args=("classifier",))
attacks: Registry[Any] = Registry("attacks")
metrics: Registry[Any] = Registry("metrics")

REGISTRIES: dict[str, Registry[Any]] = {
    "models": models,
    "datasets": datasets,
    "explainers": explainers,
    "attacks": attacks,
    "metrics": metrics,
}


def _may_match(prefix: str, pattern: str) -> bool:
    """Whether names starting with ``prefix`` can match the glob (so listing need not import
    a provider's library for a pattern such as ``"*grad*"`` that starts elsewhere)."""
    head = pattern.split("*", 1)[0].split("?", 1)[0].split("[", 1)[0]
    return prefix.startswith(head) or head.startswith(prefix)


def registry_for(kind: str) -> Registry[Any]:
    key = kind if kind.endswith("s") else kind + "s"
    if key not in REGISTRIES:
        close = difflib.get_close_matches(key, list(REGISTRIES), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise UnknownPluginError(
            f"unknown plugin kind {kind!r}.{hint} Kinds: {', '.join(REGISTRIES)}."
        )
    return REGISTRIES[key]
