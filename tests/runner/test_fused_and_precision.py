"""One forward + backward per corrupted image, logits reused for the gap, and bf16 precision."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from xaibench.datasets import load_dataset
from xaibench.errors import ConfigError
from xaibench.explainers.gradient_variants import InputXGradientExplainer
from xaibench.explainers.integrated_gradients import IntegratedGradientsExplainer
from xaibench.explainers.saliency import SaliencyExplainer
from xaibench.metrics.robustness import RankCorrelation
from xaibench.models import load_model
from xaibench.runner import ModelAccess, build_plan, run_plan
from xaibench.runner.chunking import ChunkSizes
from xaibench.runner.results import read_results
from xaibench.runner.suite import load_suite

ROW_KEY = ["explainer", "attack", "image_id", "attack_image_id", "alpha", "topk"]
VALUES = [
    "explanation_change_pct", "ssim", "confidence_drop_pct", "prediction_flipped",
    "topk_intersection", "rank_correlation", "predicted_class_corrupted",
]


def suite_file(tmp_path: Path, explainers: str, *, extra: str = "", name: str = "suite", images: int = 3) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(
        f"[suite]\nname='fused'\nseed=1\ndevice='cpu'\nbatch_size=4\nimages_per_unit=3\nexamples=3\n{extra}"
        f"[dataset]\nname='digits'\nn_classes={images}\npool_size=60\n"
        "[[models]]\nname='digits_cnn'\n"
        f"{explainers}"
        "[[attacks]]\nname='exiaa'\nalphas=[0.05, 0.15]\ntopks=[0.1, 0.5]\nn_attack_images=2\n"
        "[[attacks]]\nname='gaussian_noise'\nalphas=[0.15]\ntopks=[0.5]\nn_attack_images=2\n"
    )
    return path


def run_counting(path: Path, out: Path) -> tuple[pd.DataFrame, dict[str, int]]:
    """Run a suite; count the rows the classifier forwards with and without gradients."""
    plan = build_plan(load_suite(str(path)), out)
    counts = {"no_grad": 0, "grad": 0}

    def hook(_module: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        counts["grad" if torch.is_grad_enabled() else "no_grad"] += int(args[0].shape[0])

    handle = plan.resources().classifier(plan.suite.models[0]).register_forward_pre_hook(hook)
    try:
        report = run_plan(plan)
    finally:
        handle.remove()
    assert report.units_failed == 0
    frame = read_results(out).sort_values(ROW_KEY).reset_index(drop=True)
    return frame, counts


@pytest.fixture(scope="module")
def digits() -> tuple[torch.nn.Module, torch.Tensor]:
    classifier = load_model("digits_cnn")
    dataset = load_dataset("digits", input_size=classifier.input_size, channels=classifier.in_channels)
    return classifier, dataset.load(list(range(0, 160, 10))).pixels


@pytest.mark.parametrize(
    "make",
    [
        lambda c: SaliencyExplainer(c),
        lambda c: SaliencyExplainer(c, abs=False),
        lambda c: InputXGradientExplainer(c),
        lambda c: InputXGradientExplainer(c, input_space="normalized"),
    ],
)
def test_explain_predicted_is_explain_of_the_predicted_class(digits, make) -> None:
    classifier, x = digits
    explainer = make(classifier)
    attributions, logits = explainer.explain_predicted(x)
    with torch.no_grad():
        expected_logits = classifier(x)
    assert logits.dtype == torch.float32 and logits.shape == expected_logits.shape
    torch.testing.assert_close(logits, expected_logits, rtol=0, atol=1e-5)
    assert torch.equal(attributions, explainer.explain(x, logits.argmax(dim=1)))


def test_a_subclass_overriding_explain_alone_is_not_fused(digits) -> None:
    class Doubled(SaliencyExplainer):
        def explain(self, x01, target):
            return 2 * super().explain(x01, target)

    classifier, _ = digits
    sizes = ChunkSizes(default=4)
    assert ModelAccess(classifier, SaliencyExplainer(classifier), torch.device("cpu"), sizes, model_label="m").fuses_prediction
    assert not ModelAccess(classifier, Doubled(classifier), torch.device("cpu"), sizes, model_label="m").fuses_prediction
    assert ModelAccess(classifier, InputXGradientExplainer(classifier), torch.device("cpu"), sizes, model_label="m").fuses_prediction


def test_fused_runner_gives_the_two_pass_rows_with_one_pass_per_corrupted_image(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    explainers = "[[explainers]]\nname='saliency'\n[[explainers]]\nname='input_x_gradient'\n"
    path = suite_file(tmp_path, explainers)
    fused, fused_counts = run_counting(path, tmp_path / "fused")
    # The same explainers without the declared capability: predict, then explain.
    monkeypatch.setattr(SaliencyExplainer, "fuses_prediction", False)
    monkeypatch.setattr(InputXGradientExplainer, "fuses_prediction", False)
    two_pass, two_pass_counts = run_counting(path, tmp_path / "two-pass")
    assert len(fused) == len(two_pass) > 0
    pd.testing.assert_frame_equal(fused[ROW_KEY + VALUES], two_pass[ROW_KEY + VALUES], check_exact=True)
    # The only difference: the corrupted images are no longer forwarded to be predicted.
    assert two_pass_counts["no_grad"] - fused_counts["no_grad"] == len(fused)
    assert two_pass_counts["grad"] == fused_counts["grad"]


def test_completeness_gap_reuses_the_prediction_logits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = suite_file(tmp_path, "[[explainers]]\nname='integrated_gradients'\nn_steps=4\n", images=2)
    reused, reused_counts = run_counting(path, tmp_path / "reused")
    monkeypatch.setattr(IntegratedGradientsExplainer, "reuses_logits", False)
    forwarded, forwarded_counts = run_counting(path, tmp_path / "forwarded")
    assert reused["completeness_gap_corrupted"].notna().all()
    # Same logits up to batch composition: the runner's forward vs the gap's own forward.
    np.testing.assert_allclose(
        reused["completeness_gap_corrupted"], forwarded["completeness_gap_corrupted"], rtol=1e-4, atol=1e-6
    )
    pd.testing.assert_frame_equal(reused[ROW_KEY + VALUES], forwarded[ROW_KEY + VALUES], check_exact=True)
    assert forwarded_counts["no_grad"] - reused_counts["no_grad"] == len(reused)


def test_bf16_runs_end_to_end_and_its_explanations_follow_fp32(tmp_path: Path, digits) -> None:
    explainers = "[[explainers]]\nname='saliency'\n[[explainers]]\nname='integrated_gradients'\nn_steps=4\n"
    fp32 = suite_file(tmp_path, explainers, name="fp32", images=2)
    bf16 = suite_file(tmp_path, explainers, extra="precision='bf16'\n", name="bf16", images=2)
    a, _ = run_counting(fp32, tmp_path / "fp32")
    b, _ = run_counting(bf16, tmp_path / "bf16")
    assert len(a) == len(b) > 0
    assert set(a["precision"]) == {"fp32"} and set(b["precision"]) == {"bf16"}
    assert not set(a["unit_id"]) & set(b["unit_id"])  # precision is part of the unit hash

    # The stored example heatmaps (|E| summed over channels) of the same originals.
    key = ["explainer", "attack", "image_id", "alpha", "topk", "attack_image_id"]
    ea = read_results(tmp_path / "fp32", table="examples").sort_values(key).reset_index(drop=True)
    eb = read_results(tmp_path / "bf16", table="examples").sort_values(key).reset_index(drop=True)
    assert len(ea) == len(eb) > 0
    heat_a = torch.tensor(np.stack(ea["heatmap_original"].to_list()))
    heat_b = torch.tensor(np.stack(eb["heatmap_original"].to_list()))
    assert not torch.equal(heat_a, heat_b)  # bf16 really ran: the values moved
    assert (RankCorrelation()(expl_original=heat_a, expl_corrupted=heat_b) > 0.9).all()

    # Raw attributions through the runner's model access, for the fp32 prediction.
    classifier, x = digits
    sizes = ChunkSizes(default=8)
    target = ModelAccess(classifier, None, torch.device("cpu"), sizes, model_label="m").probabilities(x).argmax(dim=1)
    for explainer in (SaliencyExplainer(classifier), load_ig(classifier)):
        explanations = {
            precision: ModelAccess(
                classifier, explainer, torch.device("cpu"), sizes, model_label="m", precision=precision
            ).explain(x, target)
            for precision in ("fp32", "bf16")
        }
        assert explanations["bf16"].dtype == torch.float32
        assert not torch.equal(explanations["fp32"], explanations["bf16"])
        spearman = RankCorrelation()(expl_original=explanations["fp32"], expl_corrupted=explanations["bf16"])
        assert (spearman > 0.9).all(), spearman


def load_ig(classifier: torch.nn.Module):
    from xaibench.explainers.integrated_gradients import IntegratedGradientsExplainer

    return IntegratedGradientsExplainer(classifier, n_steps=16)


def test_precision_is_checked_and_can_be_overridden(tmp_path: Path) -> None:
    explainers = "[[explainers]]\nname='saliency'\n"
    assert load_suite(str(suite_file(tmp_path, explainers))).precision == "fp32"
    path = suite_file(tmp_path, explainers, extra="precision='fp16'\n", name="bad")
    with pytest.raises(ConfigError, match="'fp32' or 'bf16'"):
        load_suite(str(path))
    overridden = load_suite(str(suite_file(tmp_path, explainers)), {"precision": "bf16"})
    assert overridden.precision == "bf16" and overridden.to_dict()["suite"]["precision"] == "bf16"
