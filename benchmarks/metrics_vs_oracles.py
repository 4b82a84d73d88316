"""Benchmark 2: xaibench's faithfulness metrics against Quantus and Captum.

Same model, images, targets and attributions on both sides; each metric against the closest
reference call, configured as ``/work/shared/specs/oracles.md`` §1.2 and §2 say:

* deletion / insertion: ``quantus.PixelFlipping(features_in_step = C·pixels_per_step,
  perturb_baseline=0.0, abs=False, normalise=False)`` on tie-free rank maps, softmax output,
  the unperturbed point prepended; insertion starts from the blurred canvas with an
  "insert the original" ``perturb_func``;
* MIF/LIF area: the same with ``softmax=False`` on the ranks of ``s`` and ``−s``, divided by
  the clean logit;
* INFD: ``captum.metrics.infidelity(normalize=True)`` fed the metric's own Gaussian draws
  through a fixed perturbation bank (drawn before the clock starts, which favours Captum).

Quantus 0.6 needs two patches on numpy 2.4: ``np.trapz = np.trapezoid`` and a no-op
``assert_features_in_step`` (a whole-pixel step never divides H·W there, oracles.md §2.1).

xaibench gets the runner's model access (``ModelAccess.logits``) and the forward chunk size
the runner measures (``ModelAccess.tune`` → ``chunking.measure_best_size``); Quantus forwards
one batch of all images per step and Captum its default single batch, as a user gets them.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .common import Figure, median
from .grid import PassRecorder

#: Largest differences accepted (oracles.md §2.6, plus headroom for channels-last batches).
TOLERANCES = {
    "deletion": 1e-5,  # probability, curves and AUC
    "insertion": 1e-5,
    "mif_lif_area": 1e-4,  # logit / clean logit
    "infidelity": 1e-3,  # relative
}

#: The 8 photos of the oracle measurements (oracles.md, "Setup").
ORACLE_PHOTOS = (
    "chelsea", "coffee", "astronaut", "rocket", "motorcycle_left", "grace_hopper", "china", "flower",
)


@dataclass
class MetricsConfig:
    model: str = "efficientnet_lite0"
    dataset: str = "samples"
    dataset_params: dict[str, Any] = field(
        default_factory=lambda: {"names": list(ORACLE_PHOTOS)}
    )
    n_images: int = 8
    steps: int = 28  # insertion/deletion: 224·224/28 = 1792 pixels per step, 29 points
    fractions: int = 16  # MIF/LIF: must divide H·W for Quantus's fixed step
    infd_samples: int = 16
    infd_sigma: float = 0.01  # xaibench's default
    explainer: str = "saliency"
    max_chunk: int = 32
    device: str = "auto"
    rounds: int = 3
    seed: int = 0

    def describe(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "dataset": self.dataset,
            "images": self.n_images,
            "explainer": self.explainer,
            "insertion_deletion_steps": self.steps,
            "mif_lif_fractions": self.fractions,
            "infd_samples": self.infd_samples,
            "infd_sigma": self.infd_sigma,
            "rounds": self.rounds,
        }


@contextlib.contextmanager
def quantus_patched() -> Iterator[Any]:
    """Quantus 0.6 on numpy ≥ 2.4: restore ``np.trapz``, skip the whole-pixel-step assert."""
    import quantus
    import quantus.helpers.asserts as asserts

    had_trapz = hasattr(np, "trapz")
    saved = asserts.assert_features_in_step
    if not had_trapz:
        np.trapz = np.trapezoid  # type: ignore[attr-defined]
    asserts.assert_features_in_step = lambda **_: None
    try:
        yield quantus
    finally:
        asserts.assert_features_in_step = saved
        if not had_trapz:
            del np.trapz  # type: ignore[attr-defined]


def rank_transform(scores: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Unique float64 per-pixel values ``H·W − rank`` (stable descending order).

    Quantus sorts with an unstable argsort; unique values make its order the canonical one
    (ties to the lower pixel index) and keep a pixel's channel copies adjacent.
    """
    n, pixels = scores.shape
    order = np.argsort(-scores, axis=1, kind="stable")
    ranks = np.empty_like(order)
    ranks[np.arange(n)[:, None], order] = np.arange(pixels)
    return (pixels - ranks).astype(np.float64).reshape(n, 1, *shape)


def rise_blur(x: Tensor, size: int = 11, sigma: float = 5.0) -> Tensor:
    """RISE's insertion canvas (``gkern``: a filtered impulse; per channel; zero padding)."""
    from scipy.ndimage import gaussian_filter

    impulse = np.zeros((size, size))
    impulse[size // 2, size // 2] = 1.0
    kernel = torch.tensor(gaussian_filter(impulse, sigma), dtype=x.dtype, device=x.device)
    channels = x.shape[1]
    with torch.no_grad():
        return torch.nn.functional.conv2d(
            x, kernel.expand(channels, 1, size, size).contiguous(), padding=size // 2, groups=channels
        )


def _trapezoid(curves: np.ndarray, x_axis: np.ndarray) -> np.ndarray:
    return np.trapezoid(curves, x_axis, axis=1)


class Oracles:
    """The reference calls, one method per benchmark metric, numpy results."""

    def __init__(self, quantus: Any, classifier: torch.nn.Module, x: Tensor, y: Tensor, a: Tensor, device: torch.device):
        self.quantus = quantus
        self.classifier = classifier
        self.x, self.y, self.a = x, y, a
        self.device = device
        self.x_np = x.cpu().numpy()
        self.y_np = y.cpu().numpy()
        n, self.channels, self.height, self.width = x.shape
        self.pixels = self.height * self.width
        self.scores = np.abs(a.cpu().numpy().astype(np.float64)).sum(axis=1).reshape(n, -1)

    def _outputs(self, x: Tensor, softmax: bool) -> np.ndarray:
        with torch.no_grad():
            out = self.classifier(x.to(self.device)).float()
            if softmax:
                out = torch.softmax(out, dim=1)
        return out.gather(1, self.y.to(out.device).view(-1, 1)).double().cpu().numpy()

    def _pixel_flipping(
        self, x_np: np.ndarray, a_rank: np.ndarray, per_step: int, *, softmax: bool, perturb_func: Any = None
    ) -> np.ndarray:
        metric = self.quantus.PixelFlipping(
            features_in_step=self.channels * per_step,
            perturb_baseline=0.0,
            perturb_func=perturb_func,
            abs=False,
            normalise=False,
            disable_warnings=True,
        )
        curves = metric(
            model=self.classifier,
            x_batch=x_np,
            y_batch=self.y_np,
            a_batch=a_rank,
            channel_first=True,
            softmax=softmax,
            batch_size=len(x_np),
            device=str(self.device),
        )
        return np.asarray(curves, dtype=np.float64)

    def deletion(self, steps: int) -> tuple[np.ndarray, np.ndarray]:
        per_step = math.ceil(self.pixels / steps)
        a_rank = rank_transform(self.scores, (self.height, self.width))
        curves = np.concatenate(
            [self._outputs(self.x, True), self._pixel_flipping(self.x_np, a_rank, per_step, softmax=True)], axis=1
        )
        x_axis = np.minimum(np.arange(curves.shape[1]) * per_step, self.pixels) / self.pixels
        return curves, _trapezoid(curves, x_axis)

    def insertion(self, steps: int) -> tuple[np.ndarray, np.ndarray]:
        per_step = math.ceil(self.pixels / steps)
        canvas = rise_blur(self.x)
        x_flat = self.x_np.reshape(len(self.x_np), -1)

        def insert(arr: np.ndarray, indices: np.ndarray, **_: Any) -> np.ndarray:
            out = arr.copy()
            rows = np.arange(arr.shape[0])[:, None]
            out[rows, indices] = x_flat[rows, indices]
            return out

        a_rank = rank_transform(self.scores, (self.height, self.width))
        flipped = self._pixel_flipping(canvas.cpu().numpy(), a_rank, per_step, softmax=True, perturb_func=insert)
        curves = np.concatenate([self._outputs(canvas, True), flipped], axis=1)
        x_axis = np.minimum(np.arange(curves.shape[1]) * per_step, self.pixels) / self.pixels
        return curves, _trapezoid(curves, x_axis)

    def mif_lif(self, fractions: int) -> tuple[np.ndarray, np.ndarray]:
        if self.pixels % fractions:
            raise ValueError(f"MIF/LIF: {fractions} fractions do not divide {self.pixels} pixels (Quantus needs a fixed step)")
        per_step = self.pixels // fractions
        clean = self._outputs(self.x, False)
        curves = []
        for scores in (self.scores, -self.scores):
            a_rank = rank_transform(scores, (self.height, self.width))
            raw = self._pixel_flipping(self.x_np, a_rank, per_step, softmax=False)
            curves.append(np.concatenate([clean, raw], axis=1) / clean)
        x_axis = np.arange(fractions + 1) / fractions
        area = _trapezoid(curves[1], x_axis) - _trapezoid(curves[0], x_axis)
        return np.concatenate(curves, axis=1), area

    def infidelity(self, bank: Tensor, samples: int) -> np.ndarray:
        from captum.metrics import infidelity

        used = {"n": 0}
        batch = bank.shape[0]

        def perturb(inputs: Tensor) -> tuple[Tensor, Tensor]:
            k = inputs.shape[0] // batch
            noise = bank[:, used["n"] : used["n"] + k].reshape(batch * k, *bank.shape[2:]).to(inputs.dtype)
            used["n"] += k
            return noise, inputs - noise

        values = infidelity(
            self.classifier, perturb, self.x, self.a, target=self.y, n_perturb_samples=samples, normalize=True
        )
        return values.double().cpu().numpy()


def perturbation_bank(seeds: list[int], samples: int, shape: tuple[int, ...], sigma: float) -> Tensor:
    """Per image, ``samples`` draws of ``sigma·N(0,1)`` from ``Generator().manual_seed(seed)``,
    one ``C×H×W`` draw at a time: the sequence xaibench's INFD documents."""
    banks = []
    for seed in seeds:
        generator = torch.Generator().manual_seed(int(seed))
        banks.append(torch.stack([torch.randn(shape, generator=generator) * sigma for _ in range(samples)]))
    return torch.stack(banks)


def run_metrics_benchmark(config: MetricsConfig) -> tuple[Figure, list[Figure]]:
    """Benchmark 2: the headline (the slowest metric's speed-up) and one figure per metric."""
    from xaibench import registry
    from xaibench.datasets import load_dataset
    from xaibench.device import resolve_device
    from xaibench.metrics import Deletion, Infidelity, Insertion, MifLifArea
    from xaibench.models import load_model
    from xaibench.runner import ModelAccess
    from xaibench.runner.chunking import ChunkSizes, TuningCache
    from xaibench.types import image_seeds

    device = resolve_device(config.device)
    classifier = load_model(config.model).to(device)
    dataset = load_dataset(
        config.dataset, input_size=classifier.input_size, channels=classifier.in_channels, **config.dataset_params
    )
    x = dataset.load(list(range(min(config.n_images, len(dataset))))).pixels.to(device)
    with torch.no_grad():
        y = classifier(x).argmax(dim=1)
    explainer = registry.explainers.get(config.explainer)(classifier)
    a = explainer.explain(x, y).to(device)
    seeds = image_seeds(x, y, config.seed)

    # The runner's chunk-size measurement for the forward stage of this model.
    sizes = ChunkSizes(default=8)
    access = ModelAccess(classifier, None, device, sizes, model_label=config.model)
    maximum = config.max_chunk if device.type == "cpu" else 4 * config.max_chunk
    started = time.perf_counter()
    access.tune(x[:1], y[:1], TuningCache(), {"model": config.model, "bench": "metrics", "input": list(x.shape[1:])}, maximum)
    tune_s = time.perf_counter() - started
    chunk = sizes.get(access.forward_key)
    how = {r["stage"]: r["how"] for r in sizes.record()}.get("forward", "")

    bank = perturbation_bank(seeds, config.infd_samples, tuple(x.shape[1:]), config.infd_sigma).to(device)
    metrics: dict[str, Any] = {
        "deletion": Deletion(steps=config.steps),
        "insertion": Insertion(steps=config.steps),
        "mif_lif_area": MifLifArea(fractions=config.fractions),
        "infidelity": Infidelity(n_perturb_samples=config.infd_samples, sigma=config.infd_sigma),
    }
    oracle_names = {
        "deletion": "Quantus PixelFlipping",
        "insertion": "Quantus PixelFlipping (insert closure)",
        "mif_lif_area": "Quantus PixelFlipping ×2 (logits)",
        "infidelity": "captum.metrics.infidelity",
    }

    with quantus_patched() as quantus:
        oracles = Oracles(quantus, classifier, x, y, a, device)
        reference: dict[str, Callable[[], Any]] = {
            "deletion": lambda: oracles.deletion(config.steps),
            "insertion": lambda: oracles.insertion(config.steps),
            "mif_lif_area": lambda: oracles.mif_lif(config.fractions),
            "infidelity": lambda: oracles.infidelity(bank, config.infd_samples),
        }

        def ours(name: str) -> Any:
            return metrics[name].evaluate(access.logits, x, a, y, seeds=seeds, chunk_size=chunk)

        def sync() -> None:
            if device.type == "cuda":
                torch.cuda.synchronize(device)

        times: dict[str, dict[str, list[float]]] = {m: {"xaibench": [], "oracle": []} for m in metrics}
        last: dict[str, dict[str, Any]] = {m: {} for m in metrics}
        passes: dict[str, dict[str, list[int]]] = {m: {} for m in metrics}
        recorder = PassRecorder().attach(classifier)
        sides: dict[str, Callable[[str], Any]] = {"xaibench": ours, "oracle": lambda m: reference[m]()}
        ours("deletion")  # warm-up, both sides
        oracles.mif_lif(config.fractions)
        for index in range(config.rounds):
            for name in metrics:
                order = ["xaibench", "oracle"] if (index + list(metrics).index(name)) % 2 == 0 else ["oracle", "xaibench"]
                for side in order:
                    recorder.calls = []
                    started = time.perf_counter()
                    last[name][side] = sides[side](name)
                    sync()
                    times[name][side].append(time.perf_counter() - started)
                    passes[name][side] = [batch for batch, _ in recorder.calls]
        recorder.detach()

    figures = []
    for name in metrics:
        result = last[name]["xaibench"]
        expected = last[name]["oracle"]
        diffs: dict[str, float] = {}
        if name == "infidelity":
            got = result.scores.numpy()
            relative = np.abs(got - expected) / np.maximum(np.abs(expected), 1e-300)
            diffs["max_rel_diff_score"] = float(relative.max())
            largest = diffs["max_rel_diff_score"]
        else:
            curves, scores = expected
            if name == "mif_lif_area":
                got_curves = torch.cat([result.curves["mif"], result.curves["lif"]], dim=1).numpy()
            else:
                got_curves = result.curves[name].numpy()
            diffs["max_abs_diff_curve"] = float(np.nanmax(np.abs(got_curves - curves)))
            finite = np.isfinite(scores) & np.isfinite(result.scores.numpy())
            diffs["max_abs_diff_score"] = float(np.abs(result.scores.numpy() - scores)[finite].max()) if finite.any() else math.nan
            largest = max(diffs.values())
        ours_s, oracle_s = median(times[name]["xaibench"]), median(times[name]["oracle"])
        figures.append(
            Figure(
                name=f"{name} vs {oracle_names[name]}",
                ratio=oracle_s / ours_s,
                target=10.0 if device.type == "cuda" else 1.0,
                at_least=True,
                measurements={
                    "xaibench_s": times[name]["xaibench"],
                    "oracle_s": times[name]["oracle"],
                    "xaibench_median_s": ours_s,
                    "oracle_median_s": oracle_s,
                    "forward_images_xaibench": sum(passes[name]["xaibench"]),
                    "forward_calls_xaibench": len(passes[name]["xaibench"]),
                    "forward_images_reference": sum(passes[name]["oracle"]),
                    "forward_calls_reference": len(passes[name]["oracle"]),
                    **diffs,
                    "tolerance": TOLERANCES[name],
                },
                outputs_match=bool(largest <= TOLERANCES[name]),
            )
        )
    slowest = min(figures, key=lambda f: f.ratio)
    total_ours = sum(f.measurements["xaibench_median_s"] for f in figures)
    total_oracle = sum(f.measurements["oracle_median_s"] for f in figures)
    headline = Figure(
        name="metrics vs Quantus/Captum (slowest of 4)",
        ratio=slowest.ratio,
        target=10.0 if device.type == "cuda" else 1.0,
        at_least=True,
        settings={
            **config.describe(),
            "device": str(device),
            "forward_chunk_size": chunk,
            "chunk_size_how": how,
            "chunk_measurement_s": round(tune_s, 2),
            "channels_last": bool(getattr(classifier, "channels_last", False)),
        },
        measurements={
            "slowest_metric": slowest.name,
            "all_metrics_ratio": total_oracle / total_ours,
            "xaibench_total_s": total_ours,
            "oracle_total_s": total_oracle,
        },
        outputs_match=all(bool(f.outputs_match) for f in figures),
    )
    return headline, figures
