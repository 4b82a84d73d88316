"""Manifests of a results folder (``runs/*.json``, ``manifest.json``) and the suite's own
labels for the folder-safe partition values of older results.

Rows written by this xaibench carry their exact ``suite`` / ``model`` / ``explainer`` labels
inside the Parquet files; older rows have only the hive folder names, where the runner wrote
``partition_value(label)`` (``resnet/18`` became ``resnet_18``). ``restore_labels`` maps such a
value back to the label the manifests name, and leaves an exact label as it is.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from ..runner import results as runner_results

PARTITION_KEYS = runner_results.PARTITION_KEYS


def read_manifests(folder: Path) -> dict[str, dict[str, Any]]:
    """Every run manifest in the folder, by run id (runs/*.json, then manifest.json)."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted((folder / "runs").glob("*.json")) + [folder / "manifest.json"]:
        if not path.is_file():
            continue
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(manifest, dict) and manifest.get("run_id"):
            found.setdefault(str(manifest["run_id"]), manifest)
    return found


def suite_block(manifest: dict[str, Any]) -> dict[str, Any]:
    return (manifest.get("suite") or {}).get("suite") or {}


def label_maps(manifests: dict[str, dict[str, Any]]) -> dict[str, dict[str, str]]:
    """Folder-safe value -> the label the suite gave, per partition key (from the manifests).

    The runner writes ``partition_value(label)`` as the folder name (``resnet/18`` becomes
    ``resnet_18``); the manifest keeps the label itself. Ambiguous values are left alone.
    """
    labels: dict[str, set[str]] = {key: set() for key in PARTITION_KEYS}
    for manifest in manifests.values():
        suite = manifest.get("suite") or {}
        if suite_block(manifest).get("name"):
            labels["suite"].add(str(suite_block(manifest)["name"]))
        for key, plural in (("model", "models"), ("explainer", "explainers")):
            for spec in suite.get(plural) or []:
                if isinstance(spec, dict) and spec.get("label"):
                    labels[key].add(str(spec["label"]))
    maps: dict[str, dict[str, str]] = {}
    for key, values in labels.items():
        by_folder: dict[str, set[str]] = {}
        for value in values:
            by_folder.setdefault(runner_results.partition_value(value), set()).add(value)
        maps[key] = {
            folder: next(iter(found)) for folder, found in by_folder.items()
            if len(found) == 1 and next(iter(found)) != folder
        }
    return maps


def apply_labels(frame: pd.DataFrame, maps: dict[str, dict[str, str]]) -> pd.DataFrame:
    for key, mapping in maps.items():
        if mapping and key in frame.columns:
            frame[key] = frame[key].map(lambda v, m=mapping: m.get(v, v) if isinstance(v, str) else v)
    return frame


def restore_labels(folder: str | Path, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` (rows read from ``folder``) with the suite's own model/explainer labels in
    place of their folder-safe forms (``SG stdevs=0.05`` for ``SG_stdevs_0.05``)."""
    return apply_labels(frame, label_maps(read_manifests(Path(folder))))
