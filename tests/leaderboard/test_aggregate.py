"""Aggregation: means over images, image-level bootstrap intervals, ranks and flags."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from xaibench.leaderboard.faithfulness import faithfulness_tables
from xaibench.leaderboard.flags import COMPLETENESS_GAP_LIMIT, completeness_gaps
from xaibench.leaderboard.load import SuiteResults, load_results
from xaibench.leaderboard.robustness import robustness_tables
from xaibench.leaderboard.stats import bootstrap_mean, rank, summarize

from .synthetic import plugin_meta, write_results

# 3 images × 2 explainers. Image a of "flat" has two rows (0.5 and 1.5): its per-image mean is 1,
# so the explainer's mean over images is (1 + 2 + 6) / 3 = 3, not the row mean (0.5+1.5+2+6)/4.
HAND = pd.DataFrame(
    {
        "model": ["m"] * 7,
        "explainer": ["flat", "flat", "flat", "flat", "steep", "steep", "steep"],
        "image_id": ["a", "a", "b", "c", "a", "b", "c"],
        "explanation_change_pct": [0.5, 1.5, 2.0, 6.0, 10.0, 20.0, 30.0],
    }
)


def _by_explainer(frame: pd.DataFrame, seed: int = 0) -> dict[str, object]:
    table = summarize(frame, ["model", "explainer"], ["explanation_change_pct"], seed=seed)
    return dict(zip(table["explainer"], table["explanation_change_pct"], strict=True))


def test_mean_is_over_images_not_rows() -> None:
    estimates = _by_explainer(HAND)
    assert estimates["flat"].mean == 3.0
    assert estimates["steep"].mean == 20.0
    assert estimates["flat"].n == estimates["steep"].n == 3


def test_interval_lies_within_the_images_and_contains_the_mean() -> None:
    for name, (low, high) in {"flat": (1.0, 6.0), "steep": (10.0, 30.0)}.items():
        estimate = _by_explainer(HAND)[name]
        assert low <= estimate.low <= estimate.mean <= estimate.high <= high
        assert estimate.low < estimate.high


def test_interval_is_deterministic_under_the_seed() -> None:
    first, again = _by_explainer(HAND, 0), _by_explainer(HAND, 0)
    assert first == again
    # With 3 images the 2.5 % / 97.5 % quantiles are the extremes whatever the seed; with 8
    # they are not, and another seed gives (slightly) other bounds but the same mean.
    values = [1.0, 2.0, 3.5, 4.0, 7.0, 8.5, 9.0, 15.0]
    same = bootstrap_mean(values, seed=5, key="g"), bootstrap_mean(values, seed=5, key="g")
    other = bootstrap_mean(values, seed=6, key="g")
    assert same[0] == same[1]
    assert (other.low, other.high) != (same[0].low, same[0].high)
    assert other.mean == same[0].mean == pytest.approx(np.mean(values))


def test_interval_of_a_group_does_not_depend_on_the_other_groups() -> None:
    alone = _by_explainer(HAND[HAND["explainer"] == "steep"])["steep"]
    assert alone == _by_explainer(HAND)["steep"]


def test_bootstrap_edge_cases() -> None:
    single = bootstrap_mean([4.0])
    assert (single.mean, single.low, single.high, single.n) == (4.0, 4.0, 4.0, 1)
    assert bootstrap_mean([math.nan, math.nan]).missing
    with_nan = bootstrap_mean([1.0, math.nan, 3.0], key="k")
    assert with_nan.mean == 2.0 and with_nan.n == 2
    constant = bootstrap_mean([2.5] * 10)
    assert constant.low == constant.high == 2.5


def test_bootstrap_interval_matches_a_direct_resampling() -> None:
    values = np.array([1.0, 2.0, 6.0, 7.0, 11.0])
    estimate = bootstrap_mean(values, seed=3, key="x", resamples=20000)
    rng = np.random.default_rng(123)
    direct = values[rng.integers(0, 5, size=(20000, 5))].mean(axis=1)
    assert estimate.low == pytest.approx(np.quantile(direct, 0.025), abs=0.25)
    assert estimate.high == pytest.approx(np.quantile(direct, 0.975), abs=0.25)


def test_rank_direction_and_ties() -> None:
    assert rank([3.0, 20.0], higher_is_better=False) == [1, 2]
    assert rank([3.0, 20.0], higher_is_better=True) == [2, 1]
    assert rank([1.0, 1.0, 0.5, math.nan], higher_is_better=True) == [1, 1, 3, None]


def _suite(robustness: pd.DataFrame, faithfulness: pd.DataFrame | None = None) -> SuiteResults:
    return SuiteResults(
        name="hand", robustness=robustness, faithfulness=faithfulness if faithfulness is not None else pd.DataFrame(),
        examples=pd.DataFrame(), runs=[], reference={"alpha": 0.1, "topk": 0.2}, reference_source="suite",
        plugins=plugin_meta(reference={"alpha": 0.1, "topk": 0.2}),
    )


def test_robustness_table_ranks_lower_change_first_and_uses_the_reference_point() -> None:
    frame = HAND.assign(attack="exiaa", alpha=0.1, topk=0.2, ssim=0.9, confidence_drop_pct=1.0)
    off_reference = frame.assign(alpha=0.3, explanation_change_pct=1000.0)
    baseline = frame.assign(attack="gaussian_noise", explanation_change_pct=frame["explanation_change_pct"] / 10)
    table = robustness_tables(_suite(pd.concat([frame, off_reference, baseline])), seed=0, resamples=500)[0]
    by_explainer = {row["explainer"].text: row for row in table.rows}
    assert by_explainer["flat"]["rank"].text == "1" and by_explainer["steep"]["rank"].text == "2"
    assert by_explainer["flat"]["explanation_change_pct"].estimate.mean == 3.0  # the α = 0.3 rows are ignored
    assert by_explainer["flat"]["baseline:gaussian_noise"].estimate.mean == pytest.approx(0.3)
    assert by_explainer["flat"]["images"].text == "3"
    assert [row["explainer"].text for row in table.rows] == ["flat", "steep"]


def test_faithfulness_ranks_follow_each_metrics_direction() -> None:
    rows = []
    for explainer, insertion, deletion in (("good", 0.9, 0.1), ("bad", 0.2, 0.7)):
        for image in ("a", "b", "c"):
            rows.append({"model": "m", "explainer": explainer, "image_id": image, "on": "clean",
                         "metric": "insertion", "higher_is_better": True, "score": insertion})
            rows.append({"model": "m", "explainer": explainer, "image_id": image, "on": "clean",
                         "metric": "deletion", "higher_is_better": False, "score": deletion})
    table = faithfulness_tables(_suite(pd.DataFrame(), pd.DataFrame(rows)), seed=0, resamples=200)[0]
    good = next(r for r in table.rows if r["explainer"].text == "good")
    assert good["rank"].text == "1"
    assert good["insertion"].detail.endswith("(#1)") and good["deletion"].detail.endswith("(#1)")
    titles = [c.title for c in table.columns]
    assert "insertion ↑" in titles and "deletion ↓" in titles


def test_large_completeness_gap_is_flagged(tmp_path: Path) -> None:
    suite = load_results([write_results(tmp_path / "r", images=4)])[0]
    gaps = completeness_gaps(suite.robustness)
    assert gaps[("tiny_cnn", "deeplift")] > COMPLETENESS_GAP_LIMIT
    assert ("tiny_cnn", "saliency") not in gaps  # no completeness: NaN, never flagged
    table = robustness_tables(suite, seed=0, resamples=200)[0]
    flags = {row["explainer"].text: row["explainer"].flag for row in table.rows}
    median = gaps[("tiny_cnn", "deeplift")]
    assert flags["deeplift"] == f"DeepLIFT rules not exact for this model (median completeness gap {median:.2f})"
    assert flags["integrated_gradients"] == "" and flags["saliency"] == ""


def test_reference_point_falls_back_to_the_largest_grid_point(tmp_path: Path) -> None:
    folder = write_results(tmp_path / "r", images=3, reference={})
    suite = load_results([folder])[0]
    assert suite.reference == {"alpha": 0.1, "topk": 0.5}
    assert suite.reference_source == "largest grid point"
    table = robustness_tables(suite, seed=0, resamples=100)[0]
    assert "α = 0.1, top-k = 0.5" in table.caption
    assert any("largest" in note for note in table.notes)


def test_grid_blocks_share_resamples_and_keep_exact_means() -> None:
    rows = []
    values = {"p": [1.0, 2.0, 6.0, 7.0], "q": [10.0, math.nan, 30.0, 50.0]}
    for point, column in values.items():
        for image, value in enumerate(column):
            rows.append({"model": "m", "explainer": "e", "point": point, "image_id": str(image), "v": value})
    frame = pd.DataFrame(rows)
    table = summarize(frame, ["model", "explainer", "point"], ["v"], blocks=("model", "explainer"))
    by_point = dict(zip(table["point"], table["v"], strict=True))
    assert by_point["p"].mean == 4.0 and by_point["p"].n == 4
    assert by_point["q"].mean == 30.0 and by_point["q"].n == 3  # the NaN image is left out
    for point, estimate in by_point.items():
        finite = [v for v in values[point] if not math.isnan(v)]
        assert min(finite) <= estimate.low <= estimate.mean <= estimate.high <= max(finite)
    again = summarize(frame, ["model", "explainer", "point"], ["v"], blocks=("model", "explainer"))
    assert list(again["v"]) == list(table["v"])
