"""Exceptions a user can act on. The CLI prints their message as one line, no traceback."""

from __future__ import annotations


class XaibenchError(Exception):
    """Base class: the message says what went wrong and what to do about it."""


class ConfigError(XaibenchError):
    """A suite file or a plugin's parameters are invalid. Raised before any compute."""

    def __init__(self, message: str, *, file: str | None = None, key: str | None = None):
        self.file = file
        self.key = key
        where = ""
        if file:
            where += f"{file}: "
        if key:
            where += f"[{key}] "
        super().__init__(f"{where}{message}")


class UnknownPluginError(ConfigError):
    """A name that no registry knows."""


class ResourceUnavailableError(XaibenchError):
    """Weights or data that are not on this machine (and cannot be downloaded)."""


class OutputError(XaibenchError):
    """Results, a cache or a site cannot be written (a full disk, a read-only folder).

    Raised, never swallowed: what was already written is kept, and the message says how to
    go on (free space and re-run, or choose another folder)."""
