"""The eXIAA claims E1–E4 and the model-size comparison from a results folder (docs/reproduction.md).

    python docs/examples/exiaa_claims.py RESULTS_DIR [--suite imagenet-lite-fragility] [--json OUT]

Reads the robustness rows (``xaibench.leaderboard.load.read_table``) and prints, per model ×
explainer, with 95 % bootstrap intervals over originals (each original's rows averaged first):

* E1: eXIAA's explanation change against the Gaussian baseline at the same α, top-k and
  attack images, as a paired per-original difference at the reference point, and the number
  of grid points where eXIAA is higher (and higher with an interval above 0);
* E2: explanation change along top-k (at the largest α) and along α (at the reference top-k),
  and the number of adjacent grid steps where it decreases;
* E3: SSIM of eXIAA and the baseline at the reference point, and the smallest SSIM over the grid;
* E4: the predicted class's confidence drop at the reference point and the largest over the grid;

each for all rows and split by ``attack_image_source`` (the attack image is of the running-up
class, or the most confident other pool image), and the per-model accuracy on the originals.

With ``--compare A B`` it also prints E5 (the paper's Table 1: ViT explanations more fragile,
ViT confidence less affected) for every explainer both models ran: the paired per-original
difference A − B (the same originals) of eXIAA's explanation change and confidence drop at the
reference point, and at how many grid points A's change is higher and A's drop lower.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import numpy as np
import pandas as pd

from xaibench.leaderboard.load import read_table
from xaibench.leaderboard.stats import bootstrap_mean

CHANGE, SSIM, DROP = "explanation_change_pct", "ssim", "confidence_drop_pct"
ATTACK, BASELINE = "exiaa", "gaussian_noise"


def interval(values: Any, key: str) -> dict[str, float]:
    estimate = bootstrap_mean(np.asarray(values, dtype=float), key=key, resamples=2000)
    return {"mean": estimate.mean, "low": estimate.low, "high": estimate.high, "n": estimate.n}


def text(e: dict[str, float], digits: int = 1) -> str:
    if not np.isfinite(e["mean"]):
        return "–"
    return f"{e['mean']:.{digits}f} [{e['low']:.{digits}f}, {e['high']:.{digits}f}] (n={e['n']})"


def per_original(rows: pd.DataFrame, metric: str) -> pd.Series:
    return rows.groupby("image_id")[metric].mean()


def paired(rows: pd.DataFrame, metric: str) -> pd.Series:
    """eXIAA minus the baseline per original (same attack images and grid point)."""
    a = per_original(rows[rows["attack_name"] == ATTACK], metric)
    b = per_original(rows[rows["attack_name"] == BASELINE], metric)
    return (a - b).dropna()


def grid_counts(rows: pd.DataFrame, key: str) -> dict[str, int]:
    higher = significant = points = 0
    for point, group in rows.groupby(["alpha", "topk"]):
        difference = paired(group, CHANGE)
        if difference.empty:
            continue
        points += 1
        e = interval(difference, f"{key}|{point}")
        higher += e["mean"] > 0
        significant += e["low"] > 0
    return {"points": points, "exiaa_higher": higher, "exiaa_higher_ci": significant}


def curve(rows: pd.DataFrame, axis: str) -> list[tuple[float, float]]:
    means = rows[rows["attack_name"] == ATTACK].groupby(axis)[CHANGE].mean()
    return [(float(k), float(v)) for k, v in means.items()]


def decreases(rows: pd.DataFrame) -> int:
    """Adjacent grid steps (in α or in top-k) where eXIAA's mean change goes down."""
    table = rows[rows["attack_name"] == ATTACK].groupby(["alpha", "topk"])[CHANGE].mean().unstack()
    values = table.to_numpy()
    return int((np.diff(values, axis=0) < 0).sum() + (np.diff(values, axis=1) < 0).sum())


def claims(rows: pd.DataFrame, key: str, reference: dict[str, float]) -> dict[str, Any]:
    at = rows[np.isclose(rows["alpha"], reference["alpha"]) & np.isclose(rows["topk"], reference["topk"])]
    exiaa, base = at[at["attack_name"] == ATTACK], at[at["attack_name"] == BASELINE]
    largest = rows[np.isclose(rows["alpha"], rows["alpha"].max())]
    at_topk = rows[np.isclose(rows["topk"], reference["topk"])]
    grid_means = rows[rows["attack_name"] == ATTACK].groupby(["alpha", "topk"])
    return {
        "E1": {
            "exiaa": interval(per_original(exiaa, CHANGE), f"{key}|e1a"),
            "baseline": interval(per_original(base, CHANGE), f"{key}|e1b"),
            "difference": interval(paired(at, CHANGE), f"{key}|e1d"),
            **grid_counts(rows, key),
        },
        "E2": {"along_topk": curve(largest, "topk"), "along_alpha": curve(at_topk, "alpha"), "decreasing_steps": decreases(rows)},
        "E3": {
            "exiaa": interval(per_original(exiaa, SSIM), f"{key}|e3a"),
            "baseline": interval(per_original(base, SSIM), f"{key}|e3b"),
            "min_over_grid": float(grid_means[SSIM].mean().min()),
        },
        "E4": {
            "exiaa": interval(per_original(exiaa, DROP), f"{key}|e4a"),
            "baseline": interval(per_original(base, DROP), f"{key}|e4b"),
            "max_over_grid": float(grid_means[DROP].mean().max()),
        },
    }


def report(frame: pd.DataFrame, reference: dict[str, float]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for (model, explainer), rows in frame.groupby(["model", "explainer"]):
        originals = rows.drop_duplicates("image_id")
        entry = {
            "originals": int(len(originals)),
            "accuracy": float((originals["predicted_class"] == originals["label"]).mean()),
            "grid": f"{rows['alpha'].nunique()} α × {rows['topk'].nunique()} top-k",
            "all": claims(rows, f"{model}|{explainer}|all", reference),
        }
        for source, part in rows.groupby("attack_image_source"):
            entry[str(source)] = claims(part, f"{model}|{explainer}|{source}", reference)
        out[f"{model} × {explainer}"] = entry
    return out


def _model_difference(rows: pd.DataFrame, a: str, b: str, metric: str) -> pd.Series:
    exiaa = rows[rows["attack_name"] == ATTACK]
    first = per_original(exiaa[exiaa["model"] == a], metric)
    second = per_original(exiaa[exiaa["model"] == b], metric)
    return (first - second).dropna()


def compare_models(frame: pd.DataFrame, a: str, b: str, reference: dict[str, float]) -> dict[str, Any]:
    """E5 per explainer: model ``a`` minus model ``b`` on the same originals (eXIAA rows)."""
    out: dict[str, Any] = {}
    shared = set(frame[frame["model"] == a]["explainer"]) & set(frame[frame["model"] == b]["explainer"])
    for explainer in sorted(shared):
        rows = frame[(frame["explainer"] == explainer) & frame["model"].isin([a, b])]
        at = rows[np.isclose(rows["alpha"], reference["alpha"]) & np.isclose(rows["topk"], reference["topk"])]
        exiaa = at[at["attack_name"] == ATTACK]
        points = change_higher = drop_lower = 0
        for _, group in rows.groupby(["alpha", "topk"]):
            change, drop = _model_difference(group, a, b, CHANGE), _model_difference(group, a, b, DROP)
            if change.empty:
                continue
            points += 1
            change_higher += change.mean() > 0
            drop_lower += drop.mean() < 0
        key = f"E5|{a}|{b}|{explainer}"
        out[explainer] = {
            "change": {m: interval(per_original(exiaa[exiaa["model"] == m], CHANGE), f"{key}|c{m}") for m in (a, b)},
            "drop": {m: interval(per_original(exiaa[exiaa["model"] == m], DROP), f"{key}|d{m}") for m in (a, b)},
            "change_difference": interval(_model_difference(at, a, b, CHANGE), f"{key}|cd"),
            "drop_difference": interval(_model_difference(at, a, b, DROP), f"{key}|dd"),
            "points": points, "change_higher": int(change_higher), "drop_lower": int(drop_lower),
        }
    return out


def show_comparison(result: dict[str, Any], a: str, b: str) -> None:
    print(f"\n## E5: {a} − {b} (eXIAA, paired over the same originals)")
    for explainer, c in result.items():
        print(f"  {explainer}: change {text(c['change'][a])} vs {text(c['change'][b])}, diff {text(c['change_difference'], 2)}; "
              f"drop {text(c['drop'][a], 2)} vs {text(c['drop'][b], 2)} pp, diff {text(c['drop_difference'], 2)}; "
              f"{a} change higher at {c['change_higher']}/{c['points']} points, drop lower at {c['drop_lower']}/{c['points']}")


def show(result: dict[str, Any]) -> None:
    for pair, entry in result.items():
        print(f"\n## {pair}: {entry['originals']} originals, accuracy {entry['accuracy']:.2f}, {entry['grid']}")
        for group in ("all", "class", "pool"):
            if group not in entry:
                continue
            c = entry[group]
            print(f"  [{group}] E1 change eXIAA {text(c['E1']['exiaa'])} vs Gaussian {text(c['E1']['baseline'])}; "
                  f"paired diff {text(c['E1']['difference'], 2)}; eXIAA higher at {c['E1']['exiaa_higher']}/{c['E1']['points']} "
                  f"points ({c['E1']['exiaa_higher_ci']} with CI > 0)")
            print(f"  [{group}] E2 along top-k (largest α): {', '.join(f'{k:g}:{v:.1f}' for k, v in c['E2']['along_topk'])}; "
                  f"along α: {', '.join(f'{k:g}:{v:.1f}' for k, v in c['E2']['along_alpha'])}; decreasing steps {c['E2']['decreasing_steps']}")
            print(f"  [{group}] E3 SSIM eXIAA {text(c['E3']['exiaa'], 3)} vs Gaussian {text(c['E3']['baseline'], 3)}; min over grid {c['E3']['min_over_grid']:.3f}")
            print(f"  [{group}] E4 conf. drop eXIAA {text(c['E4']['exiaa'], 2)} vs Gaussian {text(c['E4']['baseline'], 2)} pp; max over grid {c['E4']['max_over_grid']:.2f}")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+")
    parser.add_argument("--suite", default=None, help="only this suite's rows")
    parser.add_argument("--alpha", type=float, default=0.15)
    parser.add_argument("--topk", type=float, default=0.2)
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    parser.add_argument("--compare", nargs=2, metavar=("A", "B"), default=None, help="E5: model A against model B")
    args = parser.parse_args(argv)
    frame = pd.concat([read_table(folder, "robustness") for folder in args.results], ignore_index=True)
    if args.suite:
        frame = frame[frame["suite"] == args.suite]
    reference = {"alpha": args.alpha, "topk": args.topk}
    result = report(frame, reference)
    show(result)
    if args.compare:
        result["E5"] = compare_models(frame, *args.compare, reference)
        show_comparison(result["E5"], *args.compare)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=1, default=float)


if __name__ == "__main__":
    main(sys.argv[1:])
