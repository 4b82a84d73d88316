"""A unit's identity includes the code of every plugin that computes it: editing a plugin's
source recomputes its units instead of resuming stale rows, and the manifest says which
distribution, version and file computed each plugin's rows."""

from __future__ import annotations

import importlib.util
import sys
import textwrap
from pathlib import Path

import pytest

from xaibench.runner import build_plan, run_plan
from xaibench.runner.results import read_results
from xaibench.runner.suite import load_suite

PLUGIN = '''
"""A throw-away metric: the mean absolute change of the explanation."""
from xaibench.registry import metrics
from xaibench.types import Metric


@metrics.register("mean_abs_change_for_identity_test")
class MeanAbsChange(Metric):
    title = "mean |Δa|"
    higher_is_better = False
    needs = ("expl_original", "expl_corrupted")

    def __call__(self, expl_original, expl_corrupted):
        return (expl_corrupted - expl_original).abs().flatten(1).mean(dim=1)
'''

SUITE = """
metrics = ["mean_abs_change_for_identity_test"]

[suite]
name = "identity"
device = "cpu"
batch_size = 4

[dataset]
name = "digits"
limit = 2

[[models]]
name = "digits_cnn"
epochs = 3

[[explainers]]
name = "saliency"

[[attacks]]
name = "exiaa"
alphas = [0.1]
topks = [0.2]
n_attack_images = 1
"""


@pytest.fixture(scope="module")
def plugin_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("plugin") / "identity_test_metric.py"
    path.write_text(textwrap.dedent(PLUGIN))
    spec = importlib.util.spec_from_file_location("identity_test_metric", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["identity_test_metric"] = module
    spec.loader.exec_module(module)
    return path


def test_editing_a_plugin_recomputes_its_units(plugin_file: Path, tmp_path: Path) -> None:
    suite_path = tmp_path / "suite.toml"
    suite_path.write_text(SUITE)
    out = tmp_path / "out"
    first = run_plan(build_plan(load_suite(str(suite_path)), out))
    assert first.units_done == 1
    record = first.manifest["plugins"]["metrics"]["mean_abs_change_for_identity_test"]
    assert record["title"] == "mean |Δa|" and record["higher_is_better"] is False
    assert record["distribution"] == "identity_test_metric" and len(record["code_sha256"]) == 64

    unchanged = build_plan(load_suite(str(suite_path)), out)
    assert unchanged.count("existing") == 1 and unchanged.count("pending") == 0

    # A fix in the plugin's file (here only a comment, the runner cannot tell): recompute.
    plugin_file.write_text(plugin_file.read_text() + "\n# fixed the metric\n")
    edited = build_plan(load_suite(str(suite_path)), out)
    assert edited.count("pending") == 1 and edited.count("existing") == 0
    assert edited.plugins["metrics"]["mean_abs_change_for_identity_test"]["code_sha256"] != record["code_sha256"]


def test_one_model_and_one_explainer_under_two_labels_each_keep_their_rows(tmp_path: Path) -> None:
    """The label is part of a unit's identity: two labels of the same settings are two sets of
    rows, not one set written twice and the other reported as resumed."""
    suite_path = tmp_path / "suite.toml"
    text = SUITE.replace('metrics = ["mean_abs_change_for_identity_test"]', 'metrics = ["explanation_change_pct"]')
    text = text.replace('[[models]]\nname = "digits_cnn"\nepochs = 3\n',
                        '[[models]]\nname = "digits_cnn"\nepochs = 3\nlabel = "m1"\n\n'
                        '[[models]]\nname = "digits_cnn"\nepochs = 3\nlabel = "m2"\n')
    text = text.replace('[[explainers]]\nname = "saliency"\n',
                        '[[explainers]]\nname = "saliency"\nlabel = "A"\n\n[[explainers]]\nname = "saliency"\nlabel = "B"\n')
    suite_path.write_text(text)
    report = run_plan(build_plan(load_suite(str(suite_path)), tmp_path / "out"))
    assert report.units_done == 4 and report.units_existing == 0
    rows = read_results(tmp_path / "out")
    counts = rows.groupby(["model", "explainer"]).size()
    assert sorted(counts.index) == [("m1", "A"), ("m1", "B"), ("m2", "A"), ("m2", "B")]
    assert counts.nunique() == 1
