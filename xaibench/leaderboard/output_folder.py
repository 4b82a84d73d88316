"""The site's ``--out`` folder: xaibench writes only where it loses nothing of the user's.

A site is written into a folder that does not exist, is empty, or holds the marker file
``.xaibench-leaderboard.json`` that an earlier build left: the files it wrote there, each with
the SHA-256 of what it wrote. Any other non-empty folder is refused before anything is read
or drawn. In a marked folder a rebuild

* overwrites or removes only files the marker lists *and* whose bytes are still what xaibench
  wrote (a file the user added, or edited since, is the user's);
* refuses, changing nothing, when the new site would overwrite a file of the user's;
* is built in a hidden staging folder inside ``--out``, then each file is moved into place
  with one atomic rename, so an interrupted build leaves whole files, all of them listed.

Not being able to write (a file in the way, no permission, a read-only file system, a full
disk) is one line naming the path and the reason, never a traceback.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from .. import __version__
from ..errors import OutputError, XaibenchError
from ..files import write_json

MARKER = ".xaibench-leaderboard.json"
STAGING_PREFIX = ".xaibench-staging-"
SHOWN = 3  # names quoted in a refusal; the rest are counted
STALE_STAGING_S = 24 * 3600  # a staging folder this old is a killed build's, not a running one's

__all__ = ["MARKER", "SiteFolder", "cannot_write"]


def _names(items: list[str]) -> str:
    shown = ", ".join(sorted(items)[:SHOWN])
    return shown + (f" and {len(items) - SHOWN} more" if len(items) > SHOWN else "")


def _digest(path: Path) -> str | None:
    """SHA-256 of a regular file (not followed through a link); None for anything else."""
    if path.is_symlink() or not path.is_file():
        return None
    sha = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def cannot_write(path: Path | str, exc: OSError | None = None, code: int = errno.EACCES) -> OutputError:
    """The one-line error for a folder or file the site cannot be written to."""
    code = exc.errno if exc is not None and exc.errno else code
    reason = os.strerror(code)
    todo = "free some space or choose another --out" if code in (errno.ENOSPC, errno.EDQUOT) else (
        "choose a writable --out"
    )
    return OutputError(f"cannot write to {str(path)!r}: {reason} — {todo}")


def _check_location(out: Path) -> None:
    """``out`` is (or can become) a folder this process may write; raise otherwise."""
    for folder in (out, *out.parents):
        if not os.path.lexists(folder):
            continue
        if not folder.is_dir():
            if folder == out:
                raise XaibenchError(f"--out {str(out)!r} is a file, not a folder — choose a folder for the site")
            raise XaibenchError(
                f"--out {str(out)!r} is below {str(folder)!r}, which is a file, not a folder — choose another --out"
            )
        if not os.access(folder, os.W_OK | os.X_OK):
            read_only = hasattr(os, "statvfs") and os.statvfs(folder).f_flag & os.ST_RDONLY
            raise cannot_write(folder, code=errno.EROFS if read_only else errno.EACCES)
        return


class SiteFolder:
    """The ``--out`` of one build: checked on creation, written by :meth:`publish`."""

    def __init__(self, out: str | Path) -> None:
        self.path = Path(out)
        _check_location(self.path)
        self.ours = self._read_marker()

    def _read_marker(self) -> dict[str, str]:
        """Files xaibench wrote here earlier (path → SHA-256); refuse a folder that is not ours."""
        out = self.path
        if not out.is_dir():
            return {}
        entries = [p.name + ("/" if p.is_dir() and not p.is_symlink() else "")
                   for p in out.iterdir() if not p.name.startswith(STAGING_PREFIX)]
        if not entries:
            return {}
        if MARKER not in entries:
            raise XaibenchError(
                f"--out {str(out)!r} is not empty and was not made by xaibench (it holds {_names(entries)}); "
                "choose a new or empty --out, or remove those files"
            )
        try:
            marker = json.loads((out / MARKER).read_text(encoding="utf-8"))
            # "incoming": what an interrupted build was moving in; each file is the old or the new.
            lists = [marker.get("files", {}), marker.get("incoming", {})]
            if not all(isinstance(k, str) and isinstance(v, str) for files in lists for k, v in files.items()):
                raise ValueError("its file list is not path: SHA-256")
        except (OSError, ValueError, AttributeError) as exc:
            raise XaibenchError(
                f"--out {str(out)!r}: cannot read {MARKER} ({exc}); remove the folder or choose another --out"
            ) from exc
        # Ours only while its bytes are still what xaibench wrote: an edited file is the user's.
        ours: dict[str, str] = {}
        for name in {name for files in lists for name in files}:
            digest = _digest(out / name) if self._inside(name) else None
            if digest is not None and digest in (lists[0].get(name), lists[1].get(name)):
                ours[name] = digest
        return ours

    def _inside(self, name: str) -> bool:
        """A marker entry names a file below ``out`` (a hand-edited marker cannot reach outside)."""
        parts = Path(name).parts
        return bool(parts) and not Path(name).is_absolute() and ".." not in parts and name != MARKER

    @contextmanager
    def staging(self) -> Iterator[Path]:
        """A hidden folder inside ``out`` to build the site in; removed afterwards, whatever happens.

        A folder this build created and left empty (the build failed) is removed too.
        """
        missing = [f for f in (self.path, *self.path.parents) if not os.path.lexists(f)]
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            for stale in self.path.glob(STAGING_PREFIX + "*"):  # ours, left by a killed build
                if time.time() - stale.lstat().st_mtime > STALE_STAGING_S:  # not one running now
                    shutil.rmtree(stale, ignore_errors=True)
            stage = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=self.path))
        except OSError as exc:
            raise cannot_write(exc.filename or self.path, exc) from exc
        try:
            yield stage
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT):
                where = Path(exc.filename) if exc.filename else stage  # a staged file: name --out
                raise cannot_write(self.path if stage in (where, *where.parents) else where, exc) from exc
            raise
        finally:
            shutil.rmtree(stage, ignore_errors=True)
            for folder in missing:  # innermost first; only empty ones go
                try:
                    folder.rmdir()
                except OSError:
                    break

    def publish(self, stage: Path) -> list[str]:
        """Move the staged site into ``out``; remove what an earlier build wrote and this one does not.

        Returns the site's files (paths relative to ``out``). Refuses, changing nothing, when a
        staged file would replace one of the user's.
        """
        ours = self._read_marker()  # again: the user may have changed the folder meanwhile
        staged = sorted(stage.rglob("*"))
        new = {p.relative_to(stage).as_posix(): _digest(p) for p in staged if p.is_file()}
        folders = [p.relative_to(stage).as_posix() for p in staged if p.is_dir()]
        clashes = [name for name in [*folders, *new] if self._clashes(name, ours, folder=name in folders)]
        if clashes:
            raise XaibenchError(
                f"--out {str(self.path)!r} holds {_names(clashes)}, which xaibench did not write (or which were "
                "changed since); the new site would overwrite them — move them away or choose another --out"
            )
        self._write_marker(ours, incoming=new)  # an interrupted move leaves only listed files
        for name in folders:
            (self.path / name).mkdir(exist_ok=True)
        for name in new:
            os.replace(stage / name, self.path / name)
        for name in sorted(set(ours) - set(new)):
            (self.path / name).unlink(missing_ok=True)
        self._write_marker(new)
        self.ours = new
        return list(new)

    def _clashes(self, name: str, ours: dict[str, str], *, folder: bool = False) -> bool:
        """Would putting the staged ``name`` into ``out`` replace something that is not ours?

        A folder of the site (``assets/``) may exist if it is a real folder (not a file, not a link).
        """
        target = self.path / name
        if folder:
            return os.path.lexists(target) and (target.is_symlink() or not target.is_dir())
        return os.path.lexists(target) and name not in ours

    def _write_marker(self, files: dict[str, str], incoming: dict[str, str] | None = None) -> None:
        payload: dict[str, object] = {
            "tool": "xaibench leaderboard",
            "version": __version__,
            "written": datetime.now(UTC).isoformat(timespec="seconds"),
            "about": "files xaibench wrote here (path: SHA-256); only these are replaced or removed on a rebuild",
            "files": files,
        }
        if incoming is not None:
            payload["incoming"] = incoming
        write_json(self.path / MARKER, payload)
