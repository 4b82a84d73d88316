"""An explainer that returns an all-zero (or constant) map: its rows say so (``degenerate_map``),
their metrics are NaN instead of scored by index order, and the summary, the leaderboard and
the run's warning count them ("Nothing lost, nothing silently wrong")."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import pandas as pd
import pytest
import torch
from rich.console import Console

from xaibench.leaderboard import build_leaderboard, render_markdown
from xaibench.leaderboard.flags import (
    exclusion_counts,
    exclusion_notes,
    mask_nonfinite,
    undefined_notes,
)
from xaibench.leaderboard.tables import flag_cells
from xaibench.registry import explainers
from xaibench.runner import build_plan, run_plan
from xaibench.runner.degenerate import degenerate_warning, describe, excluded, map_kinds
from xaibench.runner.results import read_results
from xaibench.runner.suite import load_suite
from xaibench.summary import render_faithfulness, render_summary, summarize, summarize_faithfulness


@explainers.function("all_zero_map_for_test", needs_gradients=False)
def all_zero_map(model, x01, target):  # noqa: ANN001, ANN201
    """An explainer that explains nothing: every attribution is 0."""
    return torch.zeros_like(x01)


@explainers.function("constant_map_for_test", needs_gradients=False)
def constant_map(model, x01, target):  # noqa: ANN001, ANN201
    """Every attribution is 0.5: no entry is more important than another."""
    return torch.full_like(x01, 0.5)


ROBUSTNESS = ["explanation_change_pct", "rank_correlation", "topk_intersection", "confidence_drop_pct"]
SUITE = """
metrics = ["explanation_change_pct", "rank_correlation", "topk_intersection", "confidence_drop_pct",
           { name = "deletion", steps = 8 }, { name = "mif_lif_area", fractions = 4 }]

[suite]
name = "degenerate"
seed = 0
device = "cpu"
batch_size = 8

[dataset]
name = "digits"
limit = 2

[[models]]
name = "digits_cnn"

[[explainers]]
name = "all_zero_map_for_test"
label = "zeros"

[[explainers]]
name = "constant_map_for_test"
label = "flat"

[[explainers]]
name = "saliency"

[[attacks]]
name = "exiaa"
alphas = [0.1]
topks = [0.2]
n_attack_images = 2
"""


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("degenerate")
    (tmp / "suite.toml").write_text(SUITE)
    report = run_plan(build_plan(load_suite(str(tmp / "suite.toml")), tmp / "out"))
    assert report.units_failed == 0
    return tmp / "out"


def _plugins(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())["plugins"]


# -- the rows ---------------------------------------------------------------------------


def test_rows_of_a_degenerate_map_say_so_and_have_nan_metrics(results: Path) -> None:
    frame = read_results(results)
    assert len(frame) == 3 * 2 * 2  # explainers × images × attack images
    labels = frame.groupby("explainer")["degenerate_map"].unique().map(list).to_dict()
    assert labels == {
        "zeros": ["clean and corrupted all-zero"],
        "flat": ["clean and corrupted constant"],
        "saliency": [""],
    }
    broken = frame[frame["explainer"] != "saliency"]
    # Before: top-k intersection 1.0 (ties broken by index) and a finite confidence drop;
    # nothing said. Now every metric of the row is NaN, like a non-finite map's.
    assert broken[ROBUSTNESS].isna().all().all()
    assert (broken["nonfinite_fraction"] == 0).all()
    healthy = frame[frame["explainer"] == "saliency"]
    assert healthy[ROBUSTNESS].notna().all().all()


def test_faithfulness_rows_of_a_degenerate_map_are_not_scored(results: Path) -> None:
    frame = read_results(results, table="faithfulness")
    by = frame.groupby("explainer")["degenerate_map"].unique().map(list).to_dict()
    assert by == {"zeros": ["all-zero"], "flat": ["constant"], "saliency": [""]}
    # Before: the all-zero map's deletion AUC (pixels deleted in index order) ranked first.
    assert frame.loc[frame["explainer"] != "saliency", "score"].isna().all()
    assert frame.loc[frame["explainer"] == "saliency", "score"].notna().all()
    assert set(frame["on"]) == {"clean", "attacked"}


# -- reported: summary, leaderboard, the run's warning ----------------------------------


def test_the_printed_summary_counts_them_and_says_why(results: Path) -> None:
    frame, plugins = read_results(results), _plugins(results)
    summary = summarize(frame, plugins).set_index("explainer")
    assert summary.loc["zeros", "excluded"] == 4 and summary.loc["zeros", "n"] == 0
    assert summary.loc["saliency", "excluded"] == 0 and summary.loc["saliency", "n"] == 4
    assert ((summary["n"] + summary["excluded"]) == frame.groupby("explainer").size()).all()
    out = io.StringIO()
    render_summary(summary.reset_index(), Console(file=out, width=250), plugins=plugins)
    text = " ".join(out.getvalue().split())
    assert "8 rows in 2 groups excluded from the means" in text
    assert "all-zero or constant explanation" in text and "degenerate_map" in text

    faith = read_results(results, table="faithfulness")
    table = summarize_faithfulness(faith, frame)
    zeros = table[table["explainer"] == "zeros"]
    assert (zeros["excluded"] == zeros["degenerate"]).all() and (zeros["n"] == 0).all()
    assert zeros["rank"].isna().all()
    assert (table.loc[table["explainer"] == "saliency", "rank"] == 1).all()
    out = io.StringIO()
    render_faithfulness(table, Console(file=out, width=250))
    assert "all-zero or constant explanation" in " ".join(out.getvalue().split())


def test_the_leaderboard_notes_and_does_not_rank_them(results: Path) -> None:
    markdown = render_markdown(build_leaderboard([results], resamples=50))
    assert (
        "4 of 4 rows of zeros × digits_cnn excluded: the explainer returned an all-zero explanation, "
        "on which the metrics are undefined"
    ) in markdown
    assert "rows of flat × digits_cnn excluded: the explainer returned a constant explanation" in markdown
    assert "have no expl. change % value" not in markdown  # said once, with its reason
    assert "not ranked: no value left (4 of 4 rows excluded: the explainer returned an all-zero" in markdown
    assert "zeros ⚠ |" in markdown and "remaining rows" not in markdown  # flagged; no rows remain


def test_the_run_warning_names_the_pairs(results: Path) -> None:
    frame = read_results(results)
    assert degenerate_warning(frame) == (
        "warning: 8 of 12 robustness rows had an all-zero or constant explanation "
        "(digits_cnn × flat: 4 of 4; digits_cnn × zeros: 4 of 4); their metrics are NaN and "
        "excluded from the means and ranks (column degenerate_map)"
    )
    zeros = frame[frame["explainer"] != "flat"]
    assert degenerate_warning(zeros).startswith("warning: 4 of 8 robustness rows had an all-zero explanation (")
    faith = read_results(results, table="faithfulness")
    assert degenerate_warning(faith, "faithfulness").startswith("warning: 16 of 24 faithfulness rows")
    assert degenerate_warning(frame[frame["explainer"] == "saliency"]) is None
    assert degenerate_warning(frame.drop(columns="degenerate_map")) is None  # older results


# -- the pieces -------------------------------------------------------------------------


def test_map_kinds_are_exact_and_leave_non_finite_rows_to_their_own_count() -> None:
    maps = torch.zeros(6, 1, 2, 2)
    maps[1] = -0.0
    maps[2] = 3.0
    maps[3, 0, 0, 0] = 1e-30  # tiny but not constant
    maps[4, 0, 0, 0] = math.nan
    maps[5] = torch.arange(4.0).view(1, 2, 2)
    assert map_kinds(maps) == ["all-zero", "all-zero", "constant", "", "", ""]


def test_robustness_labels_name_the_map_and_skip_non_finite_rows() -> None:
    clean = ["", "all-zero", "all-zero", "", "constant"]
    corrupted = ["all-zero", "all-zero", "constant", "", "constant"]
    nonfinite = torch.tensor([0.0, 0.0, 0.0, 0.0, 0.5], dtype=torch.float64)
    labels = describe({"clean": clean, "corrupted": corrupted}, nonfinite)
    assert labels == [
        "corrupted all-zero", "clean and corrupted all-zero", "clean all-zero, corrupted constant", "", "",
    ]
    assert excluded(nonfinite, labels).tolist() == [1.0, 1.0, 1.0, 0.0, 0.5]


def _hand_rows() -> pd.DataFrame:
    rows = []
    for explainer, labels, nonfinite in (
        ("ok", ["", "", "", ""], [0, 0, 0, 0]),
        ("mixed", ["", "corrupted all-zero", "", ""], [0, 0, 0.5, 0]),
    ):
        for i, (label, bad) in enumerate(zip(labels, nonfinite, strict=True)):
            rows.append({"model": "m", "explainer": explainer, "image_id": str(i), "v": float(i),
                         "nonfinite_fraction": bad, "degenerate_map": label})
    return pd.DataFrame(rows)


def test_flags_count_each_excluded_row_once_with_its_reason() -> None:
    frame = _hand_rows()
    counts = exclusion_counts(frame)
    assert set(counts) == {("m", "mixed")}
    assert counts[("m", "mixed")][:3] == (1, 4, 1)
    assert exclusion_notes(frame) == [
        "1 of 4 rows of mixed × m excluded: the explainer returned non-finite attributions (NaN/inf)",
        "1 of 4 rows of mixed × m excluded: the explainer returned an all-zero explanation, on which "
        "the metrics are undefined",
    ]
    masked = mask_nonfinite(frame, ["v"])  # a hand-built row that still has a value loses it
    assert masked.loc[masked["explainer"] == "mixed", "v"].isna().tolist() == [False, True, True, False]
    assert undefined_notes(masked, "v", "v") == []  # both reasons already said
    assert exclusion_counts(frame.drop(columns="degenerate_map"))[("m", "mixed")][:3] == (1, 4, 0)
    pairs = pd.DataFrame({"model": ["m", "m"], "explainer": ["ok", "mixed"]})
    ok, mixed = flag_cells(pairs, {}, nonfinite=counts)
    assert ok.flag == "" and mixed.flag == (
        "1 of 4 rows excluded: the explainer returned non-finite attributions (NaN/inf); 1 of 4 rows excluded: "
        "the explainer returned an all-zero explanation, on which the metrics are undefined; "
        "the means are over the remaining rows"
    )
