"""The one atomic writer: readers (and resumed runs) see no file or a whole one, never a torn one.

Files get the permissions any other program would give them under the process's umask
(``0o666 & ~umask``), so a results folder on a shared file system is readable by colleagues
when the umask says so; ``mkstemp`` alone would leave every file private (0600).
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from .errors import OutputError


def _read_umask() -> int:
    """The process umask, read without changing it where Linux reports it (else set and restore)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    return 0o666 & ~_read_umask()


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
            os.fchmod(stream.fileno(), file_mode())
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


#: Errors of the file system itself (not of one bad file): the run cannot go on writing.
FULL = (errno.ENOSPC, errno.EDQUOT)
NOT_WRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS)


def output_error(exc: OSError, what: str, path: Path | str | None = None) -> OutputError:
    """A one-line, actionable message for a failed write of ``what`` (a results folder, a site)."""
    where = exc.filename or path or ""
    if exc.errno in FULL:
        advice = (
            "the disk is full; free some space (or choose another --out) and re-run the same "
            "command: finished units are kept and the run resumes where it stopped"
        )
    elif exc.errno in NOT_WRITABLE:
        advice = f"{what} is not writable here; choose a writable --out"
    else:
        advice = f"cannot write {what}"
    reason = exc.strerror or type(exc).__name__
    return OutputError(f"cannot write {str(where)!r}: {reason} — {advice}")
