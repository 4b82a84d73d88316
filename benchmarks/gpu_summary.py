"""The figures of one ``benchmarks/gpu.sh`` run, as one JSON, with the headline printed last.

    python -m benchmarks.gpu_summary --logs LOGS --out OUT [--bench OUT/bench.json]
        [--plan LOGS/plan.json --results RESULTS_DIR] [--memory LOGS/memory.csv]

Reads what the script's steps left (any may be missing: a step that hit its time limit
leaves what it measured) and writes ``OUT/summary.json``:

* ``tests``: the CUDA-marked tests' last line (passed / failed / skipped counts);
* ``bench``: every benchmark ratio (runner vs naive loop, overhead, metrics vs Quantus /
  Captum) with whether the outputs matched;
* ``real_data``: per model × explainer of the real-data suite, the units done, images
  explained, seconds taken and images per second, beside the planner's estimate for the same
  units (estimate / actual);
* ``gpu_memory_peak_mib``: the largest GPU memory in use while the suite ran (nvidia-smi).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def _read_json(path: Path | None) -> Any:
    try:
        return json.loads(path.read_text()) if path else None
    except (OSError, ValueError):
        return None


def test_line(logs: Path) -> str:
    try:
        lines = [line for line in (logs / "tests.log").read_text().splitlines() if line.strip()]
    except OSError:
        return "not run"
    return lines[-1] if lines else "no output"


def bench_figures(bench: Any) -> list[dict[str, Any]]:
    if not isinstance(bench, dict):
        return []
    return [
        {"name": f.get("name"), "ratio": f.get("ratio"), "outputs_match": f.get("outputs_match")}
        for f in [*bench.get("figures", []), *bench.get("metrics", [])]
        if isinstance(f, dict)
    ]


def real_data(plan: Any, results: Path | None) -> list[dict[str, Any]]:
    """Per pair: units done, images explained and time, against the plan's estimate."""
    manifest = _read_json(results / "manifest.json") if results else None
    if not isinstance(plan, dict) or not isinstance(manifest, dict):
        return []
    done: dict[tuple[str, str], list[float]] = {}
    for unit in manifest.get("units", []):
        if unit.get("state") == "done":
            done.setdefault((unit["model"], unit["explainer"]), []).append(float(unit.get("wall_s") or 0.0))
    out = []
    for pair in plan.get("pairs", []):
        if pair.get("incompatible"):
            continue
        walls = done.get((pair["model"], pair["explainer"]), [])
        units = max(1, int(pair.get("units") or 1))
        share = len(walls) / units
        seconds = sum(walls)
        images = pair.get("explained", 0) * share
        estimate = (pair.get("estimate_s") or 0.0) * share
        out.append({
            "model": pair["model"], "explainer": pair["explainer"], "units_done": len(walls),
            "units_planned": units, "images_explained": images, "seconds": seconds,
            "images_per_s": images / seconds if seconds else None,
            "estimate_s": estimate, "estimate_over_actual": estimate / seconds if seconds else None,
        })
    return out


def memory_peak(path: Path | None) -> float | None:
    """The largest ``memory.used`` (MiB) sampled by nvidia-smi's CSV output."""
    try:
        lines = path.read_text().splitlines() if path else []
    except OSError:
        return None
    values = []
    for line in lines:
        field = line.split(",")[-1].strip().split(" ")[0]
        try:
            values.append(float(field))
        except ValueError:
            continue  # the CSV header, or an error line
    return max(values) if values else None


def headline(summary: dict[str, Any]) -> list[str]:
    lines = [f"device: {summary.get('device')}", f"cuda tests: {summary['tests']}"]
    for figure in summary["bench"]:
        match = {True: "outputs match", False: "OUTPUTS DIFFER", None: ""}[figure["outputs_match"]]
        ratio = figure["ratio"]
        lines.append(f"{figure['name']}: {ratio:.2f}× {match}" if isinstance(ratio, int | float) else f"{figure['name']}: –")
    for pair in summary["real_data"]:
        speed = f"{pair['images_per_s']:.1f} img/s" if pair["images_per_s"] else "–"
        ratio = f", plan/actual {pair['estimate_over_actual']:.2f}" if pair["estimate_over_actual"] else ""
        lines.append(f"{pair['model']} × {pair['explainer']}: {pair['units_done']}/{pair['units_planned']} units, {speed}{ratio}")
    if summary.get("gpu_memory_peak_mib") is not None:
        lines.append(f"GPU memory peak: {summary['gpu_memory_peak_mib']:.0f} MiB")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logs", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device", default="")
    parser.add_argument("--bench", type=Path, default=None)
    parser.add_argument("--plan", type=Path, default=None)
    parser.add_argument("--results", type=Path, default=None)
    parser.add_argument("--memory", type=Path, default=None)
    args = parser.parse_args(argv)
    summary = {
        "device": args.device,
        "tests": test_line(args.logs),
        "bench": bench_figures(_read_json(args.bench)),
        "real_data": real_data(_read_json(args.plan), args.results),
        "gpu_memory_peak_mib": memory_peak(args.memory),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    print("\n".join(headline(summary)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
