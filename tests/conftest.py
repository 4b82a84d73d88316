"""Test-wide settings: offline, a private cache, a fixed thread count."""

from __future__ import annotations

import os
import tempfile

os.environ["HF_HUB_OFFLINE"] = "1"
# Trained test models (the digits CNN) are cached per test session, never in the user's cache.
os.environ.setdefault("XAIBENCH_CACHE", tempfile.mkdtemp(prefix="xaibench-test-cache-"))

import pytest  # noqa: E402
import torch  # noqa: E402

# At most two threads; fewer when OMP_NUM_THREADS asks for fewer (the kernel check of
# `make test` runs single-threaded, docs/testing.md).
_threads = min(2, os.cpu_count() or 1)
if os.environ.get("OMP_NUM_THREADS", "").isdigit() and int(os.environ["OMP_NUM_THREADS"]) > 0:
    _threads = min(_threads, int(os.environ["OMP_NUM_THREADS"]))
torch.set_num_threads(_threads)


@pytest.fixture(scope="session")
def test_cache_dir() -> str:
    return os.environ["XAIBENCH_CACHE"]


@pytest.fixture(scope="session")
def builtin_names():
    """``builtin_names(registry)``: the plugins xaibench ships, without those that other test
    modules register at import (a test-only attack, a function explainer)."""

    def names(registry) -> list[str]:
        # Provided families (captum.*, quantus.*) live in xaibench modules but come from another library.
        return [
            n for n in registry.names()
            if registry.get(n).__module__.startswith("xaibench.") and registry.origin(n) == "xaibench"
        ]

    return names


@pytest.fixture
def xaibench_cli(capsys: pytest.CaptureFixture[str]):
    """``xaibench_cli(argv) -> (exit code, stdout, stderr)``: the console entry point, in process."""
    import sys

    from xaibench import cli

    def run(argv: list[str]) -> tuple[int, str, str]:
        old = sys.argv
        sys.argv = ["xaibench", *argv]
        try:
            cli.main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        finally:
            sys.argv = old
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run
