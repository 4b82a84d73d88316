"""Per-unit leases: a unit being computed is owned by one process, which others skip.

Before computing a unit a process creates ``OUT/_leases/<unit id>.lock`` atomically (``O_EXCL``)
with its pid, host, run id and start time, refreshes the file's time every ``REFRESH_S`` while
it works, and removes it after the unit's marker is written (or the unit failed). A second
run into the same folder, a Ray retry or a second machine that finds a live lease skips the
unit ("in progress"), so no unit is computed twice at once.

A lease is stale, and taken over, when its owner is a process of this host that no longer
exists, when it belongs to the same run (a retry of a task whose worker died), or when its
file has not been refreshed for ``STALE_S`` (a crashed process on another machine).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..files import file_mode

REFRESH_S = 30.0
STALE_S = 300.0


def lease_path(out: Path, unit_id: str) -> Path:
    return Path(out) / "_leases" / f"{unit_id}.lock"


def _owner(run_id: str) -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "run_id": run_id,
        "started": datetime.now(UTC).isoformat(),
    }


def _read_owner(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}  # torn or unreadable: judged by its age alone


def _alive(pid: Any) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError, TypeError, OverflowError):
        return True  # exists under another user, or unknowable: assume alive
    return True


def is_stale(path: Path, owner: dict[str, Any], run_id: str, *, now: float | None = None) -> bool:
    if owner.get("run_id") == run_id and owner.get("pid") != os.getpid():
        return True  # an earlier attempt of this run's task (Ray retries after a worker died)
    if owner.get("host") == socket.gethostname() and "pid" in owner and not _alive(owner["pid"]):
        return True
    try:
        age = (now or time.time()) - path.stat().st_mtime
    except FileNotFoundError:
        return True
    return age > STALE_S


def describe(owner: dict[str, Any]) -> str:
    if not owner:
        return "in progress in another process (its lease file is unreadable)"
    return (
        f"in progress in pid {owner.get('pid')} on {owner.get('host')} "
        f"(run {owner.get('run_id')}, since {owner.get('started')})"
    )


@dataclass
class Lease:
    path: Path
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _beat(self) -> None:
        while not self._stop.wait(REFRESH_S):
            try:
                os.utime(self.path)
            except OSError:
                return

    def start(self) -> Lease:
        self._thread = threading.Thread(target=self._beat, name="xaibench-lease", daemon=True)
        self._thread.start()
        return self

    def release(self) -> None:
        self._stop.set()
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass


def _create(path: Path, run_id: str) -> bool:
    try:
        handle = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, file_mode())
    except FileExistsError:
        return False
    with os.fdopen(handle, "w", encoding="utf-8") as stream:
        json.dump(_owner(run_id), stream)
    return True


def _break(path: Path, seen: dict[str, Any]) -> None:
    """Remove a stale lease, unless another process replaced it since it was judged stale."""
    aside = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.stale")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return
    if _read_owner(aside) != seen:  # a fresh lease: put it back (unless yet another exists)
        try:
            os.link(aside, path)
        except FileExistsError:
            pass
    aside.unlink(missing_ok=True)


def acquire(out: Path, unit_id: str, run_id: str) -> Lease | str:
    """The unit's lease, or why it cannot be had (another live owner)."""
    path = lease_path(out, unit_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(3):
        if _create(path, run_id):
            return Lease(path).start()
        owner = _read_owner(path)
        if owner is None:
            continue  # released meanwhile
        if not is_stale(path, owner, run_id):
            return describe(owner)
        _break(path, owner)
    owner = _read_owner(path) or {}
    return describe(owner)
