"""Per-unit leases: a live owner keeps others off its unit; a dead or silent one does not."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from xaibench.runner import build_plan, leases, run_plan
from xaibench.runner.suite import load_suite

from .test_cli_errors import GOOD, write_suite


def _write_lease(out: Path, unit_id: str, **owner: object) -> Path:
    path = leases.lease_path(out, unit_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"host": socket.gethostname(), "run_id": "other", "started": "t", **owner}))
    return path


@pytest.fixture
def live_pid():
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield process.pid
    process.kill()
    process.wait()


def test_a_live_lease_is_respected_and_a_released_one_is_gone(tmp_path: Path) -> None:
    first = leases.acquire(tmp_path, "u1", "run-a")
    assert isinstance(first, leases.Lease)
    second = leases.acquire(tmp_path, "u1", "run-b")
    assert isinstance(second, str) and f"pid {os.getpid()}" in second and "run-a" in second
    first.release()
    assert not leases.lease_path(tmp_path, "u1").exists()
    third = leases.acquire(tmp_path, "u1", "run-b")
    assert isinstance(third, leases.Lease)
    third.release()


def test_a_lease_of_a_dead_process_of_this_host_is_taken_over(tmp_path: Path) -> None:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    _write_lease(tmp_path, "u1", pid=process.pid)
    lease = leases.acquire(tmp_path, "u1", "run-b")
    assert isinstance(lease, leases.Lease)
    assert json.loads(lease.path.read_text())["pid"] == os.getpid()
    lease.release()


def test_a_lease_of_another_machine_is_stale_only_when_it_stopped_being_refreshed(tmp_path: Path) -> None:
    path = _write_lease(tmp_path, "u1", pid=1, host="elsewhere")
    assert isinstance(leases.acquire(tmp_path, "u1", "run-b"), str)
    old = time.time() - leases.STALE_S - 5
    os.utime(path, (old, old))
    lease = leases.acquire(tmp_path, "u1", "run-b")
    assert isinstance(lease, leases.Lease)
    lease.release()


def test_a_retry_of_the_same_run_takes_its_own_lease_back(tmp_path: Path, live_pid: int) -> None:
    _write_lease(tmp_path, "u1", pid=live_pid, run_id="run-a")
    assert isinstance(leases.acquire(tmp_path, "u1", "run-b"), str)
    lease = leases.acquire(tmp_path, "u1", "run-a")
    assert isinstance(lease, leases.Lease)
    lease.release()


def test_the_owner_keeps_its_lease_fresh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(leases, "REFRESH_S", 0.05)
    lease = leases.acquire(tmp_path, "u1", "run-a")
    assert isinstance(lease, leases.Lease)
    old = time.time() - 1000
    os.utime(lease.path, (old, old))
    time.sleep(0.3)
    assert time.time() - lease.path.stat().st_mtime < 10
    lease.release()


def test_a_run_skips_units_another_live_run_holds_and_reports_them(tmp_path: Path, live_pid: int) -> None:
    suite = load_suite(str(write_suite(tmp_path, GOOD.replace("seed = 0", 'seed = 0\ndevice = "cpu"\nimages_per_unit = 1'))))
    out = tmp_path / "out"
    plan = build_plan(suite, out)
    held = plan.units[0].unit_id
    _write_lease(out, held, pid=live_pid)
    report = run_plan(plan)
    assert report.units_leased == 1 and report.units_done == 1
    (record,) = [u for u in report.manifest["units"] if u["unit_id"] == held]
    assert record["state"] == "leased" and f"pid {live_pid}" in record["reason"]
    assert not plan.units[0].marker(out).exists()
    leases.lease_path(out, held).unlink()  # the other run ended without finishing it
    report = run_plan(build_plan(suite, out))
    assert report.units_done == 1 and report.units_existing == 1
