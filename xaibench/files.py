"""The one atomic writer: readers (and resumed runs) see no file or a whole one, never a torn one."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def write_atomic_bytes(path: Path, payload: bytes) -> None:
    """Write to a unique temporary name in the same folder, then rename over the target.

    Safe when the process is killed mid-write and when two processes write the same file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(payload)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise


def write_json(path: Path, payload: dict[str, Any]) -> None:
    write_atomic_bytes(path, json.dumps(payload, indent=2, default=str).encode("utf-8"))
