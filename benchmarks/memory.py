"""Benchmark 4: peak resident memory of a run with 1× and 10× the images.

Each size runs in a fresh child process (``python -m benchmarks.memory --child …``) that runs
``run_plan(build_plan(suite, out))`` and reports its own peak resident set size (``VmHWM``
from ``/proc/self/status``, else ``ru_maxrss``). Results stream to Parquet one unit at a
time, so ten times the images should cost about the same memory.

The images are scikit-learn's digits written as PNG files into an ``image_folder`` (one
folder per image, so each image is its own class and ``n_classes`` can reach any size; the
built-in ``digits`` dataset has 10 classes, so at most 10 originals). The model is the small
digits CNN; the attack pool is the same fixed-size sample at both sizes.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .common import REPO_ROOT, Figure, write_suite


@dataclass
class MemoryConfig:
    images: int = 40  # originals at 1×; 10× runs ten times as many
    factor: int = 10
    pool_size: int = 20
    images_per_unit: int = 4
    device: str = "auto"

    def describe(self) -> dict[str, Any]:
        return {
            "model": "digits_cnn",
            "dataset": "image_folder of scikit-learn digits (one image per class folder)",
            "originals": [self.images, self.images * self.factor],
            "pool_size": self.pool_size,
            "images_per_unit": self.images_per_unit,
            "child_torch_threads": int(os.environ.get("XAIBENCH_BENCH_THREADS") or 1),
            "explainer": "saliency",
            "attacks": "exiaa + gaussian_noise, α ∈ {0.03, 0.09, 0.15} × top-k ∈ {0.05, 0.2, 0.5}, 2 attack images",
            "metrics": "the six default robustness metrics + deletion (steps 16)",
        }


def write_digit_folder(root: Path, count: int) -> Path:
    """``count`` digits as 8-bit PNGs, ``root/<index>/<index>.png``."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    images = load_digits().images
    for index in range(count):
        folder = root / f"{index:05d}"
        folder.mkdir(parents=True, exist_ok=True)
        pixels = (np.clip(images[index % len(images)] / 16.0, 0, 1) * 255).astype(np.uint8)
        Image.fromarray(pixels).resize((32, 32), Image.Resampling.BILINEAR).save(folder / f"{index:05d}.png")
    return root


def suite_text(root: Path, images: int, config: MemoryConfig) -> str:
    return f"""# Written by benchmarks/memory.py
metrics = ["explanation_change_pct", "ssim", "confidence_drop_pct", "prediction_flipped",
           "topk_intersection", "rank_correlation", {{ name = "deletion", steps = 16 }}]

[suite]
name = "bench-memory"
seed = 0
device = "{config.device}"
batch_size = 16
images_per_unit = {config.images_per_unit}

[dataset]
name = "image_folder"
root = "{root}"
n_classes = {images}
pool_size = {config.pool_size}

[[models]]
name = "digits_cnn"

[[explainers]]
name = "saliency"

[[attacks]]
name = "exiaa"
alphas = [0.03, 0.09, 0.15]
topks = [0.05, 0.2, 0.5]
n_attack_images = 2

[[attacks]]
name = "gaussian_noise"
alphas = [0.03, 0.09, 0.15]
topks = [0.05, 0.2, 0.5]
n_attack_images = 2
"""


def peak_rss_mb() -> float:
    """This process's peak resident set size in MiB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def child(suite_path: Path, out: Path, baseline_only: bool) -> dict[str, Any]:
    """Run the suite (or only import and load the model) and report peak memory."""
    import torch

    from xaibench.models import load_model

    # One thread unless --threads says otherwise: memory does not depend on it, and a busy
    # machine slows multi-threaded tiny-batch work down many times over.
    torch.set_num_threads(int(os.environ.get("XAIBENCH_BENCH_THREADS") or 1))
    load_model("digits_cnn")
    if baseline_only:
        return {"peak_rss_mb": peak_rss_mb(), "rows": 0, "wall_s": 0.0}
    from xaibench.runner import build_plan, run_plan
    from xaibench.runner.suite import load_suite

    started = time.perf_counter()
    report = run_plan(build_plan(load_suite(str(suite_path)), out))
    return {
        "peak_rss_mb": peak_rss_mb(),
        "rows": report.rows_written,
        "units": report.units_done,
        "failed": report.units_failed,
        "wall_s": time.perf_counter() - started,
    }


def _spawn(args: list[str]) -> dict[str, Any]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.memory", "--child", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"memory benchmark child failed:\n{completed.stderr[-4000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def run_memory_benchmark(config: MemoryConfig) -> Figure:
    """Peak RSS of the 10× run divided by that of the 1× run, each in its own process."""
    from xaibench.models import load_model

    load_model("digits_cnn")  # trains and caches the CNN once, outside the children
    with tempfile.TemporaryDirectory(prefix="xaibench-bench-memory-") as folder:
        root = Path(folder)
        sizes = {"1x": config.images, f"{config.factor}x": config.images * config.factor}
        images_root = write_digit_folder(root / "images", max(sizes.values()))
        results: dict[str, dict[str, Any]] = {}
        results["import+model"] = _spawn(["--baseline"])
        for label, count in sizes.items():
            suite = write_suite(root / f"suite-{label}.toml", suite_text(images_root, count, config))
            results[label] = _spawn(["--suite", str(suite), "--out", str(root / f"out-{label}")])
            if results[label].get("failed"):
                raise RuntimeError(f"memory benchmark: {results[label]['failed']} units failed at {label}")
    small, large = results["1x"], results[f"{config.factor}x"]
    return Figure(
        name=f"peak memory {config.factor}× images / 1×",
        ratio=large["peak_rss_mb"] / small["peak_rss_mb"],
        target=1.2,
        at_least=False,
        settings=config.describe(),
        measurements={
            "peak_rss_mb": {k: round(v["peak_rss_mb"], 1) for k, v in results.items()},
            # What the run itself adds on top of importing torch and loading the model.
            "increment_ratio": (large["peak_rss_mb"] - results["import+model"]["peak_rss_mb"])
            / max(small["peak_rss_mb"] - results["import+model"]["peak_rss_mb"], 1e-9),
            "rows": {k: v["rows"] for k, v in results.items() if k != "import+model"},
            "wall_s": {k: round(v["wall_s"], 2) for k, v in results.items() if k != "import+model"},
        },
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--baseline", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--suite", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--images", type=int, default=MemoryConfig.images)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.suite, args.out, args.baseline)))
        return
    print(run_memory_benchmark(MemoryConfig(images=args.images)).line())


if __name__ == "__main__":
    main()
