"""The provenance part of a suite's section: per run its folder, time, suite file, seed,
device, packages and rows; where each model's weights came from; the convergence records."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np

from .load import RunInfo

PACKAGES = ("xaibench", "torch", "captum", "timm", "numpy", "python")


def _when(started: str | None) -> str:
    if not started:
        return "unknown"
    try:
        moment = datetime.fromisoformat(str(started))
    except ValueError:
        return str(started)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S") + (" UTC" if moment.tzinfo is not None else "")


def run_view(run: RunInfo) -> dict[str, Any]:
    env = run.environment
    device = str(env.get("device", "unknown"))
    if env.get("device_name") and env.get("device_name") != env.get("device"):
        device += f" ({env['device_name']})"
    return {
        "results_dir": run.results_dir,
        "run_id": run.run_id,
        "started": _when(run.started),
        "suite_source": run.suite_source or "unknown",
        "seed": "unknown" if run.seed is None else str(run.seed),
        "device": device,
        "packages": ", ".join(f"{p} {env[p]}" for p in PACKAGES if env.get(p)),
        "git": str(env.get("git_revision") or "–")[:12],
        "rows": run.rows,
        "environment": {str(k): str(v) for k, v in env.items()},
        "from_manifest": run.from_manifest,
    }


def weights(runs: list[RunInfo]) -> list[dict[str, str]]:
    """Where each model's weights came from, once per (model, source), with the runs."""
    found: dict[tuple[str, str], list[str]] = {}
    for run in runs:
        for model, source in run.models.items():
            found.setdefault((model, source or "unknown"), []).append(run.run_id)
    several = len({run.run_id for run in runs}) > 1
    return [
        {"model": model, "source": source, "runs": ", ".join(ids) if several else ""}
        for (model, source), ids in found.items()
    ]


def _number(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "–" if value is None else str(value)
    if isinstance(value, float):
        return f"{value:.3g}" if np.isfinite(value) else "–"
    return str(value)


_CONVERGENCE_SHOWN = {"model", "explainer", "gate", "param", "requested", "chosen", "trials", "converged", "median_gap"}


def convergence(runs: list[RunInfo]) -> list[dict[str, str]]:
    """The manifests' ``convergence`` records (the steps chosen per model × explainer and
    the median completeness gap measured), one line each."""
    several = len({run.run_id for run in runs}) > 1
    out = []
    for run in runs:
        for record in run.convergence:
            trials = [t for t in record.get("trials") or [] if isinstance(t, dict)]
            param = record.get("param")
            setting = "–"
            if param and ("chosen" in record or "requested" in record):
                requested, chosen = record.get("requested"), record.get("chosen", record.get("requested"))
                setting = (
                    f"{param} = {_number(chosen)}" if requested in (None, chosen)
                    else f"{param}: {_number(requested)} → {_number(chosen)}"
                )
            gap = record.get("median_gap", trials[-1].get("median_gap") if trials else None)
            converged = record.get("converged")
            details = [
                f"{key} = {_number(value)}" for key, value in record.items()
                if key not in _CONVERGENCE_SHOWN and not isinstance(value, dict | list)
            ]
            if len(trials) > 1:
                details.append("tried: " + ", ".join(
                    " ".join(f"{k} {_number(v)}" for k, v in t.items()) for t in trials
                ))
            out.append({
                "model": str(record.get("model", "")),
                "explainer": str(record.get("explainer", "")),
                "setting": setting,
                "gap": _number(gap),
                "gate": _number(record.get("gate")),
                "converged": "–" if converged is None else ("yes" if converged else "no: shown greyed, not ranked"),
                "details": "; ".join(details),
                "run": run.run_id if several else "",
            })
    return out
