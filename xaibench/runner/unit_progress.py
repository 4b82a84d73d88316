"""Progress inside a unit: the images its explain passes have finished, as they finish.

A unit of the eXIAA protocol explains hundreds of corrupted images per original (hours for a
slow explainer), so a bar that moves only when a unit ends sits at 0 % for that long. The
model access reports every finished explain chunk here; whoever shows progress installs a
listener with :func:`reporting` around the run. Units run by Ray workers report nothing (the
listener lives in the driver); the bar then moves when each unit ends.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

_local = threading.local()


@contextmanager
def reporting(listener: Callable[[int], None]) -> Iterator[None]:
    """Call ``listener(n)`` for every ``n`` images explained in this thread while inside."""
    previous = getattr(_local, "listener", None)
    _local.listener = listener
    try:
        yield
    finally:
        _local.listener = previous


def explained(count: int) -> None:
    """Report ``count`` images explained (a no-op without a listener)."""
    listener = getattr(_local, "listener", None)
    if listener is not None and count > 0:
        listener(count)
