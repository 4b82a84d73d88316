"""``--out`` of the leaderboard: nothing of the user's is lost, overwritten or silently wrong.

Every test builds its site from small synthetic results (tests/leaderboard/synthetic.py) and
first sets up the situation that lost data before (``index.html`` overwritten, ``assets/*.png``
and ``*.svg`` of the user's deleted, a traceback for a file given as ``--out``).
"""

from __future__ import annotations

import errno
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from xaibench.errors import XaibenchError
from xaibench.leaderboard import build_site

from .synthetic import write_results

MARKER = ".xaibench-leaderboard.json"
RESAMPLES = 20


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Small (a build takes about a second), with example images (PNG) and figures (SVG)."""
    return write_results(
        tmp_path_factory.mktemp("results") / "r", explainers=("saliency",), images=3, attacks=("exiaa",),
        metrics=("explanation_change_pct",), faithfulness=False,
    )


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder`` (relative path → bytes)."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def marker_files(out: Path) -> set[str]:
    return set(json.loads((out / MARKER).read_text(encoding="utf-8"))["files"])


def no_aggregation(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading and aggregating the results takes seconds: a bad --out must be refused before."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("results were aggregated before --out was checked")

    monkeypatch.setattr("xaibench.leaderboard.site.build_leaderboard", refuse)


def test_a_folder_not_made_by_xaibench_is_refused_untouched(
    results: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, xaibench_cli: Any
) -> None:
    # The report: the user's index.html was overwritten and their assets/*.png, *.svg deleted.
    out = tmp_path / "lbu"
    (out / "assets").mkdir(parents=True)
    (out / "assets" / "logo.png").write_bytes(b"\x89PNG logo")
    (out / "assets" / "diagram.svg").write_text("<svg/>")
    (out / "index.html").write_text("mine")
    before = snapshot(out)
    with pytest.raises(XaibenchError) as error:
        build_site([results], out, resamples=RESAMPLES)
    assert str(error.value) == (
        f"--out {str(out)!r} is not empty and was not made by xaibench (it holds assets/, index.html); "
        "choose a new or empty --out, or remove those files"
    )
    assert snapshot(out) == before and sorted(p.name for p in out.iterdir()) == ["assets", "index.html"]
    no_aggregation(monkeypatch)
    with pytest.raises(XaibenchError, match="not made by xaibench"):
        build_site([results], out, resamples=RESAMPLES)

    code, _, err = xaibench_cli(["leaderboard", str(results), "--out", str(out)])
    assert code == 2 and "Traceback" not in err
    assert err.strip().startswith("error: --out") and "not made by xaibench" in err
    assert snapshot(out) == before


def test_many_foreign_files_are_named_and_counted(results: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "home"
    for name in ("a.txt", "b.txt", "c.txt", "d.txt", "e.txt"):
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(name)
    no_aggregation(monkeypatch)
    with pytest.raises(XaibenchError, match=r"\(it holds a\.txt, b\.txt, c\.txt and 2 more\)"):
        build_site([results], out, resamples=RESAMPLES)
    assert len(snapshot(out)) == 5


def test_new_and_empty_folders_get_a_marker_listing_every_file(results: Path, tmp_path: Path) -> None:
    for out in (tmp_path / "new" / "nested", tmp_path / "empty"):
        if out.name == "empty":
            out.mkdir()
        index = build_site([results], out, resamples=RESAMPLES)
        assert index == out / "index.html" and index.is_file()
        written = set(snapshot(out)) - {MARKER}
        assert marker_files(out) == written and "index.html" in written
        assert any(name.startswith("assets/") and name.endswith(".png") for name in written)
        assert not [p for p in out.iterdir() if p.name.startswith(".xaibench-staging-")]
        marker = json.loads((out / MARKER).read_text(encoding="utf-8"))
        assert marker["version"] and marker["written"] and "incoming" not in marker


def test_rebuild_removes_only_our_stale_files_and_keeps_the_users(results: Path, tmp_path: Path) -> None:
    out = tmp_path / "site"
    build_site([results], out, resamples=RESAMPLES)  # with example images (PNG)
    first = snapshot(out)
    pngs = sorted(name for name in first if name.endswith(".png"))
    assert len(pngs) >= 2
    # Added by the user afterwards: names the old clean-up deleted (assets/*.png, *.svg).
    user = {
        "notes.txt": b"my notes",
        "assets/logo.png": b"\x89PNG my logo",
        "assets/my-figure-00000000.svg": b"<svg>mine</svg>",
        pngs[0]: b"\x89PNG edited by the user",  # an image of ours the user replaced: now theirs
    }
    for name, payload in user.items():
        (out / name).write_bytes(payload)

    build_site([results], out, resamples=RESAMPLES, examples=0)  # no example images this time
    after = snapshot(out)
    for name, payload in user.items():
        assert after[name] == payload, f"{name} of the user's was changed or removed"
    for name in pngs[1:]:
        assert name not in after, f"{name}, written by the first build and unused now, was kept"
    ours = marker_files(out)
    assert ours == set(after) - set(user) - {MARKER}
    assert not any(name.endswith(".png") for name in ours)
    html = after["index.html"].decode("utf-8")
    assert "logo.png" not in html and html != first["index.html"].decode("utf-8")


def test_rebuild_refuses_to_overwrite_a_file_of_the_users(results: Path, tmp_path: Path) -> None:
    out = tmp_path / "site"
    build_site([results], out, resamples=RESAMPLES)
    (out / "index.html").write_text("<h1>edited by hand</h1>")
    before = snapshot(out)
    with pytest.raises(XaibenchError) as error:
        build_site([results], out, resamples=RESAMPLES)
    assert str(error.value) == (
        f"--out {str(out)!r} holds index.html, which xaibench did not write (or which were changed since); "
        "the new site would overwrite them — move them away or choose another --out"
    )
    assert snapshot(out) == before
    assert not [p for p in out.iterdir() if p.name.startswith(".xaibench-staging-")]


def test_an_asset_name_taken_by_the_user_is_not_overwritten(results: Path, tmp_path: Path) -> None:
    out = tmp_path / "site"
    build_site([results], out, resamples=RESAMPLES)
    taken = sorted(name for name in snapshot(out) if name.endswith(".png"))[0]
    build_site([results], out, resamples=RESAMPLES, examples=0)  # removes our image ...
    assert not (out / taken).exists()
    (out / taken).write_bytes(b"the user's own picture")  # ... and the user puts one by that name
    before = snapshot(out)
    with pytest.raises(XaibenchError, match=f"holds {taken}, which xaibench did not write"):
        build_site([results], out, resamples=RESAMPLES)
    assert snapshot(out) == before


def test_out_that_is_a_file_or_below_one(results: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    below = afile / "sub" / "site"
    with pytest.raises(XaibenchError) as error:  # was a NotADirectoryError traceback, after the aggregation
        build_site([results], below, resamples=RESAMPLES)
    assert str(error.value) == (
        f"--out {str(below)!r} is below {str(afile)!r}, which is a file, not a folder — choose another --out"
    )
    no_aggregation(monkeypatch)
    with pytest.raises(XaibenchError) as error:
        build_site([results], below, resamples=RESAMPLES)
    with pytest.raises(XaibenchError) as error:
        build_site([results], afile, resamples=RESAMPLES)
    assert str(error.value) == f"--out {str(afile)!r} is a file, not a folder — choose a folder for the site"
    assert afile.read_text() == "keep me"


# The tests run as root, for whom chmod 555 does not stop a write: a folder the user may not
# write to, and a read-only file system, are simulated where the operating system reports them
# (os.access, os.statvfs, and a write failing with EROFS).


def deny_access(monkeypatch: pytest.MonkeyPatch, denied: Path) -> None:
    real = os.access

    def access(path: object, mode: int, *args: object, **kwargs: object) -> bool:
        if Path(os.fspath(path)) == denied and mode & os.W_OK:
            return False
        return real(path, mode, *args, **kwargs)

    monkeypatch.setattr(os, "access", access)


def test_a_folder_without_write_permission(results: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    parent = tmp_path / "locked"
    parent.mkdir()
    deny_access(monkeypatch, parent)
    no_aggregation(monkeypatch)
    with pytest.raises(XaibenchError) as error:
        build_site([results], parent / "site", resamples=RESAMPLES)
    assert str(error.value) == f"cannot write to {str(parent)!r}: Permission denied — choose a writable --out"
    assert list(parent.iterdir()) == []


def test_a_read_only_file_system(results: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "cdrom"
    out.mkdir()
    deny_access(monkeypatch, out)
    real = os.statvfs

    class ReadOnly:
        f_flag = os.ST_RDONLY

    monkeypatch.setattr(os, "statvfs", lambda path: ReadOnly() if Path(path) == out else real(path))
    no_aggregation(monkeypatch)
    with pytest.raises(XaibenchError) as error:
        build_site([results], out, resamples=RESAMPLES)
    assert str(error.value) == f"cannot write to {str(out)!r}: Read-only file system — choose a writable --out"


def test_a_write_that_fails_midway_is_one_line_and_keeps_the_old_site(
    results: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "site"
    build_site([results], out, resamples=RESAMPLES)
    (out / "notes.txt").write_text("mine")
    before = snapshot(out)
    real = os.replace

    def replace(src: object, dst: object, *args: object, **kwargs: object) -> None:
        # Building in the hidden staging folder works; writing into --out itself fails
        # (the file system went read-only, e.g. a full or unmounted disk).
        if Path(os.fspath(dst)).parent in (out, out / "assets"):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fspath(dst))
        real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(XaibenchError) as error:
        build_site([results], out, resamples=RESAMPLES, examples=0)
    assert str(error.value) == f"cannot write to {str(out / MARKER)!r}: Read-only file system — choose a writable --out"
    assert snapshot(out) == before
    assert not [p for p in out.iterdir() if p.name.startswith(".xaibench-staging-")]


def test_an_interrupted_rebuild_leaves_only_files_the_marker_lists(
    results: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "site"
    build_site([results], out, resamples=RESAMPLES, examples=0)
    (out / "assets" / "logo.png").write_bytes(b"mine")
    real = os.replace
    moved: list[str] = []

    def replace(src: object, dst: object, *args: object, **kwargs: object) -> None:
        if Path(os.fspath(dst)).parent == out / "assets" and not Path(os.fspath(dst)).name.startswith("."):
            if len(moved) == 2:
                raise KeyboardInterrupt  # Ctrl-C halfway through moving the new site in
            moved.append(os.fspath(dst))
        real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        build_site([results], out, resamples=RESAMPLES)  # adds example images
    monkeypatch.setattr(os, "replace", real)
    assert not [p for p in out.iterdir() if p.name.startswith(".xaibench-staging-")]
    marker = json.loads((out / MARKER).read_text(encoding="utf-8"))
    listed = set(marker["files"]) | set(marker["incoming"])
    assert set(snapshot(out)) - {MARKER, "assets/logo.png"} <= listed
    build_site([results], out, resamples=RESAMPLES)  # the next build takes over: all listed files are ours
    assert (out / "assets" / "logo.png").read_bytes() == b"mine"
    assert marker_files(out) == set(snapshot(out)) - {MARKER, "assets/logo.png"}


def test_staging_folders_of_killed_and_running_builds(results: Path, tmp_path: Path) -> None:
    """A build killed (SIGKILL) leaves its hidden staging folder: the folder still counts as
    empty, and the next build removes it once it is a day old (a younger one may be a build
    running now into the same --out, and is left alone)."""
    out = tmp_path / "site"
    killed, running = out / ".xaibench-staging-killed", out / ".xaibench-staging-running"
    for folder in (killed, running):
        (folder / "assets").mkdir(parents=True)
        (folder / "assets" / "half.png").write_bytes(b"half")
    day_ago = time.time() - 25 * 3600
    os.utime(killed, (day_ago, day_ago))
    build_site([results], out, resamples=RESAMPLES)
    assert not killed.exists() and (running / "assets" / "half.png").read_bytes() == b"half"
    assert not any(".xaibench-staging" in name for name in marker_files(out))


def test_the_marker_name_is_the_documented_one() -> None:
    from xaibench.leaderboard.output_folder import MARKER as name

    assert name == MARKER
