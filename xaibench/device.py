"""The one device resolver: ``auto`` picks CUDA when present; asking for CUDA without it is an error."""

from __future__ import annotations

import platform

import torch

from .errors import XaibenchError


def resolve_device(requested: str) -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise XaibenchError(
            f"device {requested!r} was asked for but CUDA is not available on this machine; "
            "use --device cpu (or auto)"
        )
    try:
        return torch.device(requested)
    except RuntimeError:
        raise XaibenchError(f"unknown device {requested!r}; use auto, cpu, cuda or cuda:N") from None


def device_name(device: torch.device) -> str:
    """A name that identifies the hardware (chunk-size caches are keyed by it)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu-{platform.machine()}"


def memory_bytes(device: torch.device) -> int | None:
    """The memory a run on ``device`` can use at most (the GPU's, or the host's RAM); None if unknown."""
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory)
    try:
        import os

        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None
