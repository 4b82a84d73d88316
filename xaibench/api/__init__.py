"""The Python API: the same runs, tables and site as the command line, from a notebook.

* ``xaibench.evaluate(model, images, explainers=…, attacks=…, metrics=…)`` — any ``nn.Module``,
  a tensor of images, registered explainers, Captum methods or your own function: in memory;
* ``xaibench.run(suite, out=…, **overrides)`` — a suite file or built-in suite, as ``xaibench run``;
* ``xaibench.plan(suite, out=…, **overrides)`` — its cost: images, passes, disk, time (``xaibench plan``);
* ``xaibench.load(results_dir)`` — a results folder written by either;
* ``xaibench.list_plugins(kind, pattern)`` — as ``xaibench list`` (glob patterns).

All return or read the results folder layout of docs/results.md; the CLI calls the same
functions (docs/python-api.md).
"""

from __future__ import annotations

from .evaluate import evaluate
from .listing import list_plugins
from .results import Results
from .running import load, plan, run

__all__ = ["Results", "evaluate", "list_plugins", "load", "plan", "run"]
