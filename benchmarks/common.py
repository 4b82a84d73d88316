"""Shared benchmark plumbing: side-by-side timing, figures with targets, machine facts.

Every figure is a *ratio* of two things measured in the same process, interleaved (A B B A
…) and reduced by medians, because the machines these run on are noisy and often shared.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Figure:
    """One benchmark result: a ratio, its target and direction, and what was measured."""

    name: str
    ratio: float
    target: float
    at_least: bool  # True: ratio ≥ target passes; False: ratio ≤ target passes
    settings: dict[str, Any] = field(default_factory=dict)
    measurements: dict[str, Any] = field(default_factory=dict)
    outputs_match: bool | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        if self.ratio != self.ratio:  # NaN
            return False
        return self.ratio >= self.target if self.at_least else self.ratio <= self.target

    def target_text(self) -> str:
        return f"{'≥' if self.at_least else '≤'} {self.target:g}×"

    def line(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        match = "" if self.outputs_match is None else (", outputs match" if self.outputs_match else ", OUTPUTS DIFFER")
        return f"{self.name}: {self.ratio:.2f}× (target {self.target_text()}){match} {verdict}"


def median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def interleaved(sides: dict[str, Callable[[], Any]], rounds: int) -> dict[str, list[float]]:
    """Wall seconds of each side, ``rounds`` times, in alternating order (A B, B A, A B, …).

    Alternating cancels a slow drift of the machine's speed (other jobs starting or ending)
    that a fixed order would charge to one side.
    """
    times: dict[str, list[float]] = {name: [] for name in sides}
    names = list(sides)
    for index in range(rounds):
        for name in names if index % 2 == 0 else reversed(names):
            started = time.perf_counter()
            sides[name]()
            times[name].append(time.perf_counter() - started)
    return times


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - started


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> tuple[float, float, float] | None:
    try:
        return os.getloadavg()
    except OSError:
        return None


def machine() -> dict[str, Any]:
    device = "cpu"
    if torch.cuda.is_available():
        device = f"cuda ({torch.cuda.get_device_name(0)})"
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": device,
        "load_average_start": load_average(),
    }


@contextlib.contextmanager
def private_cache() -> Iterator[Path]:
    """A fresh ``XAIBENCH_CACHE`` (so chunk sizes are measured now, not read from an old run).

    Trained model weights (the digits CNN) are copied over from the user's cache when they
    exist, so nothing is retrained.
    """
    from xaibench.models.cache import cache_dir

    previous = os.environ.get("XAIBENCH_CACHE")
    source = cache_dir() / "models"
    with tempfile.TemporaryDirectory(prefix="xaibench-bench-cache-") as folder:
        cache = Path(folder)
        if source.is_dir():
            shutil.copytree(source, cache / "models")
        os.environ["XAIBENCH_CACHE"] = str(cache)
        try:
            yield cache
        finally:
            if previous is None:
                os.environ.pop("XAIBENCH_CACHE", None)
            else:
                os.environ["XAIBENCH_CACHE"] = previous


@contextlib.contextmanager
def reuse_loaded_models() -> Iterator[None]:
    """Make ``build_plan`` reuse one loaded model per (name, params) instead of reloading it.

    Loading weights is a one-off cost both sides of a comparison pay once; reloading it in
    every timed round would only add noise. ``build_plan`` looks ``load_model`` up at call
    time, so patching the package attribute is enough.
    """
    import xaibench.models as models_package

    original = models_package.load_model
    loaded: dict[str, Any] = {}

    def load_model(name: str, **params: Any) -> Any:
        key = repr((name, sorted(params.items())))
        if key not in loaded:
            loaded[key] = original(name, **params)
        return loaded[key]

    models_package.load_model = load_model  # type: ignore[assignment]
    try:
        yield
    finally:
        models_package.load_model = original  # type: ignore[assignment]


def write_suite(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def toml_list(values: Any) -> str:
    return "[" + ", ".join(repr(float(v)) if isinstance(v, float) else repr(v) for v in values) + "]"
