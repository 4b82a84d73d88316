"""Chunk sizes: measured per model × explainer × device, cached, halved on out-of-memory.

Bigger is not always faster. On 2 CPU cores EfficientNet-Lite0's forward pass costs
~12 ms/image at batch 8 but ~50 ms/image at batch 64 (DESIGN.md), while a GPU wants the
largest batch that fits. So the runner measures a few candidate sizes briefly, keeps the
fastest, caches the choice, and on a CUDA out-of-memory error halves the chunk and retries
without losing any computed row (timm's ``decay_batch_step`` is the precedent).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..files import write_json
from ..hashing import stable_hash
from ..models.cache import cache_dir

#: Stages that get their own chunk size: explanations (forward + backward, often many
#: internal samples) and forward-only passes (predictions, faithfulness perturbations).
STAGES = ("explain", "forward")


def is_out_of_memory(error: BaseException) -> bool:
    if isinstance(error, torch.cuda.OutOfMemoryError):
        return True
    message = str(error)
    return isinstance(error, RuntimeError) and (
        "out of memory" in message or "can't allocate memory" in message
    )


class ChunkSizes:
    """The chunk size per (model, explainer, stage), shared by all units of a run.

    ``get`` returns the current size; ``shrink`` halves it after an out-of-memory error and
    remembers the smaller size for every later unit. ``record()`` is stored in the manifest.
    """

    def __init__(self, default: int):
        self.default = default
        self._sizes: dict[tuple[str, str, str], int] = {}
        self._how: dict[tuple[str, str, str], str] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str, str]) -> int:
        return self._sizes.get(key, self.default)

    def set(self, key: tuple[str, str, str], size: int, how: str) -> None:
        with self._lock:
            self._sizes[key] = max(1, int(size))
            self._how[key] = how

    def known(self, key: tuple[str, str, str]) -> bool:
        return key in self._sizes

    def shrink(self, key: tuple[str, str, str], failed: int) -> int:
        with self._lock:
            # The largest power of two below the failed chunk: 7 → 4, 4 → 2, 16 → 8.
            smaller = max(1, 1 << ((failed - 1).bit_length() - 1)) if failed > 1 else 1
            self._sizes[key] = min(self._sizes.get(key, failed), smaller)
            self._how[key] = f"halved after out-of-memory at {failed}"
            return self._sizes[key]

    def record(self) -> list[dict[str, Any]]:
        return [
            {"model": k[0], "explainer": k[1], "stage": k[2], "chunk_size": v, "how": self._how.get(k, "")}
            for k, v in sorted(self._sizes.items())
        ]


def run_in_chunks(
    count: int,
    sizes: ChunkSizes,
    key: tuple[str, str, str],
    compute: Callable[[slice], Tensor],
) -> list[Tensor]:
    """Call ``compute`` on consecutive slices of ``count`` items; halve the slice on OOM.

    Outputs already computed are kept; only the failing chunk is retried, smaller.
    """
    outputs: list[Tensor] = []
    start = 0
    while start < count:
        size = sizes.get(key)
        part = slice(start, min(start + size, count))
        try:
            outputs.append(compute(part))
        except Exception as error:
            if not is_out_of_memory(error) or size <= 1:  # nothing smaller to try
                raise
            sizes.shrink(key, part.stop - part.start)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            continue
        start = part.stop
    return outputs


def candidate_sizes(device: torch.device, maximum: int) -> list[int]:
    sizes, size = [], 1
    while size <= maximum:
        sizes.append(size)
        size *= 2
    return sizes


#: Timings per image closer than this (relative) are always a tie for the tuner; beyond it,
#: the measurement's own noise (the spread of its repeats) decides. A fixed 15 % was tried and
#: chose forward chunk 32 at 21.4 ms/img over 16 at 18.9 on the AMD machine (13 % slower,
#: outside that measurement's noise): metrics fell from 0.90× to 0.76× Quantus.
NOISE_FLOOR = 0.05
#: The widest tolerance a noisy measurement may claim: a chunk more than this much slower per
#: image than the fastest is never chosen, however noisy the timings.
MAX_TOLERANCE = 0.25
#: Repeats whose spread ((max − min) / median) exceeds this are timed again, once.
NOISY_SPREAD = 0.25


def _spread(taken: list[float]) -> float:
    return (max(taken) - min(taken)) / statistics.median(taken) if len(taken) > 1 else 0.0


def choose_size(timings: dict[int, float], spreads: dict[int, float]) -> int:
    """The largest size whose time per image is within the measurement's noise of the fastest.

    Ties go to the larger chunk, which is what a peer library would use (Quantus and Captum
    pass the whole batch) and what a GPU prefers; a chunk is only chosen smaller when it is
    measurably faster. The noise is the fastest size's own spread (and the candidate's),
    at least ``NOISE_FLOOR``, at most ``MAX_TOLERANCE``."""
    fastest = min(timings, key=lambda size: (timings[size], -size))
    best = fastest
    for size, per_image in timings.items():
        noise = max(NOISE_FLOOR, spreads.get(fastest, 0.0), spreads.get(size, 0.0))
        if size > best and per_image <= timings[fastest] * (1 + min(noise, MAX_TOLERANCE)):
            best = size
    return best


def _time_size(compute: Callable[[int], None], size: int, repeats: int, started: float,
               budget_s: float, repeat_below_s: float) -> list[float]:
    """Up to ``repeats`` timings of ``compute(size)`` (fewer for long calls or a spent budget);
    ``repeats`` more, once, when they spread wider than ``NOISY_SPREAD``."""
    taken: list[float] = []
    limit = max(1, repeats)
    while len(taken) < limit:
        if taken and (taken[-1] > repeat_below_s or time.perf_counter() - started + taken[-1] > budget_s):
            break
        begin = time.perf_counter()
        compute(size)
        taken.append(time.perf_counter() - begin)
        if len(taken) == limit == max(1, repeats) and _spread(taken) > NOISY_SPREAD:
            limit += max(1, repeats)
    return taken


def measure_best_size(
    compute: Callable[[int], None],
    candidates: list[int],
    *,
    patience: int = 2,
    budget_s: float = 20.0,
    repeats: int = 3,
    repeat_below_s: float = 2.0,
) -> tuple[int, dict[int, float]]:
    """Time ``compute(size)`` per candidate (after one warm-up call) and choose a size.

    Each candidate's figure is the median of ``repeats`` timings per image: on a shared
    machine one call in a few is slowed down by other work. Timings that spread widely are
    taken again (``_time_size``). A repeat is skipped when the call took longer than
    ``repeat_below_s`` (long calls average the noise out themselves) or would overrun
    ``budget_s``. The choice (``choose_size``) is the largest size within the noise of the
    fastest, so timings that differ by noise alone never pick a small chunk over the batch a
    peer would use. Stops early when ``patience`` sizes in a row are measurably slower than
    the best so far, at the first out-of-memory error, or when the measurement has used
    ``budget_s`` (a slow explainer such as AttEXplore is not timed at 32 images).
    """
    timings: dict[int, float] = {}
    spreads: dict[int, float] = {}
    started = time.perf_counter()
    compute(candidates[0])  # warm-up: lazy initialisation, allocator, caches
    worse = 0
    for size in candidates:
        if timings and time.perf_counter() - started > budget_s:
            break
        try:
            taken = _time_size(compute, size, repeats, started, budget_s, repeat_below_s)
        except Exception as error:
            if is_out_of_memory(error):
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                break
            raise
        timings[size], spreads[size] = statistics.median(taken) / size, _spread(taken)
        if choose_size(timings, spreads) == size:
            worse = 0
        else:
            worse += 1
            if worse >= patience:
                break
    return choose_size(timings, spreads) if timings else candidates[0], timings


class TuningCache:
    """Measured chunk sizes, kept across runs in the user cache (``XAIBENCH_CACHE``)."""

    def __init__(self, path: Path | None = None):
        self.path = path or cache_dir() / "chunk_sizes.json"

    def key(self, payload: dict[str, Any]) -> str:
        payload = {
            **payload,
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "cpus": os.cpu_count(),
            "machine": platform.machine(),
        }
        return stable_hash(payload, 20)

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}  # damaged: measured again and rewritten

    def get(self, key: str) -> int | None:
        """The cached size, or None: never measured, damaged, or measured on a busy machine
        that is quiet now (its timings said more about the other work than about the sizes)."""
        entry = self._read().get(key)
        try:
            if not entry:
                return None
            measured_load = entry.get("load_per_cpu")
            if measured_load is not None and measured_load > BUSY_LOAD and load_per_cpu() < measured_load / 2:
                return None
            return int(entry["chunk_size"])
        except (AttributeError, KeyError, TypeError, ValueError):
            return None

    def put(self, key: str, size: int, timings: dict[int, float], label: str, load: float | None = None) -> None:
        data = self._read()
        data[key] = {
            "chunk_size": size, "seconds_per_image": timings, "what": label,
            "load_per_cpu": load_per_cpu() if load is None else load,
        }
        write_json(self.path, data)


#: Other work's load per CPU above which a machine was too busy for its timings to be kept:
#: two xaibench processes on two cores slowed each other 2–15× (issue 15's run log).
BUSY_LOAD = 0.5


def load_per_cpu() -> float:
    """Other work's load per CPU: the 1-minute load average less this process's own threads
    (its tuning and units keep them busy), per CPU; 0 where the OS does not report a load."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return 0.0
    return max(0.0, load - torch.get_num_threads()) / max(1, os.cpu_count() or 1)
