"""What the rows declare about themselves (issue 11): the convergence gate, non-finite
explanations, attack-image fallbacks and the explainer's noise floor, on hand-built frames."""

from __future__ import annotations

import io
import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from xaibench.leaderboard import build_leaderboard, build_site, render_markdown
from xaibench.leaderboard.faithfulness import faithfulness_tables
from xaibench.leaderboard.flags import NOISE_FLOOR_FLAG, noise_floor_flag
from xaibench.leaderboard.load import SuiteResults, convergence_records
from xaibench.leaderboard.markdown import table_markdown
from xaibench.leaderboard.robustness import robustness_tables
from xaibench.leaderboard.stats import Estimate
from xaibench.leaderboard.tables import UNRANKED
from xaibench.summary import (
    render_faithfulness,
    render_summary,
    summarize,
    summarize_faithfulness,
)

from .synthetic import plugin_meta, plugins_block, write_results

IMAGES = ("a", "b", "c", "d")
# Per explainer: explanation change per image, and the clean explanation's completeness gap.
# "fast" has the smallest change but is under-converged (gap 1.58 > 0.1): without the gate
# it would rank first.
CHANGE = {
    "fast": [1.0, 1.0, 2.0, 2.0],
    "steady": [10.0, 12.0, 14.0, 16.0],
    "plain": [20.0, 22.0, 24.0, 26.0],
}
GAP = {"fast": 1.58, "steady": 0.01, "plain": math.nan}


def _suite(robustness: pd.DataFrame, faithfulness: pd.DataFrame | None = None) -> SuiteResults:
    return SuiteResults(
        name="hand", robustness=robustness,
        faithfulness=faithfulness if faithfulness is not None else pd.DataFrame(),
        examples=pd.DataFrame(), runs=[], reference={"alpha": 0.1, "topk": 0.2}, reference_source="suite",
        plugins=plugin_meta(reference={"alpha": 0.1, "topk": 0.2}),
    )


def _robustness(extra: dict[str, dict[str, list[float]]] | None = None, slots: int = 2, **columns: object) -> pd.DataFrame:
    """Rows of attack "exiaa" at the reference point (``slots`` attack images per image) and
    at an off-reference α; ``extra[column][explainer]`` adds a per-image column."""
    rows = []
    for explainer, changes in CHANGE.items():
        for image, change in zip(IMAGES, changes, strict=True):
            for alpha in (0.1, 0.3):
                for slot in range(slots):
                    row = {
                        "model": "m", "explainer": explainer, "image_id": image, "attack": "exiaa",
                        "attack_params": "{}", "alpha": alpha, "topk": 0.2, "attack_image_rank": slot,
                        "explanation_change_pct": change, "ssim": 0.9, "confidence_drop_pct": 1.0,
                        "completeness_gap": GAP[explainer],
                    }
                    for column, values in (extra or {}).items():
                        per_image = values.get(explainer)
                        row[column] = per_image[IMAGES.index(image)] if per_image is not None else math.nan
                    row.update(columns)
                    rows.append(row)
    return pd.DataFrame(rows)


def _by_explainer(table) -> dict[str, dict]:  # noqa: ANN001
    return {row["explainer"].text: row for row in table.rows}


# --------------------------------------------------------------------------------------
# Convergence gate: under-converged pairs are shown, greyed, and not ranked
# --------------------------------------------------------------------------------------


def test_under_converged_row_has_no_rank_and_the_others_are_reranked() -> None:
    (table,) = robustness_tables(_suite(_robustness()), seed=0, resamples=200)
    rows = _by_explainer(table)
    assert rows["fast"]["rank"].text == UNRANKED and rows["fast"]["rank"].sort is None
    assert rows["fast"].unranked == (
        "not ranked: median completeness gap 1.58 > 0.10 (the leaderboard's default limit) — "
        "under-converged; raise n_steps or set max_completeness_gap"
    )
    # Ranked without it: steady (mean 13) first, plain (no completeness at all) second.
    assert rows["steady"]["rank"].text == "1" and rows["plain"]["rank"].text == "2"
    assert not rows["steady"].unranked and not rows["plain"].unranked
    assert rows["fast"]["explanation_change_pct"].estimate.mean == pytest.approx(1.5)  # still shown
    assert [row["explainer"].text for row in table.rows] == ["steady", "plain", "fast"]
    assert any(note.startswith("fast × m not ranked: median completeness gap 1.58") for note in table.notes)


def test_the_gate_comes_from_the_rows_max_completeness_gap() -> None:
    frame = _robustness(extra={"max_completeness_gap": {"fast": [2.0] * 4, "steady": [0.005] * 4}})
    (table,) = robustness_tables(_suite(frame), seed=0, resamples=100)
    rows = _by_explainer(table)
    # fast's own gate (2.0) admits its gap of 1.58; steady's (0.005) rejects 0.01.
    assert rows["fast"]["rank"].text == "1" and not rows["fast"].unranked
    assert rows["steady"]["rank"].text == UNRANKED
    assert rows["steady"].unranked.startswith("not ranked: median completeness gap 0.01 > 0.005 (its max_completeness_gap)")
    assert rows["plain"]["rank"].text == "2"


def _faithfulness(bad: dict[str, set[str]] | None = None) -> pd.DataFrame:
    rows = []
    quality = {"fast": 0.95, "steady": 0.6, "plain": 0.3}
    for explainer, q in quality.items():
        for image in IMAGES:
            broken = image in (bad or {}).get(explainer, set())
            for metric, higher in (("insertion", True), ("deletion", False)):
                rows.append({
                    "model": "m", "explainer": explainer, "image_id": image, "on": "clean",
                    "metric": metric, "higher_is_better": higher,
                    "score": math.nan if broken else (q if higher else 1 - q),
                    "nonfinite_fraction": 0.25 if broken else 0.0,
                })
    return pd.DataFrame(rows)


def test_faithfulness_ranks_leave_the_under_converged_pair_out() -> None:
    (table,) = faithfulness_tables(_suite(_robustness(), _faithfulness()), seed=0, resamples=100)
    rows = _by_explainer(table)
    assert rows["fast"]["rank"].text == UNRANKED and rows["fast"].unranked.startswith("not ranked: median completeness gap 1.58")
    assert "(#" not in rows["fast"]["insertion"].detail and rows["fast"]["mean_rank"].text == "–"
    assert rows["steady"]["rank"].text == "1" and rows["steady"]["insertion"].detail.endswith("(#1)")
    assert rows["plain"]["rank"].text == "2" and rows["plain"]["deletion"].detail.endswith("(#2)")


def test_markdown_marks_the_unranked_row_and_gives_the_reason() -> None:
    (table,) = robustness_tables(_suite(_robustness()), seed=0, resamples=100)
    text = table_markdown(table)
    assert re.search(rf"^\| {UNRANKED} \| m \| fast ⚠ \| 1\.5 ", text, re.M)
    assert re.search(r"^\| 1 \| m \| steady \| 13\.0 ", text, re.M)
    assert "> ⚠ fast × m not ranked: median completeness gap 1.58 &gt; 0.10" in text  # > escaped
    table.notes.clear()  # without the note, the reason goes under the table
    assert f"- {UNRANKED} m × fast: not ranked: median completeness gap 1.58 &gt; 0.10" in table_markdown(table)


def test_site_greys_the_unranked_row(tmp_path: Path) -> None:
    # The synthetic deeplift has a median gap of about 0.41: under-converged on every model.
    folder = write_results(tmp_path / "r", images=3, faithfulness=True, examples=False)
    index = build_site([folder], tmp_path / "site", resamples=50)
    html = index.read_text(encoding="utf-8")
    greyed = re.findall(r'<tr class="unranked" title="([^"]*)">\s*<td class="rank"[^>]*>([^<]*)<', html)
    assert greyed, "no greyed row"
    for reason, rank in greyed:
        assert rank == UNRANKED
        assert re.match(r"not ranked: median completeness gap 0\.\d\d &gt; 0\.10", reason)
    tables = html.count('<table class="sortable leaderboard"')
    assert len(greyed) == tables == 3  # robustness, clean and attacked faithfulness; one model
    markdown = render_markdown(build_leaderboard([folder], resamples=50))
    assert re.search(rf"^\| {UNRANKED} \| tiny_cnn \| deeplift ⚠ \|", markdown, re.M)


# --------------------------------------------------------------------------------------
# Non-finite attributions: counted, said, flagged
# --------------------------------------------------------------------------------------


def test_the_note_counts_exactly_the_nonfinite_rows() -> None:
    frame = _robustness(nonfinite_fraction=0.0)
    broken = (frame["explainer"] == "plain") & frame["image_id"].isin(["a", "b"]) & (frame["attack_image_rank"] == 0)
    frame.loc[broken, "nonfinite_fraction"] = 0.5
    frame.loc[broken, ["explanation_change_pct", "ssim", "confidence_drop_pct"]] = math.nan
    # 2 images × 1 slot at the reference α and 2 more at α = 0.3 (not in the table): 2 counted.
    assert broken.sum() == 4
    (table,) = robustness_tables(_suite(frame), seed=0, resamples=100)
    assert "2 of 8 rows of plain × m excluded: the explainer returned non-finite attributions (NaN/inf)" in table.notes
    assert sum("non-finite" in note for note in table.notes) == 1
    rows = _by_explainer(table)
    assert rows["plain"]["explainer"].flag == (
        "2 of 8 rows excluded: the explainer returned non-finite attributions (NaN/inf); the means are over the remaining rows"
    )
    assert rows["steady"]["explainer"].flag == ""
    # Still ranked, on the remaining rows (the images keep their other slot's value).
    assert rows["plain"]["rank"].text == "2" and rows["plain"]["explanation_change_pct"].estimate.mean == pytest.approx(23.0)


def test_a_pair_with_only_nonfinite_rows_is_shown_unranked_with_the_reason() -> None:
    frame = _robustness(nonfinite_fraction=0.0)
    broken = frame["explainer"] == "plain"
    frame.loc[broken, "nonfinite_fraction"] = 1.0
    frame.loc[broken, "explanation_change_pct"] = math.nan
    (table,) = robustness_tables(_suite(frame), seed=0, resamples=100)
    plain = _by_explainer(table)["plain"]
    assert plain["explanation_change_pct"].text == "–" and plain["rank"].text == UNRANKED
    assert plain.unranked == (
        "not ranked: no value left (8 of 8 rows excluded: the explainer returned non-finite attributions (NaN/inf))"
    )
    assert "8 of 8 rows of plain × m excluded: the explainer returned non-finite attributions (NaN/inf)" in table.notes


def test_missing_values_without_nonfinite_attributions_are_said_too() -> None:
    frame = _robustness()
    frame.loc[(frame["explainer"] == "steady") & (frame["image_id"] == "a"), "explanation_change_pct"] = math.nan
    (table,) = robustness_tables(_suite(frame), seed=0, resamples=100)
    assert any(note.startswith("2 of 8 rows of steady × m have no expl. change % value") for note in table.notes)


def test_faithfulness_notes_count_the_nonfinite_rows() -> None:
    faith = _faithfulness(bad={"plain": {"c"}})
    (table,) = faithfulness_tables(_suite(_robustness(), faith), seed=0, resamples=100)
    # One image × two metrics.
    assert "2 of 8 rows of plain × m excluded: the explainer returned non-finite attributions (NaN/inf)" in table.notes
    assert _by_explainer(table)["plain"]["explainer"].flag.startswith("2 of 8 rows excluded")
    assert _by_explainer(table)["plain"]["insertion"].estimate.n == 3


def test_faithfulness_pair_with_every_score_nan_keeps_its_row() -> None:
    faith = _faithfulness(bad={"plain": set(IMAGES)})
    (table,) = faithfulness_tables(_suite(_robustness(), faith), seed=0, resamples=100)
    plain = _by_explainer(table)["plain"]
    assert plain["insertion"].text == "–" and plain["rank"].text == UNRANKED
    assert "no value left" in plain.unranked


def test_printed_summary_counts_and_says_the_excluded_rows() -> None:
    frame = _robustness(nonfinite_fraction=0.0)
    broken = (frame["explainer"] == "plain") & (frame["image_id"] == "a")
    frame.loc[broken, "nonfinite_fraction"] = 0.1
    frame.loc[broken, "explanation_change_pct"] = math.nan
    summary = summarize(frame, plugins_block())
    by_group = summary.set_index(["explainer", "alpha"])["excluded"]
    assert by_group[("plain", 0.1)] == 2 and by_group[("plain", 0.3)] == 2 and by_group[("steady", 0.1)] == 0
    out = io.StringIO()
    render_summary(summary, Console(file=out, width=200), plugins=plugins_block())
    assert "4 rows in 2 groups excluded from the means" in out.getvalue()
    assert "non-finite attributions" in out.getvalue()

    faith = _faithfulness(bad={"plain": set(IMAGES)})  # every score NaN: no rank, no crash
    table = summarize_faithfulness(faith, robustness=_robustness())
    plain = table[table["explainer"] == "plain"]
    assert plain["excluded"].tolist() == [4, 4] and plain["rank"].isna().all()
    fast = table[table["explainer"] == "fast"]
    assert fast["rank"].isna().all() and fast["unranked"].str.startswith("not ranked").all()
    assert table.loc[table["explainer"] == "steady", "rank"].tolist() == [1.0, 1.0]
    out = io.StringIO()
    render_faithfulness(table, Console(file=out, width=250))
    text = out.getvalue()
    assert "8 rows in 2 groups excluded from the means" in text and "⊘ fast × m not ranked" in text


# --------------------------------------------------------------------------------------
# Noise floor
# --------------------------------------------------------------------------------------

FLOOR = {"fast": [4.0, 4.0, 4.0, 4.0], "steady": [1.0, 2.0, 3.0, 6.0], "plain": [20.0, 24.0, 30.0, 40.0]}


def test_noise_floor_column_is_the_mean_over_images_beside_the_change() -> None:
    frame = _robustness(extra={"noise_floor_explanation_change_pct": FLOOR})
    frame.loc[frame["explainer"] == "fast", "noise_floor_explanation_change_pct"] = math.nan  # deterministic
    (table,) = robustness_tables(_suite(frame), seed=0, resamples=500)
    keys = [c.key for c in table.columns]
    assert keys[keys.index("explanation_change_pct") + 1] == "noise_floor:explanation_change_pct"
    assert table.columns[keys.index("explanation_change_pct") + 1].title == "noise floor"
    rows = _by_explainer(table)
    assert rows["steady"]["noise_floor:explanation_change_pct"].estimate.mean == pytest.approx(np.mean([1, 2, 3, 6]))
    assert rows["plain"]["noise_floor:explanation_change_pct"].estimate.mean == pytest.approx(28.5)
    assert rows["fast"]["noise_floor:explanation_change_pct"].text == "–"
    assert "an attack effect within the noise floor is not distinguishable from the explainer's own randomness" in table.caption


def test_the_flag_appears_exactly_when_the_change_is_within_the_floor() -> None:
    frame = _robustness(extra={"noise_floor_explanation_change_pct": FLOOR})
    (table,) = robustness_tables(_suite(frame), seed=0, resamples=500)
    rows = _by_explainer(table)
    for name, row in rows.items():
        change = row["explanation_change_pct"].estimate
        floor = row["noise_floor:explanation_change_pct"].estimate
        within = change.mean <= floor.high
        assert bool(row["explanation_change_pct"].flag) == within, name
        if within:
            assert row["explanation_change_pct"].flag.startswith(NOISE_FLOOR_FLAG)
    # By construction: fast (1.5 vs 4) and plain (23 vs ~28.5) are within, steady (13 vs ≤ 6) is not.
    assert rows["fast"]["explanation_change_pct"].flag and rows["plain"]["explanation_change_pct"].flag and not rows["steady"]["explanation_change_pct"].flag
    assert "⚠" in table_markdown(table).split("m | plain |")[1].splitlines()[0]


def test_noise_floor_flag_boundaries_and_direction() -> None:
    floor = Estimate(4.0, 3.0, 5.0, 10)
    assert noise_floor_flag(Estimate(5.0, 4.0, 6.0, 10), floor, False, 1)  # equal to the upper end
    assert not noise_floor_flag(Estimate(5.01, 4.0, 6.0, 10), floor, False, 2)
    # A similarity (higher is better for the explainer): the attack must push it below the floor.
    assert noise_floor_flag(Estimate(3.0, 2.0, 4.0, 10), floor, True, 1)
    assert not noise_floor_flag(Estimate(2.9, 2.0, 4.0, 10), floor, True, 1)
    assert not noise_floor_flag(Estimate(1.0, 1.0, 1.0, 1), Estimate(math.nan, math.nan, math.nan, 0), False, 1)


def test_any_shown_metrics_noise_floor_is_shown() -> None:
    frame = _robustness(extra={
        "noise_floor_explanation_change_pct": FLOOR,
        "noise_floor_ssim": {"steady": [0.95, 0.95, 0.97, 0.97]},
        "noise_floor_rank_correlation": {"steady": [0.9] * 4},  # not a shown metric: no column
    })
    (table,) = robustness_tables(_suite(frame), seed=0, resamples=100)
    keys = [c.key for c in table.columns]
    assert keys[keys.index("ssim") + 1] == "noise_floor:ssim"
    assert not any("rank_correlation" in k for k in keys)
    titles = {c.key: c.title for c in table.columns}
    assert titles["noise_floor:explanation_change_pct"] == "noise floor: expl. change %"
    assert titles["noise_floor:ssim"] == "noise floor: SSIM"
    assert _by_explainer(table)["steady"]["noise_floor:ssim"].estimate.mean == pytest.approx(0.96)


def test_no_noise_floor_column_without_a_finite_floor() -> None:
    frame = _robustness(noise_floor_explanation_change_pct=math.nan)
    (table,) = robustness_tables(_suite(frame), seed=0, resamples=100)
    assert not any(c.key.startswith("noise_floor") for c in table.columns)
    assert "noise floor" not in table.caption.lower()


# --------------------------------------------------------------------------------------
# Attack images from the whole pool
# --------------------------------------------------------------------------------------


def test_pool_fallbacks_of_the_default_rule_are_counted() -> None:
    frame = _robustness(attack_image_source="class")
    fallback = (frame["explainer"] == "steady") & (frame["image_id"] == "d") & (frame["alpha"] == 0.1)
    frame.loc[fallback, "attack_image_source"] = "pool"
    frame.loc[(frame["alpha"] == 0.3) & (frame["image_id"] == "a"), "attack_image_source"] = "pool"  # off the point
    (table,) = robustness_tables(_suite(frame), seed=0, resamples=100)
    assert (
        "2 of 24 rows of eXIAA took their attack image from the whole pool: the pool held no (labelled) "
        "image of the running-up class, which the paper's rule takes its attack images from" in table.notes
    )


def test_an_attack_asking_for_the_pool_is_not_a_fallback() -> None:
    frame = _robustness(attack_image_source="pool", attack_params=json.dumps({"attack_image_source": "pool"}))
    (table,) = robustness_tables(_suite(frame), seed=0, resamples=100)
    assert not any("whole pool" in note for note in table.notes)
    clean = _robustness(attack_image_source="class")
    (table,) = robustness_tables(_suite(clean), seed=0, resamples=100)
    assert not any("whole pool" in note for note in table.notes)


# --------------------------------------------------------------------------------------
# The manifest's convergence entry on the provenance part
# --------------------------------------------------------------------------------------


def test_convergence_records_accept_nested_and_flat_shapes() -> None:
    record = {"gate": 0.1, "param": "n_steps", "requested": 16, "chosen": 64, "converged": True,
              "trials": [{"n_steps": 16, "median_gap": 1.58}, {"n_steps": 64, "median_gap": 0.04}]}
    nested = convergence_records({"net": {"IG": record}})
    assert nested == [{"model": "net", "explainer": "IG", **record}]
    assert convergence_records([{"model": "net", "explainer": "IG", "n_steps": 64}])[0]["n_steps"] == 64
    assert convergence_records({"net|IG": record})[0]["explainer"] == "IG"
    assert convergence_records(None) == [] and convergence_records("junk") == []


def test_site_shows_the_manifests_convergence_entry(tmp_path: Path) -> None:
    folder = write_results(tmp_path / "r", images=2, explainers=("integrated_gradients",), examples=False)
    for path in (folder / "manifest.json", *sorted((folder / "runs").glob("*.json"))):
        manifest = json.loads(path.read_text())
        manifest["convergence"] = {"tiny_cnn": {"integrated_gradients": {
            "gate": 0.1, "param": "n_steps", "requested": 16, "chosen": 64, "converged": False,
            "trials": [{"n_steps": 16, "median_gap": 1.58}, {"n_steps": 64, "median_gap": 0.4}],
        }}}
        path.write_text(json.dumps(manifest))
    html = build_site([folder], tmp_path / "site", resamples=20).read_text(encoding="utf-8")
    assert "n_steps: 16 → 64" in html
    assert "<td>0.4</td>" in html and "<td>0.1</td>" in html
    assert "no: shown greyed, not ranked" in html
    assert "tried: n_steps 16 median_gap 1.58, n_steps 64 median_gap 0.4" in html
