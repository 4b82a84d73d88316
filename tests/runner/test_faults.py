"""Faults a user meets (issue 13): each one is a clear one-line error or a recorded skip, and
nothing already computed is lost. Every test reproduces the fault first, then checks what
xaibench does with it."""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from xaibench.runner import build_plan, run_plan
from xaibench.runner.results import part_files, read_results
from xaibench.runner.suite import load_suite

from .test_cli_errors import GOOD, run_cli, write_suite

SUITE = GOOD.replace('seed = 0', 'seed = 0\ndevice = "cpu"\nimages_per_unit = 1')
KEY = ["image_id", "attack_image_id", "alpha", "topk"]


def markers(out: Path) -> list[Path]:
    return sorted((out / "_units").glob("*.json"))


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, pd.DataFrame]:
    """A finished two-unit run (copied by each test that damages it)."""
    root = tmp_path_factory.mktemp("finished")
    suite = write_suite(root, SUITE)
    out = root / "out"
    report = run_plan(build_plan(load_suite(str(suite)), out))
    assert report.units_done == 2
    return suite, out, read_results(out).sort_values(KEY).reset_index(drop=True)


def copy_of(finished: tuple[Path, Path, pd.DataFrame], tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(finished[1], target)
    return target


def assert_same_rows(out: Path, reference: pd.DataFrame) -> None:
    rows = read_results(out).sort_values(KEY).reset_index(drop=True)
    assert len(rows) == len(reference)
    for column in ("explanation_change_pct", "ssim", "confidence_drop_pct"):
        np.testing.assert_allclose(rows[column], reference[column], rtol=1e-6, atol=1e-9)


# -- resume checks what it skips ------------------------------------------------------------

@pytest.mark.parametrize("damage", ["delete", "truncate", "marker"])
def test_resume_recomputes_a_complete_unit_whose_files_are_missing_or_damaged(
    finished: tuple[Path, Path, pd.DataFrame], tmp_path: Path, damage: str
) -> None:
    suite, _, reference = finished
    out = copy_of(finished, tmp_path)
    part = part_files(out)[0]
    if damage == "delete":
        part.unlink()
    elif damage == "truncate":
        part.write_bytes(part.read_bytes()[:300])
    else:
        markers(out)[0].write_text("{not json")
    report = run_plan(build_plan(load_suite(str(suite)), out))
    assert report.units_done == 1 and report.units_existing == 1
    assert any("is recomputed" in note for note in report.manifest["notes"])
    assert_same_rows(out, reference)
    if damage == "truncate":  # the damaged file is kept aside, not deleted
        kept = [p for p in (out / "_quarantine").rglob(part.name) if "robustness" in p.parts]
        assert [p.stat().st_size for p in kept] == [300]


def test_show_and_leaderboard_leave_out_a_damaged_part_and_say_so(
    finished: tuple[Path, Path, pd.DataFrame], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = copy_of(finished, tmp_path)
    part = part_files(out)[0]
    part.write_bytes(part.read_bytes()[:300])
    code, stdout, err = run_cli(["show", str(out)], capsys)
    assert code == 0, err
    assert "left out the unreadable results file" in err and part.name in err.replace("\n", "")
    assert "1 robustness rows" in stdout
    code, stdout, err = run_cli(["leaderboard", str(out), "--format", "markdown", "--resamples", "10"], capsys)
    assert code == 0, err
    assert "Traceback" not in err and "left out" in err


def test_a_damaged_manifest_is_one_line_and_one_lacking_fields_still_shows(
    finished: tuple[Path, Path, pd.DataFrame], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = copy_of(finished, tmp_path)
    (out / "manifest.json").write_text("{bad")
    code, _, err = run_cli(["show", str(out)], capsys)
    assert code == 2 and "manifest.json is not a readable manifest" in err and "Traceback" not in err
    (out / "manifest.json").write_text('{"units": [{}]}')
    code, stdout, err = run_cli(["show", str(out)], capsys)
    assert code == 0, err
    assert "robustness rows" in stdout


def test_show_prints_every_suite_of_a_folder(
    finished: tuple[Path, Path, pd.DataFrame], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = copy_of(finished, tmp_path)
    other = write_suite(tmp_path, SUITE.replace('name = "t"', 'name = "second"'))
    run_plan(build_plan(load_suite(str(other)), out))
    code, stdout, err = run_cli(["show", str(out)], capsys)
    assert code == 0, err
    assert "suite t" in stdout and "suite second" in stdout
    assert stdout.count("2 robustness rows") == 2


def test_a_damaged_pool_cache_is_discarded_and_recomputed(
    finished: tuple[Path, Path, pd.DataFrame], tmp_path: Path
) -> None:
    suite, _, reference = finished
    out = copy_of(finished, tmp_path)
    (cache,) = list((out / "_cache").glob("pool-probs-*.npz"))
    cache.write_bytes(b"garbage")
    for marker in markers(out):
        marker.unlink()
    with pytest.warns(RuntimeWarning, match="is damaged"):
        report = run_plan(build_plan(load_suite(str(suite)), out))
    assert report.units_failed == 0 and report.units_done == 2
    with np.load(cache) as stored:
        assert len(stored["ids"]) == stored["probs"].shape[0] > 0
    assert_same_rows(out, reference)


# -- unreadable inputs ----------------------------------------------------------------------

def _folder(root: Path) -> Path:
    from PIL import Image

    from xaibench.models.digits_cnn import digits_arrays

    pixels, labels = digits_arrays("test", image_size=32)
    for label in (0, 1, 2):
        (root / f"class{label}").mkdir(parents=True)
        for i in (labels == label).nonzero().flatten()[:2].tolist():
            Image.fromarray((pixels[i, 0].numpy() * 255).astype("uint8")).save(root / f"class{label}" / f"img{i}.png")
    return root


def test_a_unit_whose_images_are_unreadable_is_not_complete_and_runs_after_repair(tmp_path: Path) -> None:
    root = _folder(tmp_path / "folder")
    victims = sorted((root / "class1").glob("*.png"))
    saved = {p: p.read_bytes() for p in victims}
    for path in victims:  # every image of class 1: whichever is sampled, its unit reads nothing
        path.write_bytes(b"\x89PNG\r\n\x1a\n not a png")
    suite = write_suite(tmp_path, (
        f"[suite]\nname='broken'\ndevice='cpu'\nimages_per_unit=1\n[dataset]\nname='image_folder'\nroot='{root}'\n"
        "[[models]]\nname='digits_cnn'\n[[explainers]]\nname='saliency'\n"
        "[[attacks]]\nname='exiaa'\nalphas=[0.1]\ntopks=[0.2]\nn_attack_images=1\n"
    ))
    out = tmp_path / "out"
    with pytest.warns(RuntimeWarning, match="unreadable"):
        report = run_plan(build_plan(load_suite(str(suite)), out))
    assert report.units_incomplete == 1 and report.units_done == 2
    (record,) = [u for u in report.manifest["units"] if u["state"] == "incomplete"]
    assert "unreadable" in record["reason"] and "re-run" in record["reason"]
    assert len(markers(out)) == 2, "the incomplete unit has no marker"
    for path, payload in saved.items():
        path.write_bytes(payload)
    report = run_plan(build_plan(load_suite(str(suite)), out))
    assert report.units_done == 1 and report.units_existing == 2 and report.units_incomplete == 0
    assert read_results(out)["image_id"].str.contains("class1").any()


# -- the results folder ---------------------------------------------------------------------

@pytest.mark.parametrize("where", ["file", "below"])
def test_out_that_is_a_file_is_refused_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    suite = write_suite(tmp_path, SUITE)
    blocker = tmp_path / "results"
    blocker.write_text("mine")
    out = blocker if where == "file" else blocker / "x"
    code, _, err = run_cli(["run", "--suite", str(suite), "--out", str(out)], capsys)
    assert code == 2 and "Traceback" not in err
    assert "is a file" in err and "choose a folder for --out" in err
    assert blocker.read_text() == "mine"


def test_a_read_only_results_folder_is_refused_with_a_message(
    finished: tuple[Path, Path, pd.DataFrame], tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The tests may run as root, for whom chmod does not stop a write: the file system's
    # refusal is simulated where the runner first writes.
    import xaibench.runner.out_folder as out_folder

    suite, _, _ = finished
    out = copy_of(finished, tmp_path)

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EROFS, "Read-only file system", str(out))

    monkeypatch.setattr(out_folder.tempfile, "mkstemp", refuse)
    code, _, err = run_cli(["run", "--suite", str(suite), "--out", str(out)], capsys)
    assert code == 2 and "Traceback" not in err
    assert "Read-only file system" in err and "choose a writable --out" in err and "xaibench show" in err


def test_a_full_disk_stops_the_run_with_a_message_and_resume_completes(
    finished: tuple[Path, Path, pd.DataFrame], tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import xaibench.runner.results as results

    suite, _, reference = finished
    out = tmp_path / "out"
    real, calls = results.write_part, {"n": 0}

    def fill_up(path: Path, table: object) -> None:
        calls["n"] += 1
        if calls["n"] > 2:  # the first unit's two parts fit, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, table)

    monkeypatch.setattr(results, "write_part", fill_up)
    code, _, err = run_cli(["run", "--suite", str(suite), "--out", str(out)], capsys)
    assert code == 2 and "Traceback" not in err
    assert "No space left on device" in err and "disk is full" in err and "resumes" in err
    assert len(markers(out)) == 1
    monkeypatch.setattr(results, "write_part", real)
    code, stdout, err = run_cli(["run", "--suite", str(suite), "--out", str(out)], capsys)
    assert code == 0, err
    assert "1 resumed" in stdout
    assert_same_rows(out, reference)


def test_results_files_honour_the_umask(tmp_path: Path) -> None:
    import os

    from xaibench.files import write_atomic_bytes

    old = os.umask(0o022)
    try:
        write_atomic_bytes(tmp_path / "shared.bin", b"x")
        os.umask(0o077)
        write_atomic_bytes(tmp_path / "private.bin", b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "shared.bin").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "private.bin").stat().st_mode & 0o777 == 0o600


def test_a_run_writes_files_colleagues_can_read(tmp_path: Path) -> None:
    import os

    old = os.umask(0o022)
    try:
        suite = write_suite(tmp_path, SUITE.replace("limit = 2", "limit = 1"))
        run_plan(build_plan(load_suite(str(suite)), tmp_path / "out"))
    finally:
        os.umask(old)
    written = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert written and all(p.stat().st_mode & 0o044 == 0o044 for p in written), [
        (str(p), oct(p.stat().st_mode)) for p in written if p.stat().st_mode & 0o044 != 0o044
    ]


# -- wrong values, refused before any work --------------------------------------------------

@pytest.mark.parametrize(
    ("edit", "argv", "expected"),
    [
        (None, ["--batch-size", "-3"], ["--batch-size: expected an integer ≥ 1, got -3"]),
        (None, ["--seed", str(10**20)], ["--seed: expected an integer in [0, 2**63)"]),
        (("seed = 0", f"seed = {10**20}"), [], ["[suite.seed]", "2**63"]),
        (('name = "saliency"', "name = 5"), [], ["[explainers[0].name]", "got 5", "xaibench list explainers"]),
        (('name = "saliency"', 'name = "smoothgrad"\nnt_samples = 1000000000'), [], ["[explainers[0]]", "nt_samples = 1000000000", "lower the setting"]),
        (('name = "saliency"', 'name = "integrated_gradients"\nn_steps = 1000000000'), [], ["[explainers[0]]", "n_steps = 1000000000", "lower the setting"]),
        (('name = "saliency"', 'name = "integrated_gradients"\nn_steps = 2.9'), [], ["n_steps", "2.9"]),
    ],
)
def test_bad_values_are_named_and_refused_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], edit: tuple[str, str] | None, argv: list[str],
    expected: list[str],
) -> None:
    suite = write_suite(tmp_path, SUITE.replace(*edit) if edit else SUITE)
    out = tmp_path / "out"
    code, _, err = run_cli(["run", "--suite", str(suite), "--out", str(out), *argv], capsys)
    assert code == 2 and "Traceback" not in err
    flat = err.replace("\n", " ")
    for fragment in expected:
        assert fragment in flat, (fragment, err)
    assert not list(out.rglob("part-*.parquet")) and not list(out.rglob("_units/*.json"))


def test_a_suite_path_that_is_a_folder_is_called_a_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["run", "--suite", str(tmp_path)], capsys)
    assert code == 2 and "is a folder" in err and "does not exist" not in err


@pytest.mark.parametrize(("address", "expected"), [("nonsense::::", "malformed Ray address"), ("127.0.0.1:1", "cannot reach")])
def test_a_bad_ray_address_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], address: str, expected: str
) -> None:
    suite = write_suite(tmp_path, SUITE)
    code, _, err = run_cli(
        ["run", "--suite", str(suite), "--out", str(tmp_path / "o"), "--executor", "ray", "--address", address], capsys
    )
    assert code == 2 and expected in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_more_attack_images_than_the_pool_holds_is_said(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    suite = write_suite(tmp_path, SUITE.replace("limit = 2", "limit = 1\npool_size = 5").replace(
        "n_attack_images = 1", "n_attack_images = 1000000"))
    plan = build_plan(load_suite(str(suite)), tmp_path / "out")
    (note,) = [n for n in plan.notes if "n_attack_images" in n]
    assert "1000000" in note and "pool holds 5 images" in note and "at most 5" in note
    report = run_plan(plan)
    rows = read_results(tmp_path / "out")
    assert rows.groupby("image_id")["attack_image_id"].nunique().max() <= 5
    assert report.manifest["notes"] == plan.notes


def test_more_classes_than_the_dataset_has_is_said(tmp_path: Path) -> None:
    suite = write_suite(tmp_path, SUITE.replace("limit = 2", "n_classes = 1000000"))
    plan = build_plan(load_suite(str(suite)), tmp_path / "out")
    (note,) = [n for n in plan.notes if "n_classes" in n]
    assert "1000000" in note and "has 10 classes" in note and "10 originals" in note
    capped = write_suite(tmp_path, SUITE.replace("limit = 2", "n_classes = 1000000\nlimit = 2"))
    assert not build_plan(load_suite(str(capped)), tmp_path / "out2").notes  # --limit asked for 2


def test_manifest_records_every_unit_state(finished: tuple[Path, Path, pd.DataFrame]) -> None:
    manifest = json.loads((finished[1] / "manifest.json").read_text())
    assert {u["state"] for u in manifest["units"]} == {"done"}
    assert manifest["notes"] == []


def test_ctrl_c_while_starting_is_one_line_and_exit_130(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    process = subprocess.Popen(
        [sys.executable, "-m", "xaibench.cli", "leaderboard", str(tmp_path / "nothing"), "--out", str(tmp_path / "site")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=dict(os.environ, HF_HUB_OFFLINE="1"),
    )
    time.sleep(0.8)  # torch and the plugins are still importing
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 130, output
    assert "interrupted" in output and "Traceback" not in output, output
    assert not (tmp_path / "site").exists()
