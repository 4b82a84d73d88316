"""Where xaibench keeps files it makes (trained weights, hashes); written with ``xaibench.files``."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$XAIBENCH_CACHE``, else the platform's user cache dir for ``xaibench``.

    Read on every call (not at import) so tests and users can redirect it at any time.
    """
    override = os.environ.get("XAIBENCH_CACHE")
    if override:
        return Path(override).expanduser()
    try:
        import platformdirs
    except ImportError:  # platformdirs is a declared dependency, but do not fail without it
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
        return Path(base) / "xaibench"
    return Path(platformdirs.user_cache_dir("xaibench", appauthor=False))

