"""Config errors are reported before any work: file, key, what was expected; exit ≠ 0."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from xaibench import cli

GOOD = """
[suite]
name = "t"
seed = 0

[dataset]
name = "digits"
limit = 2

[[models]]
name = "digits_cnn"

[[explainers]]
name = "saliency"

[[attacks]]
name = "exiaa"
alphas = [0.1]
topks = [0.2]
n_attack_images = 1
"""


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    old = sys.argv
    sys.argv = ["xaibench", *argv]
    try:
        cli.main()
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:
        sys.argv = old
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def write_suite(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "suite.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (GOOD.replace("seed = 0", "seed = 0\nsed = 1"), ["[suite]", "unknown key 'sed'"]),
        (GOOD.replace("alphas = [0.1]", "alphas = [1.5]"), ["[attacks[0]]", "alphas", "(0, 1)"]),
        (GOOD.replace("alphas = [0.1]", "alphas = [0.0]"), ["[attacks[0]]", "alphas"]),
        (GOOD.replace("topks = [0.2]", "topks = [1.2]"), ["[attacks[0]]", "topks", "(0, 1]"]),
        (GOOD.replace('name = "exiaa"', 'name = "exiia"'), ["[attacks[0].name]", "unknown attack 'exiia'", "Did you mean 'exiaa'"]),
        (GOOD.replace('name = "saliency"', 'name = "saliency"\nabsolute = true'), ["[explainers[0]]", "unknown parameter 'absolute'", "Did you mean 'abs'"]),
        (GOOD.replace("[[models]]", "[[modells]]"), ["[top level]", "unknown key 'modells'"]),
        (GOOD.replace("seed = 0", 'seed = "zero"'), ["[suite.seed]", "expected an integer"]),
        (GOOD.replace('name = "saliency"', 'name = "integrated_gradients"\nmethod = "simpson"'), ["[explainers[0]]", "simpson", "gausslegendre"]),
        (GOOD.replace("limit = 2", "limit = 2\nmetrics = ['ssim']"), ["[dataset]", "'metrics' is a top-level key"]),
        (GOOD.replace("n_attack_images = 1", "n_attack_images = 1\nmetrics = ['ssim']"), ["[attacks[0]]", "'metrics' is a top-level key"]),
        (GOOD + "\n[[attacks]]\nname = 'exiaa'\nalphas=[0.1]\ntopks=[0.2]\n", ["two attacks are both called 'exiaa'"]),
    ],
)
def test_config_errors_name_file_key_and_expectation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, expected: list[str]
) -> None:
    path = write_suite(tmp_path, text)
    out_dir = tmp_path / "out"
    code, _, err = run_cli(["run", "--suite", str(path), "--out", str(out_dir)], capsys)
    assert code == 2
    assert str(path) in err
    for fragment in expected:
        assert fragment in err, (fragment, err)
    assert "Traceback" not in err
    assert not out_dir.exists(), "a config error must be raised before any work"


def test_debug_shows_the_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_suite(tmp_path, GOOD.replace("alphas = [0.1]", "alphas = [2.0]"))
    from xaibench.errors import ConfigError

    with pytest.raises(ConfigError):
        run_cli(["--debug", "run", "--suite", str(path), "--out", str(tmp_path / "o")], capsys)


def test_unknown_builtin_suite_suggests_a_close_match(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["run", "--suite", "quikstart"], capsys)
    assert code == 2
    assert "Did you mean 'quickstart'" in err


def test_imagenet_fragility_offline_fails_fast_and_names_what_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("XAIBENCH_IMAGENET", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.perf_counter()
    code, _, err = run_cli(["run", "--suite", "imagenet-fragility", "--out", str(tmp_path / "o")], capsys)
    elapsed = time.perf_counter() - started
    assert code == 2
    for fragment in ("resnet18", "vit_b16", "imagenet", "XAIBENCH_IMAGENET", "xaibench run --suite quickstart", "nothing was computed",
                     "--model efficientnet_lite0"):
        assert fragment in err, (fragment, err)
    assert not list((tmp_path / "o").rglob("part-*.parquet"))
    # "Never hangs": generous bound, this is a hang detector, not a speed assertion.
    assert elapsed < 120


def test_list_prints_parameters_and_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["list", "attacks"], capsys)
    assert code == 0
    assert "exiaa" in out and "gaussian_noise" in out
    assert "n_attack_images" in out and "= 3" in out
    code, out, _ = run_cli(["list"], capsys)
    for kind in ("models", "datasets", "explainers", "attacks", "metrics", "suites"):
        assert kind in out
    assert "efficientnet_lite0" in out and "quickstart" in out


def test_show_prints_the_manifest_and_the_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_suite(tmp_path, GOOD)
    out_dir = tmp_path / "out"
    code, out, err = run_cli(["run", "--suite", str(path), "--out", str(out_dir)], capsys)
    assert code == 0, err
    assert "8 rows written" in out or "rows written" in out
    code, out, _ = run_cli(["show", str(out_dir)], capsys)
    assert code == 0
    assert "digits_cnn" in out and "weights from trained on scikit-learn digits" in out
    assert "rows in" in out and "exiaa" in out and "SSIM" in out
    code, _, err = run_cli(["show", str(tmp_path / "nowhere")], capsys)
    assert code == 2 and "does not exist" in err


def test_a_whole_number_written_as_a_float_reaches_the_plugin_as_an_int(tmp_path: Path) -> None:
    """``n_steps = 8.0`` is 8 everywhere (the plugin, the rows, the unit id); ``8.5`` is refused."""
    from xaibench.errors import ConfigError
    from xaibench.runner.suite import load_suite

    ig = '[[explainers]]\nname = "integrated_gradients"\nn_steps = 8.0\n\n[[attacks]]'
    suite = load_suite(str(write_suite(tmp_path, GOOD.replace("[[attacks]]", ig))))
    (steps,) = [s.params["n_steps"] for s in suite.explainers if s.name == "integrated_gradients"]
    assert steps == 8 and type(steps) is int
    with pytest.raises(ConfigError, match="n_steps"):
        load_suite(str(write_suite(tmp_path, GOOD.replace("[[attacks]]", ig.replace("8.0", "8.5")))))
