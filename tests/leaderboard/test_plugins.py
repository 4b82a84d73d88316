"""The leaderboard renders from the results and the plugin metadata the runs recorded: a
third-party attack and metric appear exactly like the built-in ones, results without
metadata fall back on the rows, and no built-in plugin is named in the leaderboard's code."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pandas as pd
import pytest

import xaibench.leaderboard as leaderboard_package
from xaibench.leaderboard import build_leaderboard, build_site, load_results
from xaibench.leaderboard.gallery import suite_figures
from xaibench.leaderboard.load import restore_labels
from xaibench.leaderboard.meta import RERUN
from xaibench.leaderboard.tables import UNRANKED

from .synthetic import write_results

THIRD_PARTY = ("explanation_change_pct", "ssim", "confidence_drop_pct", "mymetric")
BUILTIN_NAMES = {
    "exiaa", "gaussian_noise", "explanation_change_pct", "confidence_drop_pct", "ssim", "prediction_flipped",
    "topk_intersection", "rank_correlation", "saliency", "integrated_gradients", "smoothgrad", "deeplift",
    "deeplift_shap", "attexplore", "agi", "insertion", "deletion", "infidelity", "mif_lif_area", "alpha",
    "topk", "topks", "alphas",
}


@pytest.fixture(scope="module")
def third_party(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A suite whose first attack is the third-party "patches" (two axes of its own), then
    eXIAA and its baseline; the robustness metrics include the third-party "mymetric"."""
    return write_results(
        tmp_path_factory.mktemp("results") / "third", images=3,
        attacks=("patches", "exiaa", "gaussian_noise"), metrics=THIRD_PARTY,
    )


def _tables(folder: Path) -> dict[str, object]:
    board = build_leaderboard([folder], resamples=50)
    return {table.id: table for table in board.tables["synthetic"]}


def test_third_party_attack_and_metric_are_in_the_overview_like_the_builtins(third_party: Path) -> None:
    tables = _tables(third_party)
    robustness = [key for key in tables if key.startswith("robustness-")]
    assert robustness == ["robustness-patches", "robustness-exiaa"]  # suite order; the baseline beside eXIAA
    for attack, title, point in (("patches", "Patches", "patch_size = 8, n_patches = 3"),
                                 ("exiaa", "eXIAA", "α = 0.1, top-k = 0.2")):
        table = tables[f"robustness-{attack}"]
        columns = {c.key: c for c in table.columns}
        baseline = ["baseline:gaussian_noise"] if attack == "exiaa" else []
        assert [c.key for c in table.columns][3:-1] == [THIRD_PARTY[0], *baseline, *THIRD_PARTY[1:]]
        assert columns["mymetric"].title == f"{title}: my metric"
        assert columns["ssim"].title == f"{title}: SSIM"
        assert "higher is better for the explainer" in columns["mymetric"].tooltip
        assert point in table.caption and "ranked within each model by expl. change %" in table.caption
        rows = {row["explainer"].text: row for row in table.rows}
        assert rows["integrated_gradients"]["rank"].text == "1"
        assert rows["deeplift"]["rank"].text == UNRANKED
        for row in table.rows:
            assert not row["mymetric"].estimate.missing and row["mymetric"].text.count(".") == 1
            assert len(row["mymetric"].text.split(".")[1]) == 2  # the metric's recorded digits
    assert "Faithfulness under Patches" in [t.title for t in tables.values()]


def test_third_party_attack_gets_heatmaps_and_lines_of_every_metric(third_party: Path, tmp_path: Path) -> None:
    suite = load_results([third_party])[0]
    figures, notes = suite_figures(suite, tmp_path, seed=0, resamples=20)
    assert notes == []
    for metric, title in (("explanation_change_pct", "expl. change %"), ("ssim", "SSIM"), ("mymetric", "my metric")):
        for kind in ("heatmap", "lines"):
            found = [f for f in figures if f.kind == f"{kind}-{metric}"]
            assert len(found) == 2, (kind, metric)  # one per attack group: patches; eXIAA + baseline
            patches = next(f for f in found if "Patches" in f.caption)
            exiaa = next(f for f in found if "eXIAA" in f.caption)
            assert title in patches.title and title in exiaa.title
            assert (tmp_path / Path(patches.path).name).is_file()
        heatmap = next(f for f in figures if f.kind == f"heatmap-{metric}" and "Patches" in f.caption)
        assert "patch_size × n_patches" in heatmap.caption
        lines = next(f for f in figures if f.kind == f"lines-{metric}" and "eXIAA" in f.caption)
        assert "against top-k, a line per α" in lines.caption and "Gaussian noise dashed (baseline)" in lines.caption


def test_examples_show_the_third_party_grid_point_and_metric(third_party: Path, tmp_path: Path) -> None:
    html = build_site([third_party], tmp_path, resamples=20).read_text(encoding="utf-8")
    examples = [" ".join(t.split()) for t in re.findall(r'<div class="example">\s*<div class="muted">(.*?)</div>', html, re.S)]
    # Per model × explainer × attack (the baseline's would repeat eXIAA's originals): 3 × 2 × 2.
    assert len(examples) == 12
    patches = [t for t in examples if "Patches (patch_size = 8, n_patches = 3)" in t]
    exiaa = [t for t in examples if "eXIAA (α = 0.1, top-k = 0.2)" in t]
    assert len(patches) == len(exiaa) == 6 and not any("Gaussian noise" in t for t in examples)
    for text in examples:
        assert "expl. change % 12.5 · SSIM 0.981 · conf. drop pp 1.50 · my metric 0.75" in text


def test_one_axis_gives_lines_and_three_axes_hold_the_third_at_its_reference(tmp_path: Path) -> None:
    folder = write_results(tmp_path / "r", images=2, attacks=("blur", "tiles"), metrics=("explanation_change_pct",),
                           faithfulness=False, examples=False)
    suite = load_results([folder])[0]
    figures, _ = suite_figures(suite, tmp_path, seed=0, resamples=20)
    blur = [f for f in figures if "Blur" in f.caption]
    assert [f.kind for f in blur] == ["lines-explanation_change_pct"]
    assert "against σ" in blur[0].caption and "a line per" not in blur[0].caption
    tiles = [f for f in figures if "Tiles" in f.caption]
    assert {f.kind for f in tiles} == {"heatmap-explanation_change_pct", "lines-explanation_change_pct"}
    assert all("(angle at the reference point)" in f.caption for f in tiles)
    (table,) = [t for t in _tables(folder).values() if t.id == "robustness-tiles"]
    assert "size = 4, count = 2, angle = 90" in table.caption


def test_results_without_metadata_fall_back_on_the_rows(tmp_path: Path) -> None:
    folder = write_results(tmp_path / "old", images=3, recorded=False)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert "plugins" not in manifest
    tables = _tables(folder)
    table = tables["robustness-exiaa"]
    titles = [c.title for c in table.columns]
    assert "exiaa: explanation_change_pct" in titles and "exiaa: ssim" in titles  # labels as titles
    assert all(row["rank"].text in ("–", UNRANKED) for row in table.rows)  # no direction, no rank
    assert any(RERUN in note for note in table.notes)
    assert "alpha = 0.1, topk = 0.2" in table.caption  # the suite's reference, by column name
    faith = tables["faithfulness-clean"]  # directions from the rows' higher_is_better
    assert any(row["rank"].text == "1" for row in faith.rows)
    assert "insertion ↑" in [c.title for c in faith.columns]
    html = build_site([folder], tmp_path / "site", resamples=20).read_text(encoding="utf-8")
    assert f"no figure for exiaa: its results record no grid axes; {RERUN}" in html
    assert "(alpha = 0.1, topk = 0.2)" in html  # the examples' point still shows


def test_runs_that_disagree_on_metadata_get_a_note(tmp_path: Path) -> None:
    first = write_results(tmp_path / "a", seed=1, images=2, examples=False)
    second = write_results(tmp_path / "b", seed=2, images=2, examples=False)
    for path in (second / "manifest.json", *(second / "runs").glob("*.json")):
        manifest = json.loads(path.read_text())
        manifest["plugins"]["metrics"]["ssim"]["title"] = "structural similarity"
        path.write_text(json.dumps(manifest))
    suite = load_results([first, second])[0]
    assert suite.metric("ssim").title == "SSIM"
    assert any("runs disagree on the recorded title of metric 'ssim'" in note for note in suite.notes)


def _leaderboard_sources() -> list[Path]:
    return sorted(Path(leaderboard_package.__file__).parent.glob("*.py"))


def test_leaderboard_code_names_no_builtin_plugin_and_never_imports_the_registry() -> None:
    sources = _leaderboard_sources()
    assert len(sources) > 10
    for path in sources:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                assert node.value not in BUILTIN_NAMES, f"{path.name}:{node.lineno} names {node.value!r}"
            if isinstance(node, ast.ImportFrom):
                names = [node.module or "", *(a.name for a in node.names)]
                assert not any("registry" in n for n in names), f"{path.name}:{node.lineno} imports the registry"
            if isinstance(node, ast.Import):
                assert not any("registry" in a.name for a in node.names), f"{path.name} imports the registry"
        assert len(path.read_text(encoding="utf-8").splitlines()) <= 350, f"{path.name} is over 350 lines"


def test_exact_labels_in_the_files_stay_and_folder_names_are_restored(tmp_path: Path) -> None:
    folder = write_results(tmp_path / "r", models=("resnet/18",), explainers=("saliency",), images=2)
    frame = pd.DataFrame({"model": ["resnet/18", "resnet_18"], "explainer": ["saliency", "saliency"]})
    assert list(restore_labels(folder, frame)["model"]) == ["resnet/18", "resnet/18"]
