"""The models package holds architectures, weight loading and wrapping: it never imports training."""

from __future__ import annotations

import ast
from pathlib import Path

import xaibench.models


def test_models_never_import_the_training_package() -> None:
    offenders = []
    for path in Path(xaibench.models.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                names = [("." * node.level) + (node.module or "")]
                names += [f"{names[0]}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            if any(name.startswith(("..training", "xaibench.training")) for name in names):
                offenders.append(f"{path.name}:{node.lineno}")
    assert offenders == []
