"""Run the performance benchmarks and record them in docs/performance.md.

    python -m benchmarks.run            # the full set (make bench); < 10 min on 2 CPU cores
    python -m benchmarks.run --quick    # smoke run on the digits CNN, < 1 min; docs untouched

Each benchmark prints one line: the ratio, its target and PASS/FAIL. The full run rewrites
the results section of docs/performance.md (between the ``bench:results`` markers).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .common import REPO_ROOT, Figure, load_average, machine, private_cache

BENCHMARKS = ("grid", "metrics", "memory")
DOCS = REPO_ROOT / "docs" / "performance.md"
BEGIN = "<!-- bench:results:begin -->"
END = "<!-- bench:results:end -->"


def configs(quick: bool, device: str) -> dict[str, Any]:
    """Benchmark sizes. Full: sized for ~5 min on 2 quiet CPU cores; quick: seconds."""
    from .grid import GridConfig
    from .memory import MemoryConfig
    from .metrics_vs_oracles import MetricsConfig

    if quick:
        return {
            "grid": [
                GridConfig(
                    model="digits_cnn",
                    dataset="digits",
                    n_originals=2,
                    alphas=(0.03, 0.15),
                    topks=(0.05, 0.2, 0.5),
                    n_attack_images=2,
                    device=device,
                    rounds=1,
                )
            ],
            "metrics": MetricsConfig(
                model="digits_cnn",
                dataset="digits",
                dataset_params={},
                n_images=4,
                steps=16,
                fractions=16,
                infd_samples=8,
                device=device,
                rounds=1,
            ),
            "memory": MemoryConfig(images=4, factor=3, pool_size=8, device=device),
        }
    return {
        "grid": [
            # The paper's full α × top-k grid, saliency: the headline.
            GridConfig(device=device),
            # Integrated Gradients with few steps, on a smaller grid to keep the run short.
            GridConfig(
                n_originals=1,
                topks=(0.01, 0.05, 0.2, 0.5),
                explainer="integrated_gradients",
                explainer_params={"n_steps": 4},
                device=device,
            ),
        ],
        "metrics": MetricsConfig(device=device),
        "memory": MemoryConfig(device=device),
    }


def run(selected: list[str], quick: bool, device: str, report: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the selected benchmarks; returns figures (headlines and details) and timings."""
    headlines: list[Figure] = []
    details: dict[str, list[Figure]] = {}
    seconds: dict[str, float] = {}
    sizes = configs(quick, device)
    with private_cache():
        if "grid" in selected:
            from .grid import run_grid_benchmarks

            started = time.perf_counter()
            for index, grid in enumerate(sizes["grid"]):
                speedup, overhead = run_grid_benchmarks(grid)
                headlines.append(speedup)
                report(speedup.line())
                if index == 0:  # the overhead of the headline configuration
                    headlines.append(overhead)
                    report(overhead.line())
                else:
                    details.setdefault("grid", []).append(overhead)
                    report(f"  {overhead.line()}")
            seconds["grid"] = time.perf_counter() - started
        if "metrics" in selected:
            from .metrics_vs_oracles import run_metrics_benchmark

            started = time.perf_counter()
            headline, per_metric = run_metrics_benchmark(sizes["metrics"])
            seconds["metrics"] = time.perf_counter() - started
            headlines.append(headline)
            details["metrics"] = per_metric
            report(headline.line())
            for figure in per_metric:
                report(f"  {figure.line()}")
        if "memory" in selected:
            from .memory import run_memory_benchmark

            started = time.perf_counter()
            figure = run_memory_benchmark(sizes["memory"])
            seconds["memory"] = time.perf_counter() - started
            headlines.append(figure)
            report(figure.line())
    return {"headlines": headlines, "details": details, "seconds": seconds}


# --------------------------------------------------------------------------------------
# docs/performance.md
# --------------------------------------------------------------------------------------


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if value != value:
            return "n/a"
        if value == 0 or 1e-3 <= abs(value) < 1e5:
            return f"{value:.3g}" if abs(value) < 100 else f"{value:.1f}"
        return f"{value:.1e}"
    if isinstance(value, list | tuple | dict) and not value:
        return "—"
    if isinstance(value, list | tuple):
        return ", ".join(_fmt(v) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_fmt(v)}" for k, v in value.items())
    return str(value)


def _seconds(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def results_markdown(outcome: dict[str, Any], info: dict[str, Any]) -> str:
    """The generated results section (everything between the markers)."""
    lines = [
        "## Results of the last full run",
        "",
        "Generated by `benchmarks/run.py`; do not edit by hand.",
        "",
        "| | |",
        "| --- | --- |",
        f"| date (UTC) | {info['date']} |",
        f"| command | `{info['command']}` |",
        f"| CPU | {info['cpu']} |",
        f"| cores / torch threads | {info['cores']} / {info['torch_threads']} |",
        f"| device | {info['device']} |",
        f"| torch / python | {info['torch']} / {info['python']} |",
        f"| load average (1, 5, 15 min) at start / end | {_fmt(info['load_average_start'])} / {_fmt(info['load_average_end'])} |",
        f"| total wall time | {info['wall_s']:.0f} s ({_fmt(outcome['seconds'])} s per benchmark) |",
        "",
        "| benchmark | measured | target | outputs | result |",
        "| --- | --- | --- | --- | --- |",
    ]
    for figure in outcome["headlines"]:
        outputs = "—" if figure.outputs_match is None else ("match" if figure.outputs_match else "**differ**")
        verdict = "PASS" if figure.passed else "**FAIL**"
        lines.append(f"| {figure.name} | {figure.ratio:.2f}× | {figure.target_text()} | {outputs} | {verdict} |")
    lines.append("")
    for figure in outcome["headlines"]:
        lines += [f"### {figure.name}", ""]
        for key, value in figure.settings.items():
            lines.append(f"- setting `{key}`: {_fmt(value)}")
        for key, value in figure.measurements.items():
            shown = _seconds(value) if key.endswith("_s") and isinstance(value, list) else _fmt(value)
            lines.append(f"- measured `{key}`: {shown}")
        lines.append("")
        if figure.name.startswith("metrics vs"):
            lines += [
                "| metric vs reference | xaibench s (median) | reference s (median) | speed-up | largest difference | tolerance | values |",
                "| --- | --- | --- | --- | --- | --- | --- |",
            ]
            for item in outcome["details"].get("metrics", []):
                m = item.measurements
                diff = max(v for k, v in m.items() if k.startswith("max_"))
                lines.append(
                    f"| {item.name} | {m['xaibench_median_s']:.2f} | {m['oracle_median_s']:.2f} | "
                    f"{item.ratio:.2f}× | {diff:.1e} | {m['tolerance']:g} | "
                    f"{'match' if item.outputs_match else '**differ**'} |"
                )
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def update_docs(path: Path, section: str) -> None:
    text = path.read_text(encoding="utf-8") if path.exists() else f"# Performance\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text or END not in text:
        text = text.rstrip() + f"\n\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    path.write_text(f"{head}{BEGIN}\n{section}{END}{tail}", encoding="utf-8")


# --------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="xaibench performance benchmarks (ratios measured side by side)")
    parser.add_argument("--quick", action="store_true", help="smoke run on the digits CNN (< 1 min); docs untouched")
    parser.add_argument("--only", default=",".join(BENCHMARKS), help=f"comma-separated subset of {', '.join(BENCHMARKS)}")
    parser.add_argument("--device", default="auto", help="auto (default), cpu or cuda")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice)")
    parser.add_argument("--no-docs", action="store_true", help="do not rewrite docs/performance.md")
    parser.add_argument("--json", type=Path, default=None, help="also write every figure to this JSON file")
    args = parser.parse_args(argv)

    selected = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(selected) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    if args.threads is not None:
        torch.set_num_threads(args.threads)
        os.environ["XAIBENCH_BENCH_THREADS"] = str(args.threads)  # the memory benchmark's children
    info = machine()
    load = info["load_average_start"]
    if load is not None and info["cores"] and load[0] > info["cores"] and args.threads is None:
        print(
            f"warning: the machine is busy (load {load[0]:.1f} on {info['cores']} cores); with one torch "
            "thread per core, batch-1 passes slow down far more than batched ones under contention, "
            "which skews the ratios. Consider --threads 1."
        )
    info["date"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    info["command"] = "python -m benchmarks.run " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    started = time.perf_counter()
    outcome = run(selected, args.quick, args.device)
    info["wall_s"] = time.perf_counter() - started
    info["load_average_end"] = load_average()
    print(f"total: {info['wall_s']:.0f} s on {info['cpu']} ({info['cores']} cores, {info['torch_threads']} torch threads)")

    if args.json is not None:
        payload = {
            "machine": info,
            "figures": [f.__dict__ | {"passed": f.passed} for f in outcome["headlines"]],
            "metrics": [f.__dict__ | {"passed": f.passed} for f in outcome["details"].get("metrics", [])],
        }
        args.json.write_text(json.dumps(payload, indent=2, default=str))
    if not args.quick and not args.no_docs and selected == list(BENCHMARKS):
        update_docs(DOCS, results_markdown(outcome, info))
        print(f"wrote {DOCS.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
