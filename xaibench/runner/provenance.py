"""Where every number came from: the environment of a run and the identity of every plugin.

``environment`` is recorded once per run (manifest). ``plugin_record`` describes one plugin of
the suite as the results need it: what it declares about itself (``metadata()``: title,
direction, grid axes, …), its resolved parameters, and the code that computed the rows (the
distribution and version it came from, plus a hash of the file that defines it). The records go
into the manifest, where the leaderboard reads them instead of the live registry, and into each
unit's identity, so a changed plugin recomputes instead of resuming stale rows.
"""

from __future__ import annotations

import hashlib
import inspect
import platform
import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import __version__, registry


def package_version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def git_revision() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def environment(device: torch.device, precision: str = "fp32") -> dict[str, Any]:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    return {
        "xaibench": __version__,
        "torch": torch.__version__,
        "captum": package_version("captum"),
        "timm": package_version("timm"),
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": str(device),
        "device_name": name,
        "torch_threads": torch.get_num_threads(),
        # Weights and inputs stay float32; bf16 autocasts the model passes (docs/performance.md).
        "dtype": "float32" if precision == "fp32" else "float32 weights, bfloat16 autocast",
        "git_revision": git_revision(),
    }


@lru_cache(maxsize=256)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def code_sha256(plugin: Any) -> str:
    """SHA-256 of the source file that defines ``plugin`` ("" when it has none, e.g. a REPL)."""
    try:
        source = inspect.getsourcefile(plugin)
    except (TypeError, OSError):  # a class or function defined in a notebook or REPL
        source = None
    if not source or not Path(source).is_file():
        return ""
    stat = Path(source).stat()
    return _file_sha256(source, stat.st_size, stat.st_mtime_ns)


def distribution(kind: str, name: str) -> tuple[str, str]:
    """``(distribution, version)`` of the package a plugin came from."""
    reg = registry.registry_for(kind)
    return reg.origin(name), reg.version(name) or "unknown"


def _declared(kind: str, name: str, instance: Any) -> dict[str, Any]:
    source = instance if instance is not None else registry.registry_for(kind).get(name)
    describe = getattr(source, "metadata", None)
    declared = dict(describe()) if callable(describe) else {}
    if not declared.get("title"):
        declared["title"] = name
    return declared


def plugin_record(kind: str, spec: Any, instance: Any = None, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a results folder keeps about one plugin entry of the suite (``spec``: its
    ``PluginSpec``; ``instance``: the built plugin where the runner has one, since an attack's
    grid depends on its parameters)."""
    reg = registry.registry_for(kind)
    given = spec.params if params is None else params
    resolver = getattr(reg, "resolved_params", None)
    resolved = resolver(spec.name, given) if callable(resolver) and spec.name in reg else dict(given)
    dist, version = distribution(kind, spec.name) if spec.name in reg else ("unknown", "unknown")
    plugin = reg.get(spec.name) if spec.name in reg else None
    return {
        "kind": kind,
        "label": spec.label,
        "name": spec.name,
        "params": resolved,
        "distribution": dist,
        "version": version,
        "code_sha256": code_sha256(plugin) if plugin is not None else "",
        **(_declared(kind, spec.name, instance) if plugin is not None else {"title": spec.name}),
    }


def identity(record: dict[str, Any]) -> dict[str, Any]:
    """The part of a plugin record that decides its rows' values (for unit ids): which code."""
    return {k: record.get(k) for k in ("name", "distribution", "version", "code_sha256")}
