"""What ``precision = "bf16"`` does to explanations, faithfulness scores and speed.

    python -m benchmarks.precision              # EfficientNet-Lite0 + digits CNN, ~3 min on 2 cores
    python -m benchmarks.precision --quick      # digits CNN only, seconds

For each model and explainer the same images are explained through the runner's
``ModelAccess`` twice, with ``precision="fp32"`` and ``precision="bf16"`` (every pass under
``torch.autocast(device_type, dtype=torch.bfloat16)``), for the class the fp32 model predicts,
and the two explanations of each image are compared:

* Spearman rank correlation of the raw attributions (``rank_correlation``);
* SSIM of the two normalised heatmaps ``Σ_c |a_c| / max`` (``sensitivity_heatmap``);
* relative L2 difference ``‖a_bf16 − a_fp32‖ / ‖a_fp32‖``;
* the share of the top-1 % entries (by |a|) that both keep (``topk_intersection``).

As a yardstick the same four figures compare the fp32 explanation with the fp32 explanation
of the input plus Gaussian noise of σ = 0.001 (a quarter of one 8-bit grey level).

Deletion and insertion are scored twice, each pipeline end to end in its own precision
(fp32 attributions and fp32 forwards; bf16 attributions and bf16 forwards). Predictions are
compared too (same top class; largest probability difference). Speed: each pass at the
same batch size in both precisions, interleaved, medians of ``rounds``; the figure is
fp32 time / bf16 time (> 1: bf16 is faster).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from .common import load_average, machine


@dataclass
class PrecisionCase:
    model: str
    dataset: str
    images: int
    explainers: dict[str, dict[str, Any]]
    dataset_params: dict[str, Any] = field(default_factory=dict)
    steps: int = 28  # deletion / insertion
    batch: int = 8  # the batch size of the timed passes


CASES = [
    PrecisionCase(
        model="efficientnet_lite0",
        dataset="samples",
        images=8,
        explainers={"saliency": {}, "integrated_gradients": {"n_steps": 16}},
    ),
    PrecisionCase(
        model="digits_cnn",
        dataset="digits",
        images=16,
        explainers={"saliency": {}, "integrated_gradients": {"n_steps": 32}},
        steps=16,
        batch=16,
    ),
]


#: σ of the input noise whose effect on fp32 explanations is the yardstick for bf16's.
NOISE_SIGMA = 1e-3


def _summary(values: Tensor) -> dict[str, float]:
    values = values.double()
    return {"median": float(values.median()), "min": float(values.min()), "max": float(values.max())}


def _timed(fn: Any, rounds: int) -> dict[str, list[float]]:
    """``fn(precision)`` timed for fp32 and bf16, interleaved (A B, B A, …), after a warm-up each."""
    times: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for precision in times:
        fn(precision)
    for index in range(rounds):
        for precision in ("fp32", "bf16") if index % 2 == 0 else ("bf16", "fp32"):
            started = time.perf_counter()
            fn(precision)
            times[precision].append(time.perf_counter() - started)
    return times


def measure_case(case: PrecisionCase, rounds: int, device: torch.device) -> dict[str, Any]:
    from xaibench import registry
    from xaibench.datasets import load_dataset
    from xaibench.metrics import Deletion, Insertion
    from xaibench.metrics.robustness import RankCorrelation, TopKIntersection
    from xaibench.metrics.ssim import ssim
    from xaibench.models import load_model
    from xaibench.runner import ModelAccess, sensitivity_heatmap
    from xaibench.runner.chunking import ChunkSizes
    from xaibench.types import image_seeds

    classifier = load_model(case.model).to(device)
    dataset = load_dataset(
        case.dataset, input_size=classifier.input_size, channels=classifier.in_channels, **case.dataset_params
    )
    x = dataset.load(list(range(min(case.images, len(dataset))))).pixels
    sizes = ChunkSizes(default=case.batch)
    access = {
        p: ModelAccess(classifier, None, device, sizes, model_label=case.model, precision=p) for p in ("fp32", "bf16")
    }
    probs = {p: a.probabilities(x) for p, a in access.items()}
    target = probs["fp32"].argmax(dim=1)
    result: dict[str, Any] = {
        "model": case.model,
        "images": int(x.shape[0]),
        "same_predicted_class": float((probs["bf16"].argmax(dim=1) == target).double().mean()),
        "max_abs_prob_diff": float((probs["bf16"] - probs["fp32"]).abs().max()),
        "explainers": {},
    }
    seeds = image_seeds(x, target, 0)
    for name, params in case.explainers.items():
        explainer = registry.explainers.get(name)(classifier, **params)
        runs = {
            p: ModelAccess(classifier, explainer, device, sizes, model_label=case.model, explainer_label=name, precision=p)
            for p in ("fp32", "bf16")
        }
        expl = {p: a.explain(x, target) for p, a in runs.items()}
        a32, a16 = expl["fp32"], expl["bf16"]
        # Yardstick: how much fp32 explanations move when the input moves by N(0, 0.001²),
        # a quarter of one 8-bit grey level.
        generator = torch.Generator().manual_seed(0)
        noisy = (x + NOISE_SIGMA * torch.randn(x.shape, generator=generator)).clamp(0, 1)
        a_noisy = runs["fp32"].explain(noisy, target)
        entry: dict[str, Any] = {"params": params}
        for label, other in (("bf16", a16), ("fp32_input_noise", a_noisy)):
            relative_l2 = (other - a32).flatten(1).norm(dim=1) / a32.flatten(1).norm(dim=1)
            entry[label] = {
                "spearman": _summary(RankCorrelation()(expl_original=a32, expl_corrupted=other)),
                "heatmap_ssim": _summary(ssim(sensitivity_heatmap(a32), sensitivity_heatmap(other))),
                "relative_l2": _summary(relative_l2),
                "top1pct_intersection": _summary(TopKIntersection(0.01)(expl_original=a32, expl_corrupted=other)),
            }
        for metric in (Deletion(steps=case.steps), Insertion(steps=case.steps)):
            scores = {
                p: metric.evaluate(
                    access[p].logits, x, expl[p], target, seeds=seeds, chunk_size=case.batch,
                    multiplies_by_inputs=bool(explainer.multiplies_by_inputs),
                ).scores.double()
                for p in ("fp32", "bf16")
            }
            entry[metric.name] = {
                "mean_fp32": float(scores["fp32"].mean()),
                "mean_bf16": float(scores["bf16"].mean()),
                "max_abs_diff": float((scores["bf16"] - scores["fp32"]).abs().max()),
            }
        batch = x[: case.batch]
        times = _timed(lambda p, runs=runs, batch=batch: runs[p].explain(batch, target[: case.batch]), rounds)
        entry["explain_s_per_batch"] = {p: statistics.median(v) for p, v in times.items()}
        entry["speedup_bf16"] = entry["explain_s_per_batch"]["fp32"] / entry["explain_s_per_batch"]["bf16"]
        result["explainers"][name] = entry
    batch = x[: case.batch]
    times = _timed(lambda p: access[p].logits(batch), max(rounds, 5))
    result["forward_s_per_batch"] = {p: statistics.median(v) for p, v in times.items()}
    result["forward_speedup_bf16"] = result["forward_s_per_batch"]["fp32"] / result["forward_s_per_batch"]["bf16"]
    result["batch"] = case.batch
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="bf16 vs fp32: explanation agreement, faithfulness, speed")
    parser.add_argument("--quick", action="store_true", help="digits CNN only")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", default=None, help="write the figures to this file")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from xaibench.device import resolve_device

    device = resolve_device(args.device)
    info = machine()
    cases = [c for c in CASES if c.model == "digits_cnn"] if args.quick else CASES
    started = time.perf_counter()
    results = [measure_case(case, args.rounds, device) for case in cases]
    info["load_average_end"] = load_average()
    info["wall_s"] = time.perf_counter() - started
    payload = {"machine": info, "results": results}
    text = json.dumps(payload, indent=2, default=str)
    print(text)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            handle.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
