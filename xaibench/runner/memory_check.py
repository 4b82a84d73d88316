"""Settings that cannot fit in memory are refused at plan time, before any model pass.

An explainer may declare ``memory_per_image(params, image_shape) -> (bytes, why)``: what it holds
at once for one image. The planner compares it with the device's memory (the GPU's, or the
host's RAM) and refuses, naming the suite entry and the parameters, a setting that needs more
(``nt_samples = 10**9`` would otherwise fail inside every unit, after minutes of work).
"""

from __future__ import annotations

from typing import Any

import torch

from .. import registry
from ..device import memory_bytes
from ..errors import ConfigError
from .suite import PluginSpec, Suite


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"


def check_memory(spec: PluginSpec, params: dict[str, Any], image_shape: tuple[int, ...], device: torch.device,
                 suite: Suite, index: int) -> None:
    estimate = getattr(registry.explainers.get(spec.name), "memory_per_image", None)
    budget = memory_bytes(device)
    if estimate is None or budget is None:
        return
    resolved = registry.explainers.resolved_params(spec.name, params)
    found = estimate(resolved, image_shape)
    if found is None:
        return
    need, why = found
    if need > budget:
        raise ConfigError(
            f"explainer {spec.label!r}: {why} needs about {_size(need)} at once per image, more than "
            f"this {device.type.upper()}'s {_size(budget)}; lower the setting",
            file=suite.source,
            key=f"explainers[{index}]",
        )
