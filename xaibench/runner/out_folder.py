"""The results folder is checked before anything is loaded: it must be (or become) a writable folder.

A file where the folder should be, a file among its parents, a read-only file system or a folder
without write permission is refused with one line that names the path, before a model is loaded
or a unit computed. Nothing in an existing folder is removed or renamed here.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..errors import OutputError
from ..files import output_error


def _file_above(path: Path) -> Path | None:
    """The first existing ancestor of ``path`` (itself included) that is not a folder."""
    for candidate in [path, *path.parents]:
        if candidate.exists():
            return None if candidate.is_dir() else candidate
    return None


def prepare_out(out: Path) -> None:
    """Create ``out`` if needed and prove it writable (a probe file is written and removed)."""
    out = Path(out)
    blocking = _file_above(out)
    if blocking is not None:
        where = "is a file" if blocking == out else f"is below {str(blocking)!r}, which is a file"
        raise OutputError(f"the results folder {str(out)!r} {where}; choose a folder for --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(prefix=".xaibench-write-probe.", dir=out)
        os.close(handle)
        os.unlink(probe)
    except OSError as exc:
        error = output_error(exc, "the results folder", out)
        if (out / "manifest.json").is_file():
            raise OutputError(f"{error} (to read the results it holds: xaibench show {out})") from None
        raise error from None
