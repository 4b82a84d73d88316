"""Declared metadata of the metrics: titles, units, ranges and table digits."""

from __future__ import annotations

import json

from xaibench.registry import metrics
from xaibench.types import Metric

# What the leaderboard showed before the metrics declared it themselves.
TITLES = {
    "explanation_change_pct": "expl. change %",
    "ssim": "SSIM",
    "confidence_drop_pct": "conf. drop pp",
    "prediction_flipped": "flipped",
    "insertion": "insertion",
    "deletion": "deletion",
    "infidelity": "INFD",
    "mif_lif_area": "MIF−LIF area",
}
DIGITS = {"explanation_change_pct": 1, "ssim": 3, "confidence_drop_pct": 2}


def test_titles_units_and_digits() -> None:
    for name, title in TITLES.items():
        cls = metrics.get(name)
        assert cls.title == title and cls.metadata()["title"] == title
        assert cls.digits == DIGITS.get(name)
    assert metrics.get("explanation_change_pct").unit == "%"
    assert metrics.get("confidence_drop_pct").unit == "pp"
    assert metrics.get("ssim").value_range == (-1.0, 1.0)


def test_every_builtin_metric_declares_jsonable_metadata(builtin_names) -> None:
    for name in builtin_names(metrics):
        cls = metrics.get(name)
        metadata = cls.metadata()
        json.dumps(metadata)
        assert cls.title and cls.summary, name
        assert metadata["category"] == cls.category and metadata["higher_is_better"] == cls.higher_is_better
        low, high = metadata["range"]
        assert low is None or high is None or low < high
        if issubclass(cls, Metric):
            assert metadata["needs"] == list(cls.needs) and metadata["needs"]
        else:
            assert "needs" not in metadata
    assert metrics.get("infidelity")().metadata()["title"] == "INFD"  # on an instance too


def test_the_default_metrics_keep_their_order(builtin_names) -> None:
    positioned = sorted((metrics.get(n).default_position, n) for n in builtin_names(metrics) if metrics.get(n).default_position is not None)
    assert [n for _, n in positioned] == [
        "explanation_change_pct", "ssim", "confidence_drop_pct", "prediction_flipped", "topk_intersection", "rank_correlation",
    ]
