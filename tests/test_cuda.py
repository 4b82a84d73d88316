"""CUDA checks (marker ``cuda``): skipped without a GPU; ``benchmarks/gpu.sh`` runs them on one.

What the first run on a GPU has to establish: the models' passes agree with the CPU's, every
built-in explainer runs on the device and returns what it returns on the CPU, the chunk tuner
measures on the device, the out-of-memory back-off survives a real out-of-memory error without
losing a chunk, and a whole suite runs in fp32 and under bf16 autocast. Tolerances: cuDNN may
use TF32 for convolutions (10-bit mantissa, ~1e-3 relative per product), so values are compared
to ~1e-2 relative and maps by correlation, never bit for bit.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

#: ``XAIBENCH_CUDA_TESTS_DEVICE=cpu`` runs these tests' logic on the CPU (a dry run of the test
#: code itself where no GPU is lent; the real out-of-memory test still needs CUDA).
CUDA = torch.device(os.environ.get("XAIBENCH_CUDA_TESTS_DEVICE", "cuda"))
NO_DEVICE = CUDA.type == "cuda" and not torch.cuda.is_available()

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(NO_DEVICE, reason="no CUDA device (run benchmarks/gpu.sh on a GPU machine)"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
]
#: Every built-in explainer with cheap settings (the ViT-only ones get the ViT).
EXPLAINERS = {
    "saliency": {},
    "input_x_gradient": {},
    "integrated_gradients": {"n_steps": 8},
    "smoothgrad": {"nt_samples": 4},
    "deeplift_shap": {"n_baselines": 2},
    "deeplift": {},
    "attexplore": {"N": 2, "num_steps": 2},
    "agi": {"max_iter": 2, "topk": 2},
    "grad_cam": {},
    "grad_cam_plus_plus": {},
    "score_cam": {"batch_size": 16},
    "attention_rollout": {},
    "chefer_attention": {},
}
ATTENTION_ONLY = {"attention_rollout", "chefer_attention"}


def _models():  # type: ignore[no-untyped-def]
    import timm

    from xaibench.models import load_model
    from xaibench.types import Classifier

    with torch.random.fork_rng():
        torch.manual_seed(0)
        vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, num_classes=10)
    vit_classifier = Classifier(vit, name="vit_tiny_32", num_classes=10, input_size=(32, 32), mean=(0.5,) * 3, std=(0.5,) * 3)
    return {"digits_cnn": load_model("digits_cnn").eval(), "vit_tiny_32": vit_classifier.eval().requires_grad_(False)}


@pytest.fixture(scope="module")
def models():  # type: ignore[no-untyped-def]
    return _models()


def _inputs(classifier, n: int = 2) -> torch.Tensor:  # type: ignore[no-untyped-def]
    channels = getattr(classifier, "in_channels", 3)
    h, w = classifier.input_size
    return torch.rand((n, channels, h, w), generator=torch.Generator().manual_seed(1))


def test_model_passes_agree_with_the_cpu(models) -> None:  # type: ignore[no-untyped-def]
    for name, classifier in models.items():
        x = _inputs(classifier, 4)
        with torch.no_grad():
            cpu = classifier.to("cpu")(x)
            gpu = classifier.to(CUDA)(x.to(CUDA)).cpu()
        classifier.to("cpu")
        assert torch.allclose(gpu, cpu, rtol=1e-2, atol=1e-2 * float(cpu.abs().max())), name


@pytest.mark.parametrize("name", sorted(EXPLAINERS))
def test_every_explainer_runs_on_the_device_like_on_the_cpu(models, name: str) -> None:  # type: ignore[no-untyped-def]
    from xaibench.registry import explainers

    for model_name, classifier in models.items():
        if name in ATTENTION_ONLY and model_name != "vit_tiny_32":
            continue
        x = _inputs(classifier)
        with torch.no_grad():
            target = classifier.to("cpu")(x).argmax(1)
        cpu = explainers.get(name)(classifier, **EXPLAINERS[name]).explain(x, target)
        classifier.to(CUDA)
        try:
            gpu = explainers.get(name)(classifier, **EXPLAINERS[name]).explain(x.to(CUDA), target.to(CUDA))
        finally:
            classifier.to("cpu")
        assert gpu.device.type == CUDA.type and gpu.shape == x.shape and torch.isfinite(gpu).all(), (name, model_name)
        a, b = cpu.flatten(), gpu.cpu().flatten()
        if a.std() > 0 and b.std() > 0:
            correlation = float(torch.corrcoef(torch.stack([a, b]))[0, 1])
            assert correlation > 0.95, (name, model_name, correlation)


def test_the_chunk_tuner_measures_on_the_device(models) -> None:  # type: ignore[no-untyped-def]
    from xaibench.runner.chunking import candidate_sizes, measure_best_size

    classifier = models["digits_cnn"].to(CUDA)
    images = _inputs(classifier, 64).to(CUDA)

    def compute(size: int) -> None:
        with torch.no_grad():
            classifier(images[:size])
        if CUDA.type == "cuda":
            torch.cuda.synchronize()

    try:
        best, timings = measure_best_size(compute, candidate_sizes(CUDA, 64))
    finally:
        classifier.to("cpu")
    assert best in timings and all(t > 0 for t in timings.values())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="a real CUDA out-of-memory error needs CUDA")
def test_out_of_memory_back_off_with_a_real_allocation() -> None:
    """Each item needs a third of the free memory: a chunk of 4 fails for real, 2 or 1 fits;
    every item is computed exactly once and the smaller size is remembered."""
    from xaibench.runner.chunking import ChunkSizes, run_in_chunks

    torch.cuda.empty_cache()
    free, _total = torch.cuda.mem_get_info()
    per_item = free // 3
    sizes = ChunkSizes(default=4)
    done: list[int] = []

    def compute(part: slice) -> torch.Tensor:
        block = torch.empty(per_item * (part.stop - part.start), dtype=torch.uint8, device="cuda")
        del block
        done.extend(range(part.start, part.stop))
        return torch.arange(part.start, part.stop)

    outputs = run_in_chunks(8, sizes, ("m", "e", "explain"), compute)
    assert torch.equal(torch.cat(outputs), torch.arange(8)) and done == list(range(8))
    assert sizes.get(("m", "e", "explain")) <= 2 and "out-of-memory" in sizes.record()[0]["how"]
    torch.cuda.empty_cache()


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_suite_runs_on_the_device(tmp_path, precision: str) -> None:  # type: ignore[no-untyped-def]
    from xaibench.runner.plan import build_plan
    from xaibench.runner.results import read_results
    from xaibench.runner.run import run_plan
    from xaibench.runner.suite import load_suite

    suite = load_suite("digits-fragility", overrides={"device": CUDA.type, "limit": 2, "precision": precision})
    outcome = run_plan(build_plan(suite, tmp_path / precision))
    rows = read_results(tmp_path / precision)
    assert outcome.rows_written == len(rows) > 0
    assert rows["explanation_change_pct"].notna().all() and rows["ssim"].between(-1, 1).all()
