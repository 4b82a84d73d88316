"""Benchmarks 1 and 3: the runner against a naive per-configuration loop, and its overhead.

*Runner vs naive loop.* The same eXIAA grid (model, explainer, originals, attack images,
α × top-k) is computed twice:

* by xaibench: a suite written to a temporary TOML file, ``run_plan(build_plan(suite, out))``,
  results read back from Parquet;
* by the loop eXIAA-style paper code would write: for each original, α, top-k and attack
  image it predicts the original, explains the original and the attack image, builds x̂,
  predicts and explains x̂ (one Captum call per image) and computes the metrics, SSIM with
  scikit-image. The pool's predictions (to find the attack images) are computed once, as
  the runner does, so the figure is not inflated by the attack-image search.

The rows are matched on (image, α, top-k, attack-image rank) and compared.

*Overhead.* Every forward pass the runner makes is recorded (batch size, with or without
gradients) by a hook on the classifier; the same passes are then replayed bare — a no-grad
forward, or a forward plus ``autograd.grad`` to the input — and the runner's wall time is
divided by the replay's. Everything else the runner does (data loading, the attack grid,
metrics, Parquet, manifests, Captum's bookkeeping) is the overhead.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .common import (
    Figure,
    interleaved,
    median,
    reuse_loaded_models,
    timed,
    toml_list,
    write_suite,
)

#: Tolerances of the output check. Saliency of one image alone vs in a batch differs in the
#: last float32 bits, which can move an entry across the top-k boundary of x̂'s mask.
TOLERANCES = {
    "explanation_change_pct": {"rtol": 1e-3, "atol": 1e-3},  # percent
    "ssim": {"rtol": 0.0, "atol": 1e-5},
    "confidence_drop_pct": {"rtol": 0.0, "atol": 1e-3},  # percentage points
}
METRICS = tuple(TOLERANCES)
#: A row may differ by up to this when the two sides' kernels put another entry at the top-k
#: boundary of the attack image's map (so x̂ differs in a few entries). Error analysis on
#: Lite0 saliency (docs/performance.md, "Runner vs naive loop: why outputs can differ"): a
#: relative perturbation of 1e-5 of the attack image's map moves the boundary at 3 of 18 grid
#: points (≤ 0.062 pp change, ≤ 0.005 pp drop), 1e-4 at all 18 (≤ 0.34 pp, ≤ 0.048 pp); batch-1
#: vs batched oneDNN kernels on an Intel Xeon gave 0.266 / 0.0175 pp. Beyond these bounds, or
#: with means that disagree, the outputs differ for another reason.
BOUNDARY_TOLERANCES = {"explanation_change_pct": 0.5, "ssim": 1e-3, "confidence_drop_pct": 0.1}
#: The mean over rows must agree this closely even when single rows are boundary ties.
MEAN_TOLERANCES = {"explanation_change_pct": 0.05, "ssim": 1e-4, "confidence_drop_pct": 0.01}


@dataclass
class GridConfig:
    """What both sides compute. The defaults are the eXIAA paper's α × top-k grid."""

    model: str = "efficientnet_lite0"
    dataset: str = "samples"
    dataset_params: dict[str, Any] = field(default_factory=dict)
    n_originals: int = 2
    alphas: tuple[float, ...] = (0.03, 0.06, 0.09, 0.12, 0.15)
    topks: tuple[float, ...] = (0.01, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8)
    n_attack_images: int = 1
    explainer: str = "saliency"
    explainer_params: dict[str, Any] = field(default_factory=dict)
    images_per_unit: int = 4
    max_batch_size: int = 32
    device: str = "auto"
    rounds: int = 3

    @property
    def configurations(self) -> int:
        return self.n_originals * len(self.alphas) * len(self.topks) * self.n_attack_images

    def describe(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "dataset": self.dataset,
            "originals": self.n_originals,
            "alphas": list(self.alphas),
            "topks": list(self.topks),
            "attack_images": self.n_attack_images,
            "explainer": self.explainer,
            "explainer_params": dict(self.explainer_params),
            "corrupted_images": self.configurations,
            "rounds": self.rounds,
        }

    def suite_text(self) -> str:
        params = "".join(f"{k} = {v!r}\n" for k, v in self.explainer_params.items())
        dataset = "".join(f"{k} = {v!r}\n" for k, v in self.dataset_params.items())
        return f"""# Written by benchmarks/grid.py
metrics = ["explanation_change_pct", "ssim", "confidence_drop_pct"]

[suite]
name = "bench-grid"
seed = 0
device = "{self.device}"
batch_size = "auto"
max_batch_size = {self.max_batch_size}
images_per_unit = {self.images_per_unit}
examples = 0
faithfulness_on_attacked = "none"

[dataset]
name = "{self.dataset}"
n_classes = {self.n_originals}
{dataset}
[[models]]
name = "{self.model}"

[[explainers]]
name = "{self.explainer}"
{params}
[[attacks]]
name = "exiaa"
alphas = {toml_list(self.alphas)}
topks = {toml_list(self.topks)}
n_attack_images = {self.n_attack_images}
"""


# --------------------------------------------------------------------------------------
# Recording and replaying the runner's passes (benchmark 3)
# --------------------------------------------------------------------------------------


class PassRecorder:
    """Records ``(batch size, gradients enabled)`` of every forward call of a module."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, bool]] = []
        self._handle: Any = None

    def attach(self, module: torch.nn.Module) -> PassRecorder:
        def hook(_module: torch.nn.Module, args: tuple[Any, ...]) -> None:
            self.calls.append((int(args[0].shape[0]), torch.is_grad_enabled()))

        self._handle = module.register_forward_pre_hook(hook)
        return self

    def detach(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def summary(self) -> dict[str, Any]:
        grad = [b for b, g in self.calls if g]
        plain = [b for b, g in self.calls if not g]
        return {
            "forward_calls": len(plain),
            "forward_images": sum(plain),
            "forward_backward_calls": len(grad),
            "forward_backward_images": sum(grad),
            "batch_sizes": sorted(set(grad) | set(plain)),
        }


def replay_bare(classifier: torch.nn.Module, calls: list[tuple[int, bool]], images: Tensor) -> None:
    """The passes in ``calls``, bare: no-grad forwards, or forward + gradient to the input."""
    for batch, with_grad in calls:
        x = images[:batch]
        if with_grad:
            x = x.detach().requires_grad_(True)
            logits = classifier(x)
            torch.autograd.grad(logits[:, 0].sum(), x)
        else:
            with torch.no_grad():
                classifier(x)
    if images.device.type == "cuda":
        torch.cuda.synchronize(images.device)


# --------------------------------------------------------------------------------------
# The naive loop
# --------------------------------------------------------------------------------------


def _captum_explainer(classifier: torch.nn.Module, name: str, params: dict[str, Any]) -> Any:
    from captum.attr import IntegratedGradients, Saliency

    if name == "saliency":
        saliency = Saliency(classifier)
        absolute = bool(params.get("abs", True))
        return lambda x, t: saliency.attribute(x, target=t, abs=absolute)
    if name == "integrated_gradients":
        ig = IntegratedGradients(classifier, multiply_by_inputs=True)
        baseline = {"zeros": 0.0, "uniform_gray": 0.5}[params.get("baseline", "zeros")]
        steps = int(params.get("n_steps", 32))
        method = params.get("method", "gausslegendre")
        return lambda x, t: ig.attribute(x, baselines=baseline, target=t, n_steps=steps, method=method)
    raise ValueError(f"the naive loop knows saliency and integrated_gradients, not {name!r}")


def naive_loop(
    classifier: torch.nn.Module,
    dataset: Any,
    originals: list[int],
    pool: list[int],
    config: GridConfig,
    device: torch.device,
) -> list[dict[str, Any]]:
    """One Captum call per image, everything recomputed for every grid configuration."""
    import warnings

    from skimage.metrics import structural_similarity

    attribute = _captum_explainer(classifier, config.explainer, config.explainer_params)

    def explain(x: Tensor, target: int) -> Tensor:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return attribute(x.clone().requires_grad_(True), target).detach()

    def predict(x: Tensor) -> Tensor:
        with torch.no_grad():
            return torch.softmax(classifier(x).float(), dim=1)[0].cpu()

    pool_batch = dataset.load(pool)
    pool_pixels = pool_batch.pixels.to(device)
    with torch.no_grad():
        pool_probs = torch.cat(
            [torch.softmax(classifier(pool_pixels[i : i + 8]).float(), 1).cpu() for i in range(0, len(pool), 8)]
        )

    rows = []
    for index in originals:
        original = dataset.load([index])
        x = original.pixels.to(device)
        image_id = original.ids[0]
        for alpha in config.alphas:
            for topk in config.topks:
                for rank in range(config.n_attack_images):
                    probs = predict(x)
                    y = int(probs.argmax())
                    others = probs.double().clone()
                    others[y] = -math.inf
                    y_r = int(others.argmax())
                    scores = pool_probs[:, y_r].double().clone()
                    for j, pool_id in enumerate(pool_batch.ids):
                        if pool_id == image_id:
                            scores[j] = -math.inf
                    # The paper's rule (the runner's default, attack_image_source = "class"):
                    # images labelled y_r first, by f_{y_r}; the rest of the pool after them.
                    labels = pool_batch.labels.tolist()
                    order = sorted(
                        range(len(labels)),
                        key=lambda i: (scores[i] == -math.inf, labels[i] != y_r, -float(scores[i]), i),
                    )
                    j = int(order[rank])
                    if scores[j] == -math.inf:
                        continue
                    x_bar = pool_pixels[j : j + 1]
                    e_x = explain(x, y)
                    e_bar = explain(x_bar, y_r)
                    flat = e_bar.flatten()
                    positive = int((flat > 0).sum())
                    k = min(math.ceil(round(topk * positive, 9)), positive)
                    entries = torch.sort(flat, descending=True, stable=True).indices[:k]
                    blended = ((1 - alpha) * x + alpha * x_bar).clamp(0, 1).flatten()
                    x_hat = x.flatten().clone()
                    x_hat[entries] = blended[entries]
                    x_hat = x_hat.view_as(x)
                    probs_hat = predict(x_hat)
                    e_hat = explain(x_hat, int(probs_hat.argmax()))
                    a, b = e_x.double(), e_hat.double()
                    change = float(100 * (a - b).abs().sum() / a.abs().sum())
                    ssim = structural_similarity(
                        x[0].permute(1, 2, 0).cpu().numpy(),
                        x_hat[0].permute(1, 2, 0).cpu().numpy(),
                        channel_axis=-1,
                        data_range=1.0,
                        gaussian_weights=True,
                        sigma=1.5,
                        use_sample_covariance=False,
                    )
                    rows.append({
                        "image_id": image_id,
                        "alpha": alpha,
                        "topk": topk,
                        "attack_image_rank": rank,
                        "attack_image_id": pool_batch.ids[j],
                        "explanation_change_pct": change,
                        "ssim": float(ssim),
                        "confidence_drop_pct": float(100 * abs(float(probs[y]) - float(probs_hat[y]))),
                    })
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return rows


# --------------------------------------------------------------------------------------
# The benchmark
# --------------------------------------------------------------------------------------


def _params_text(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items())


def compare_rows(runner: Any, naive: list[dict[str, Any]]) -> dict[str, Any]:
    """Largest differences between the runner's rows and the naive loop's, per metric."""
    import pandas as pd

    key = ["image_id", "alpha", "topk", "attack_image_rank"]
    left = runner[[*key, "attack_image_id", *METRICS]].copy()
    right = pd.DataFrame(naive)
    for frame in (left, right):
        frame["alpha"] = frame["alpha"].astype(float).round(9)
        frame["topk"] = frame["topk"].astype(float).round(9)
        frame["attack_image_rank"] = frame["attack_image_rank"].astype(int)
    merged = left.merge(right, on=key, suffixes=("_runner", "_naive"), how="outer", indicator=True)
    unmatched = int((merged["_merge"] != "both").sum())
    both = merged[merged["_merge"] == "both"]
    same_attack_images = bool((both["attack_image_id_runner"] == both["attack_image_id_naive"]).all())
    result: dict[str, Any] = {"rows": int(len(both)), "unmatched_rows": unmatched, "same_attack_images": same_attack_images}
    ok = unmatched == 0 and same_attack_images and len(both) > 0
    ties = 0
    for metric in METRICS:
        a = both[f"{metric}_runner"].to_numpy(dtype=float)
        b = both[f"{metric}_naive"].to_numpy(dtype=float)
        diff = np.abs(a - b)
        result[f"max_abs_diff_{metric}"] = float(diff.max()) if diff.size else float("nan")
        tol = TOLERANCES[metric]
        strict = np.isclose(a, b, rtol=tol["rtol"], atol=tol["atol"], equal_nan=True)
        boundary = diff <= BOUNDARY_TOLERANCES[metric]
        mean_gap = abs(float(np.nanmean(a) - np.nanmean(b))) if diff.size else 0.0
        result[f"mean_abs_diff_{metric}"] = mean_gap
        ties = max(ties, int((~strict).sum()))
        ok = ok and bool((strict | boundary).all()) and mean_gap <= MEAN_TOLERANCES[metric]
    # Rows beyond the strict tolerance but within the top-k boundary bound (see BOUNDARY_TOLERANCES).
    result["boundary_tie_rows"] = ties
    result["match"] = ok
    return result


def run_grid_benchmarks(config: GridConfig, workdir: Path | None = None) -> tuple[Figure, Figure]:
    """Benchmark 1 (runner vs naive loop) and benchmark 3 (runner overhead), interleaved.

    Each round runs the naive loop, the runner and the bare replay of the runner's passes,
    in alternating order. An untimed warm-up runner round comes first: it measures and caches
    the chunk sizes (``batch_size = "auto"``), as the first run on a machine does.
    """
    from xaibench.device import resolve_device
    from xaibench.runner import build_plan, run_plan
    from xaibench.runner.results import read_results
    from xaibench.runner.suite import load_suite

    own = workdir is None
    root = Path(tempfile.mkdtemp(prefix="xaibench-bench-grid-")) if own else workdir
    assert root is not None
    try:
        suite_path = write_suite(root / "bench-grid.toml", config.suite_text())
        device = resolve_device(config.device)
        recorder = PassRecorder()
        counter = {"runs": 0}
        state: dict[str, Any] = {}

        with reuse_loaded_models():

            def runner() -> None:
                out = root / f"run-{counter['runs']}"
                counter["runs"] += 1
                plan = build_plan(load_suite(str(suite_path)), out)
                classifier = plan.resources().classifier(plan.suite.models[0])
                recorder.calls = []
                recorder.attach(classifier)
                try:
                    report = run_plan(plan)
                finally:
                    recorder.detach()
                if report.units_failed:
                    raise RuntimeError(f"a benchmark unit failed: {report.manifest['units']}")
                state.update(plan=plan, out=out, calls=list(recorder.calls), manifest=report.manifest)

            # Warm-up: loads the model, measures and caches the chunk sizes.
            _, warmup_s = timed(runner)
            warmup_manifest = state["manifest"]
            plan = state["plan"]
            res, model = plan.resources(), plan.suite.models[0]
            classifier, dataset = res.classifier(model), res.dataset(model)
            originals, pool = list(res.originals(model)), list(res.pool(model))
            sample = dataset.load(originals).pixels.to(device)
            largest = max(b for b, _ in state["calls"])
            replay_images = sample.repeat(-(-largest // sample.shape[0]), 1, 1, 1)[:largest].contiguous()
            naive_rows: dict[str, Any] = {}

            def naive() -> None:
                naive_rows["rows"] = naive_loop(classifier, dataset, originals, pool, config, device)

            def bare() -> None:
                replay_bare(classifier, state["calls"], replay_images)

            # Warm the naive side up too (batch-1 kernels, Captum, skimage imports).
            small = GridConfig(**{**config.__dict__, "alphas": config.alphas[:1], "topks": config.topks[:1]})
            naive_loop(classifier, dataset, originals[:1], pool, small, device)

            times = interleaved({"naive": naive, "runner": runner, "bare": bare}, config.rounds)

        robustness = read_results(state["out"], table="robustness")
        check = compare_rows(robustness, naive_rows["rows"])
        passes = PassRecorder()
        passes.calls = state["calls"]
        chunk_sizes = {
            f"{c['explainer']} × {c['stage']}": c["chunk_size"] for c in state["manifest"]["chunk_sizes"]
        }
        naive_s, runner_s, bare_s = median(times["naive"]), median(times["runner"]), median(times["bare"])
        settings = {
            **config.describe(),
            "device": str(device),
            "chunk_sizes": chunk_sizes,
            "chunk_size_how": {f"{c['explainer']} × {c['stage']}": c["how"] for c in warmup_manifest["chunk_sizes"]},
        }
        suffix = "" if config.explainer == "saliency" else f" ({config.explainer} {_params_text(config.explainer_params)})"
        speedup = Figure(
            name=f"runner vs naive loop{suffix}",
            ratio=naive_s / runner_s,
            target=20.0 if device.type == "cuda" else 5.0,
            at_least=True,
            settings=settings,
            measurements={
                "naive_s": times["naive"],
                "runner_s": times["runner"],
                "naive_median_s": naive_s,
                "runner_median_s": runner_s,
                "warmup_runner_s": warmup_s,
                "naive_explain_calls": 3 * check["rows"],
                "runner_passes": passes.summary(),
                **check,
            },
            outputs_match=bool(check["match"]),
        )
        overhead = Figure(
            name=f"runner overhead (wall / bare passes){suffix}",
            ratio=runner_s / bare_s,
            target=1.25,
            at_least=False,
            settings=settings,
            measurements={
                "runner_s": times["runner"],
                "bare_s": times["bare"],
                "runner_median_s": runner_s,
                "bare_median_s": bare_s,
                **passes.summary(),
            },
        )
        return speedup, overhead
    finally:
        if own:
            shutil.rmtree(root, ignore_errors=True)
