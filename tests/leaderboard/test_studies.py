"""Study tables (models side by side, sensitivity, eXIAA ablations) against hand computations."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from xaibench.leaderboard.ablations import ablation_tables
from xaibench.leaderboard.comparison import model_comparison_tables
from xaibench.leaderboard.load import SuiteResults
from xaibench.leaderboard.markdown import table_markdown
from xaibench.leaderboard.robustness import robustness_tables
from xaibench.leaderboard.sensitivity import relative_spread, sensitivity_tables

from .synthetic import plugin_meta


def _suite(robustness=None, faithfulness=None, sensitivity=None) -> SuiteResults:
    empty = pd.DataFrame()
    return SuiteResults(
        name="hand", robustness=robustness if robustness is not None else empty,
        faithfulness=faithfulness if faithfulness is not None else empty, examples=empty, runs=[],
        reference={"alpha": 0.1, "topk": 0.2}, reference_source="suite",
        plugins=plugin_meta(reference={"alpha": 0.1, "topk": 0.2}),
        sensitivity=sensitivity if sensitivity is not None else empty,
    )


def _faith(model: str, explainer: str, metric: str, scores: list[float], accuracy: float) -> pd.DataFrame:
    return pd.DataFrame({
        "model": model, "explainer": explainer, "metric": metric, "on": "clean",
        "image_id": [f"i{k}" for k in range(len(scores))], "score": scores,
        "higher_is_better": True, "model_test_accuracy": accuracy,
    })


def test_models_side_by_side_puts_each_models_mean_in_its_column_with_its_accuracy() -> None:
    frame = pd.concat([
        _faith("plain", "IG", "A_sum", [0.1, 0.2, 0.3], 0.99),
        _faith("fpa", "IG", "A_sum", [0.5, 0.7, 0.9], 0.97),
        _faith("plain", "VG", "A_abs", [0.0, 0.2, 0.4], 0.99),
        _faith("fpa", "VG", "A_abs", [0.1, 0.1, 0.1], 0.97),
    ])
    (table,) = model_comparison_tables(_suite(faithfulness=frame), seed=0, resamples=300)
    titles = [c.title for c in table.columns]
    assert "plain (acc. 0.990)" in titles and "fpa (acc. 0.970)" in titles
    rows = {row["estimator"].text: row for row in table.rows}
    assert set(rows) == {"IG · A_sum", "VG · A_abs"}
    assert rows["IG · A_sum"]["model:plain"].estimate.mean == pytest.approx(0.2)
    assert rows["IG · A_sum"]["model:fpa"].estimate.mean == pytest.approx(0.7)
    assert rows["VG · A_abs"]["model:fpa"].estimate.low == pytest.approx(0.1)  # no spread, no width
    assert "plain 0.990" in table.caption and not table.notes
    assert "| IG · A_sum |" in table_markdown(table)


def test_a_single_model_gets_no_side_by_side_table() -> None:
    assert model_comparison_tables(_suite(faithfulness=_faith("m", "IG", "A", [0.1], 1.0)), seed=0, resamples=10) == []


def test_relative_spread_is_the_mean_per_image_std_over_the_mean_score() -> None:
    scores = pd.DataFrame({
        "image_id": ["a", "a", "a", "b", "b", "b", "c", "c"],  # c lacks a setting: dropped
        "setting": ["s1", "s2", "s3"] * 2 + ["s1", "s2"],
        "score": [1.0, 2.0, 3.0, 2.0, 2.0, 2.0, 9.0, 9.0],
    })
    relative, estimate = relative_spread(scores)
    expected_std = (np.std([1.0, 2.0, 3.0]) + 0.0) / 2
    assert estimate.mean == pytest.approx(expected_std)
    assert relative == pytest.approx(expected_std / 2.0)  # the mean score of a and b is 2


def test_sensitivity_table_averages_ssim_over_values_and_spreads_over_the_sweep() -> None:
    sens_rows, faith_rows = [], []
    for model, drift in (("regular", 0.2), ("robust", 0.05)):
        for image in range(4):
            sens_rows.append(dict(model=model, explainer="SG", sweep="SG", param=None, value=None,
                                  reference_params=json.dumps({"stdevs": 0.15}), image_id=f"i{image}",
                                  ssim_to_reference=1.0, model_test_accuracy=0.9))
            faith_rows.append(dict(model=model, explainer="SG", metric="deletion", on="clean",
                                   image_id=f"i{image}", score=0.5, higher_is_better=False))
            for k, value in enumerate((0.05, 0.3)):
                label = f"SG stdevs={value}"
                sens_rows.append(dict(model=model, explainer=label, sweep="SG", param="stdevs",
                                      value=json.dumps(value), reference_params=json.dumps({"stdevs": 0.15}),
                                      image_id=f"i{image}", ssim_to_reference=1.0 - drift * (k + 1),
                                      model_test_accuracy=0.9))
                faith_rows.append(dict(model=model, explainer=label, metric="deletion", on="clean",
                                       image_id=f"i{image}", score=0.5 + drift * (k + 1), higher_is_better=False))
    suite = _suite(faithfulness=pd.DataFrame(faith_rows), sensitivity=pd.DataFrame(sens_rows))
    (table,) = sensitivity_tables(suite, seed=0, resamples=300)
    (row,) = table.rows
    assert row["values"].text == "0.05, 0.3 (0.15)"
    # SSIM: mean of 1 − drift and 1 − 2·drift.
    assert row["ssim:regular"].estimate.mean == pytest.approx(1 - 1.5 * 0.2)
    assert row["ssim:robust"].estimate.mean == pytest.approx(1 - 1.5 * 0.05)
    assert float(row["worst:regular"].text) == pytest.approx(0.6)
    # Spread of deletion across {0.5, 0.5 + d, 0.5 + 2d}: std / mean, the same for every image.
    for model, d in (("regular", 0.2), ("robust", 0.05)):
        values = np.array([0.5, 0.5 + d, 0.5 + 2 * d])
        assert row[f"spread:deletion:{model}"].sort == pytest.approx(values.std() / values.mean())
    assert "Mean SSIM to the reference over all 1 parameters: regular 0.700, robust 0.925" in table.caption


def _ablation_frame() -> pd.DataFrame:
    rows = []
    rng = np.random.default_rng(0)
    for image in range(6):
        for rank in (1, 2, 3):
            for alpha in (0.05, 0.15):
                change = 10.0 - 2.0 * rank + rng.normal(0, 0.1)
                rows.append(dict(model="m", explainer="saliency", attack="by_rank", image_id=f"i{image}",
                                 source_class_rank=rank, alpha=alpha, topk=0.2, explanation_change_pct=change,
                                 attack_image_rank=0, attack_params=json.dumps({"source_class_ranks": [1, 2, 3]}),
                                 ssim=0.9, confidence_drop_pct=1.0))
        for name, first, change in (("top", 0, 5.0), ("low", 10, 4.0)):
            for slot in range(2):
                rows.append(dict(model="m", explainer="saliency", attack=name, image_id=f"i{image}",
                                 source_class_rank=1, alpha=0.1, topk=0.2, explanation_change_pct=change + image,
                                 attack_image_rank=first + slot,
                                 attack_params=json.dumps({"n_attack_images": 2, "first_attack_image": first}),
                                 ssim=0.9, confidence_drop_pct=1.0))
    return pd.DataFrame(rows)


def test_ablation_tables_compare_the_running_up_class_and_the_image_ranks_paired_by_image() -> None:
    frame = _ablation_frame()
    by_class, by_image = ablation_tables(_suite(robustness=frame), seed=0, resamples=300)
    (row,) = by_class.rows
    ranks = frame[frame["attack"] == "by_rank"].groupby("source_class_rank")["explanation_change_pct"].mean()
    assert row["rank:1"].estimate.mean == pytest.approx(ranks[1])
    assert row["rank:3"].estimate.mean == pytest.approx(ranks[3])
    # Running-up minus the mean of ranks 2 and 3: 8 − 5 = 3 by construction (± noise).
    assert row["difference"].estimate.mean == pytest.approx(ranks[1] - (ranks[2] + ranks[3]) / 2, abs=1e-9)
    assert row["difference"].estimate.low > 2.5
    assert row["position"].text == "1 of 3"
    (image_row,) = by_image.rows
    assert image_row["top"].text.endswith("(images 1–2)") and image_row["low"].text.endswith("(images 11–12)")
    assert image_row["difference"].estimate.mean == pytest.approx(1.0)
    assert image_row["difference"].estimate.low == pytest.approx(1.0)  # the same for every image


def test_overview_tables_keep_only_the_running_up_rows_of_a_multi_class_attack() -> None:
    frame = _ablation_frame()
    frame = frame[frame["attack"] == "by_rank"].assign(alpha=0.1)
    (table,) = robustness_tables(_suite(robustness=frame), seed=0, resamples=100)
    (row,) = table.rows
    expected = frame[frame["source_class_rank"] == 1]["explanation_change_pct"].mean()
    assert row["explanation_change_pct"].estimate.mean == pytest.approx(expected)
