"""How the command line starts: heavy imports under their own Ctrl-C handler, one-line warnings."""

from __future__ import annotations

import sys
from typing import Any


def one_line_warning(console: Any) -> Any:
    """A ``warnings.showwarning``: each warning as one line (``warning: …``), without the
    file, line and source line Python adds."""

    def show(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
        text = str(message).removeprefix("xaibench: ")
        console.print(f"[yellow]warning:[/yellow] {text.replace('[', chr(92) + '[')}", highlight=False)

    return show


def start_guarded(argv: list[str]) -> None:
    """Import the heavy libraries and the plugins under a Ctrl-C handler of their own: an
    interrupt while they load says one line and exits 130 (nothing was written yet), instead
    of a traceback from inside torch, or torch swallowing it half-way through numpy's import."""
    import os
    import signal

    if any(a in ("--help", "-h") for a in argv) or len(argv) < 2:
        return

    def stop(signum: int, frame: object) -> None:
        sys.stderr.write("interrupted while starting; nothing was changed\n")
        sys.stderr.flush()
        os._exit(130)

    try:
        previous = signal.signal(signal.SIGINT, stop)
    except ValueError:  # not the main thread: nothing to guard
        return
    try:
        import numpy  # noqa: F401  first: torch's start-up swallows an interrupt inside numpy's import
        import torch  # noqa: F401

        from . import load_builtins

        load_builtins()
    finally:
        signal.signal(signal.SIGINT, previous)
