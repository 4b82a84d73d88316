"""The per-row robustness metrics against hand values, scipy and slow references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import rankdata, spearmanr

from xaibench.errors import ConfigError
from xaibench.metrics import (
    ConfidenceDropPct,
    ExplanationChangePct,
    PredictionFlipped,
    RankCorrelation,
    TopKIntersection,
    average_ranks,
)
from xaibench.registry import metrics
from xaibench.types import ROW_TENSORS


def test_explanation_change_pct_by_hand() -> None:
    clean = torch.tensor([[1.0, -2.0, 0.0, 1.0], [0.5, 0.5, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]).view(3, 1, 2, 2)
    corrupted = torch.tensor([[1.0, 2.0, 1.0, 0.0], [0.5, 0.5, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]]).view(3, 1, 2, 2)
    values = ExplanationChangePct()(expl_original=clean, expl_corrupted=corrupted)
    # row 0: |0| + |−4| + |−1| + |1| = 6 over 1 + 2 + 0 + 1 = 4 → 150 %
    assert values[0].item() == pytest.approx(150.0)
    assert values[1].item() == 0.0
    assert math.isnan(values[2].item())  # an all-zero clean explanation: undefined, not hidden
    assert values.dtype == torch.float64


def test_confidence_drop_and_flip_by_hand() -> None:
    before = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.5, 0.4, 0.1]])
    after = torch.tensor([[0.65, 0.25, 0.1], [0.1, 0.7, 0.2], [0.6, 0.3, 0.1]])
    drop = ConfidenceDropPct()(probs_original=before, probs_corrupted=after)
    np.testing.assert_allclose(drop.numpy(), [5.0, 40.0, 10.0], atol=1e-5)  # a rise counts too
    flipped = PredictionFlipped()(probs_original=before, probs_corrupted=after)
    assert flipped.tolist() == [0.0, 1.0, 0.0]


def reference_topk_intersection(a: np.ndarray, b: np.ndarray, fraction: float) -> float:
    k = math.ceil(fraction * a.size)

    def top(values: np.ndarray) -> set[int]:
        ranked = sorted(range(values.size), key=lambda i: (-abs(values[i]), i))
        return set(ranked[:k])

    return len(top(a) & top(b)) / k


@pytest.mark.parametrize("fraction", [0.01, 0.1, 0.25, 1.0])
def test_topk_intersection_equals_set_reference(fraction: float) -> None:
    generator = torch.Generator().manual_seed(3)
    clean = torch.randn(4, 3, 8, 8, generator=generator)
    corrupted = clean + 0.8 * torch.randn(clean.shape, generator=generator)
    tied = torch.randint(-3, 4, (2, 3, 8, 8), generator=generator).float()  # many ties in |·|
    clean = torch.cat([clean, tied, tied])
    corrupted = torch.cat([corrupted, tied.flip(-1), tied])
    values = TopKIntersection(fraction=fraction)(expl_original=clean, expl_corrupted=corrupted)
    expected = [
        reference_topk_intersection(a.flatten().numpy(), b.flatten().numpy(), fraction)
        for a, b in zip(clean, corrupted, strict=True)
    ]
    np.testing.assert_allclose(values.numpy(), expected, atol=1e-12)
    assert values[-1].item() == 1.0


@pytest.mark.parametrize("fraction", [0.0, 1.5, -0.1, True, "0.1"])
def test_topk_intersection_rejects_bad_fractions(fraction) -> None:
    with pytest.raises(ConfigError, match="fraction"):
        TopKIntersection(fraction=fraction)


def test_average_ranks_equal_scipy_rankdata() -> None:
    generator = torch.Generator().manual_seed(4)
    values = torch.randint(0, 5, (6, 40), generator=generator).double()
    values[0] = torch.randn(40, generator=generator)
    expected = np.stack([rankdata(row) for row in values.numpy()])
    np.testing.assert_array_equal(average_ranks(values).numpy(), expected)


def test_rank_correlation_equals_scipy_spearman_with_and_without_ties() -> None:
    generator = torch.Generator().manual_seed(5)
    untied_a = torch.randn(3, 3, 6, 6, generator=generator)
    untied_b = untied_a + torch.randn(untied_a.shape, generator=generator)
    tied_a = torch.randint(-2, 3, (3, 3, 6, 6), generator=generator).float()
    tied_b = (tied_a + torch.randint(-1, 2, tied_a.shape, generator=generator)).clamp(-2, 2)
    clean = torch.cat([untied_a, tied_a, untied_a[:1]])
    corrupted = torch.cat([untied_b, tied_b, -untied_a[:1]])
    values = RankCorrelation()(expl_original=clean, expl_corrupted=corrupted)
    expected = [
        spearmanr(a.flatten().numpy(), b.flatten().numpy()).statistic
        for a, b in zip(clean, corrupted, strict=True)
    ]
    np.testing.assert_allclose(values.numpy(), expected, atol=1e-10)
    assert values[-1].item() == pytest.approx(-1.0)


def test_rank_correlation_of_a_constant_explanation_is_nan() -> None:
    clean = torch.zeros(2, 1, 4, 4)
    clean[1] = torch.arange(16.0).view(1, 4, 4)
    corrupted = torch.arange(32.0).view(2, 1, 4, 4)
    values = RankCorrelation()(expl_original=clean, expl_corrupted=corrupted)
    assert math.isnan(values[0].item()) and values[1].item() == pytest.approx(1.0)


@pytest.mark.kernels
def test_chunked_rows_equal_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows one at a time = all rows at once.

    Exact where the arithmetic is: top-k shares are counts / k; rank correlation sums
    products of half-integer centred ranks (no ties here), exact in float64 in any order,
    then one sqrt and one division, each correctly rounded. Explanation change is a ratio of
    two float64 sums of D = 192 non-negative terms, which a reduction kernel chosen per shape
    may add in another order: each sum is within D·u64 relative, the ratio within
    2·D·u64 + 2·u64, and two evaluations differ by at most twice that (≈ 9e-14; docs/testing.md).
    """
    generator = torch.Generator().manual_seed(6)
    clean = torch.randn(5, 3, 8, 8, generator=generator)
    corrupted = clean + torch.randn(clean.shape, generator=generator)
    kinds = (ExplanationChangePct(), TopKIntersection(fraction=0.1), RankCorrelation())
    whole = [m(expl_original=clean, expl_corrupted=corrupted) for m in kinds]
    monkeypatch.setattr("xaibench.metrics.robustness._CHUNK_ELEMENTS", 1)
    chunked = [m(expl_original=clean, expl_corrupted=corrupted) for m in kinds]
    u64, entries = 2.0**-53, 3 * 8 * 8
    np.testing.assert_allclose(chunked[0].numpy(), whole[0].numpy(), rtol=2 * (2 * entries * u64 + 2 * u64), atol=0)
    assert torch.equal(chunked[1], whole[1]) and torch.equal(chunked[2], whole[2])


def test_registered_metadata() -> None:
    expected = {
        "explanation_change_pct": False,
        "ssim": True,
        "confidence_drop_pct": False,
        "prediction_flipped": False,
        "topk_intersection": True,
        "rank_correlation": True,
    }
    for name, higher_is_better in expected.items():
        metric_class = metrics.get(name)
        assert metric_class.name == name
        assert metric_class.higher_is_better is higher_is_better
        assert metric_class.category == "robustness"
        assert set(metric_class.needs) <= set(ROW_TENSORS)
    assert [p.describe() for p in metrics.params("topk_intersection")] == ["fraction: float = 0.01"]
    assert metrics.params("ssim") == []


def test_mismatched_rows_are_errors() -> None:
    with pytest.raises(ValueError, match="shape"):
        ExplanationChangePct()(expl_original=torch.zeros(2, 1, 4, 4), expl_corrupted=torch.zeros(3, 1, 4, 4))


@pytest.mark.kernels
def test_runs_of_the_same_clean_explanation_give_the_per_row_values() -> None:
    """The runner passes each clean map once per attacked copy, in runs; both sorting metrics
    rank such a run once. The values must be those of each row computed alone."""
    generator = torch.Generator().manual_seed(7)
    originals = torch.randn(3, 3, 8, 8, generator=generator)
    originals[2] = torch.randint(-2, 3, (3, 8, 8), generator=generator).float()  # ties
    clean = originals.repeat_interleave(torch.tensor([4, 1, 3]), dim=0)
    corrupted = clean + 0.5 * torch.randn(clean.shape, generator=generator)
    for metric in (TopKIntersection(fraction=0.1), RankCorrelation()):
        together = metric(expl_original=clean, expl_corrupted=corrupted)
        alone = torch.cat([metric(expl_original=clean[i : i + 1], expl_corrupted=corrupted[i : i + 1]) for i in range(8)])
        torch.testing.assert_close(together, alone, rtol=1e-12, atol=1e-12)
        expected = [
            reference_topk_intersection(a.flatten().numpy(), b.flatten().numpy(), 0.1)
            if isinstance(metric, TopKIntersection) else spearmanr(a.flatten().numpy(), b.flatten().numpy())[0]
            for a, b in zip(clean, corrupted, strict=True)
        ]
        np.testing.assert_allclose(together.numpy(), expected, atol=1e-12)
