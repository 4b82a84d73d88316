"""Providers: whole families of plugins another library defines, named ``<prefix><Name>``.

``captum.GuidedBackprop``, ``quantus.Sparseness``: a provider turns such a name into a plugin
class on first use (importing its library only then, so ``import xaibench`` stays light), and
lists the names it offers for ``xaibench list`` and ``xaibench.list_plugins``. The class it
builds is registered like any plugin, so everything downstream (parameters, metadata,
provenance, the leaderboard) sees an ordinary plugin.

A provider whose library is not installed is named in the error with the ``pip install`` to
run (the extra that brings it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import ResourceUnavailableError


@dataclass(frozen=True)
class Provider:
    prefix: str  # "captum."
    distribution: str  # the library that defines the plugins ("captum")
    extra: str  # the xaibench extra that installs it ("cam", "quantus", …)
    #: The names offered (without the prefix); may import the library.
    offered: Callable[[], list[str]]
    #: The plugin class for a name (without the prefix); ``None`` if the library has no such name.
    build: Callable[[str], Any | None]

    def owns(self, name: str) -> bool:
        return name.startswith(self.prefix) and len(name) > len(self.prefix)

    def missing(self, exc: ImportError) -> ResourceUnavailableError:
        return ResourceUnavailableError(
            f"plugins named {self.prefix}* come from the {self.distribution!r} package, which is not "
            f"installed ({exc}); "
            + (f"pip install 'xaibench[{self.extra}]'" if self.extra else f"pip install {self.distribution}")
        )

    def names(self) -> list[str]:
        try:
            return [self.prefix + name for name in self.offered()]
        except ImportError:
            return []

    def plugin(self, name: str) -> Any | None:
        try:
            return self.build(name[len(self.prefix):])
        except ImportError as exc:
            raise self.missing(exc) from None
