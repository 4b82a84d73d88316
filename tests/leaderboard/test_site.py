"""The static site and the markdown output, from synthetic and from real results folders."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from typer.testing import CliRunner

from xaibench.cli import app
from xaibench.leaderboard import build_leaderboard, build_site, load_results, render_markdown
from xaibench.leaderboard.grid import point_text
from xaibench.runner.results import partition_value

from .synthetic import write_results

HOSTILE_SUITE = "<script>alert(1)</script>"
HOSTILE_MODEL = 'net"&<>|'
HOSTILE_EXPLAINER = 'x" onmouseover="alert(2)'
HOSTILE_DESCRIPTION = "<img src=x onerror=alert(3)> | [click](javascript:alert(4))"
ASSET_NAME = re.compile(r"^[a-z0-9-]+\.(svg|png)$")


class References(HTMLParser):
    """Every src/href of a page, and the text of its <script> elements."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.scripts = 0
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "script":
            self.scripts += 1
        for name, value in attrs:
            if name in ("src", "href") and value is not None:
                self.links.append(value)


def parse(html: str) -> References:
    parser = References()
    parser.feed(html)
    return parser


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """Two runs of one suite (different seeds, overlapping images) and a folder of another suite."""
    root = tmp_path_factory.mktemp("results")
    first = write_results(root / "first", seed=1)
    second = write_results(root / "second", seed=2, image_offset=3, models=("tiny_cnn", "other net"))
    third = write_results(root / "third", suite="older", seed=3, explainers=("saliency",), examples=False)
    return first, second, third


@pytest.fixture(scope="module")
def site(two_runs: tuple[Path, Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    build_site(list(two_runs), out, resamples=200)
    return out


def test_index_references_only_files_that_exist(site: Path) -> None:
    html = (site / "index.html").read_text(encoding="utf-8")
    page = parse(html)
    local = [link for link in page.links if not link.startswith(("#", "data:"))]
    assert local, "the page shows no figures or images"
    for link in local:
        assert not re.match(r"^[a-z]+:", link), f"{link} is not a relative path (no network)"
        assert (site / link).is_file(), f"{link} is referenced but missing"
    assets = {p.name for p in (site / "assets").iterdir()}
    assert assets == {Path(link).name for link in local}, "assets folder holds unreferenced files"
    assert all(ASSET_NAME.match(name) for name in assets)
    assert "http://" not in html and "https://" not in html
    assert page.scripts == 1  # the inline sort script, nothing loaded


def test_suites_from_two_folders_are_merged(site: Path, two_runs: tuple[Path, Path, Path]) -> None:
    html = (site / "index.html").read_text(encoding="utf-8")
    assert html.count('<section class="suite"') == 2  # "synthetic" (merged) and "older"
    for run_id in ("20260101T000000Z-000001", "20260101T000000Z-000002", "20260101T000000Z-000003"):
        assert run_id in html
    for folder in two_runs:
        assert str(folder) in html
    synthetic = load_results(list(two_runs))[0]
    assert synthetic.name == "synthetic"
    assert synthetic.robustness["results_dir"].nunique() == 2
    assert synthetic.robustness.query("model == 'tiny_cnn'")["image_id"].nunique() == 8
    figures = [link for link in parse(html).links if link.endswith(".svg")]
    assert any("heatmap" in f for f in figures) and any("curves" in f for f in figures)
    assert any("lines-ssim" in f for f in figures) and any("lines-confidence" in f for f in figures)
    # 3 explainers each: tiny_cnn shows 3 examples (--examples default), other net has 2 stored.
    assert html.count('class="example"') == 3 * 3 + 3 * 2
    assert "No examples were stored" in html  # the third folder has no examples table


def test_same_folder_twice_counts_each_unit_once(two_runs: tuple[Path, Path, Path]) -> None:
    once = load_results([two_runs[0]])[0]
    twice = load_results([two_runs[0], two_runs[0]])[0]
    assert len(twice.robustness) == len(once.robustness)
    assert any("more than one results folder" in note for note in twice.notes)


def test_labels_come_back_from_the_manifest(tmp_path: Path) -> None:
    folder = write_results(tmp_path / "r", models=("resnet/18",), explainers=("saliency",), images=2)
    assert (folder / "robustness" / "suite=synthetic" / f"model={partition_value('resnet/18')}").is_dir()
    suite = load_results([folder])[0]
    for table in (suite.robustness, suite.faithfulness, suite.examples):
        assert set(table["model"]) == {"resnet/18"}


def test_hostile_names_are_escaped(tmp_path: Path) -> None:
    folder = write_results(
        tmp_path / "hostile", suite=HOSTILE_SUITE, models=(HOSTILE_MODEL,),
        explainers=(HOSTILE_EXPLAINER, "deeplift"), images=3, description=HOSTILE_DESCRIPTION,
        encode_folders=True,
    )
    suite = load_results([folder])[0]
    assert suite.name == HOSTILE_SUITE and set(suite.robustness["model"]) == {HOSTILE_MODEL}
    out = tmp_path / "site"
    build_site([folder], out, resamples=50)
    html = (out / "index.html").read_text(encoding="utf-8")
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img src=x" not in html and "onerror=alert" not in html.replace("onerror=alert(3)&gt;", "")
    assert 'onmouseover="alert' not in html
    assert "net&#34;&amp;&lt;&gt;|" in html
    page = parse(html)
    assert page.scripts == 1
    for tag, attrs in page.tags:
        assert not any(name.startswith("on") for name in attrs), f"event handler on <{tag}>"
    for path in (out / "assets").rglob("*"):
        assert path.parent == out / "assets" and ASSET_NAME.match(path.name), path

    markdown = render_markdown(build_leaderboard([folder], resamples=50))
    assert "<script>" not in markdown and "<img" not in markdown
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in markdown
    assert "](javascript" not in markdown
    # A '|' in a name does not add a cell: every line of a table has the header's cell count.
    tables: list[list[str]] = [[]]
    for line in markdown.splitlines():
        if line.startswith("|"):
            tables[-1].append(line)
        elif tables[-1]:
            tables.append([])
    tables = [t for t in tables if t]
    assert tables and any("net" in line for t in tables for line in t)
    for table in tables:
        assert len({len(re.findall(r"(?<!\\)\|", line)) for line in table}) == 1, table


def test_cli_markdown_prints_the_overview(two_runs: tuple[Path, Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "not-written"
    result = CliRunner().invoke(
        app, ["leaderboard", str(two_runs[0]), str(two_runs[1]), "--format", "markdown",
              "--out", str(out), "--resamples", "100"],
    )
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "## Suite synthetic" in text
    assert "### Robustness to eXIAA" in text and "### Faithfulness" in text
    assert "| rank | model | explainer | eXIAA: expl. change % |" in text
    assert re.search(r"^\| 1 \| tiny_cnn \| integrated_gradients \| [0-9.]+ \[[0-9.]+, [0-9.]+\] \|", text, re.M)
    assert "deeplift ⚠" in text and "DeepLIFT rules not exact for this model" in text
    assert not out.exists()


def test_cli_builds_a_site_and_rejects_a_bad_format(two_runs: tuple[Path, Path, Path], tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["leaderboard", str(two_runs[2]), "--out", str(tmp_path), "--resamples", "50"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "index.html").is_file()
    bad = CliRunner().invoke(app, ["leaderboard", str(two_runs[2]), "--format", "pdf"])
    assert bad.exit_code != 0


def test_real_runs_with_two_seeds(tmp_path: Path) -> None:
    """``xaibench run`` twice (another seed each time), then one leaderboard over both."""
    runner = CliRunner()
    folders = []
    for seed in (0, 1):
        folder = tmp_path / f"run-{seed}"
        result = runner.invoke(app, [
            "run", "--suite", "digits-fragility", "--out", str(folder), "--limit", "3",
            "--seed", str(seed), "--device", "cpu",
        ])
        assert result.exit_code == 0, result.output
        folders.append(folder)
    out = tmp_path / "site"
    build_site(folders, out, resamples=200)
    html = (out / "index.html").read_text(encoding="utf-8")
    assert html.count('<section class="suite"') == 1
    for link in parse(html).links:
        if not link.startswith(("#", "data:")):
            assert (out / link).is_file(), link
    suite = load_results(folders)[0]
    assert sorted(suite.robustness["seed"].unique()) == [0, 1]
    assert {run.seed for run in suite.runs} == {0, 1}
    assert all(run.from_manifest and run.models for run in suite.runs)
    assert suite.reference == {"alpha": 0.15, "topk": 0.2}
    # The point as the attack names its axes (its recorded axis_titles: "α = 0.15, top-k = 0.2"),
    # else by their column names.
    assert point_text(suite.reference, suite.attack("exiaa").axis_titles) in html


def test_parts_without_a_manifest_keep_their_own_provenance(tmp_path: Path) -> None:
    folder = write_results(tmp_path / "copied", seed=7, images=2, manifest=False, examples=False)
    suite = load_results([folder])[0]
    (run,) = suite.runs
    assert not run.from_manifest and run.seed == 7
    assert run.environment["device"] == "cpu" and run.models == {"tiny_cnn": "synthetic weights of tiny_cnn"}
    assert suite.reference_source == "largest grid point"
    out = tmp_path / "site"
    build_site([folder], out, resamples=20)
    html = (out / "index.html").read_text(encoding="utf-8")
    assert "no manifest for this run" in html and "No examples were stored" in html
