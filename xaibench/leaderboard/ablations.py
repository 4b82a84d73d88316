"""Ablations of an attack that takes images from other classes (rows with
``source_class_rank`` / ``attack_image_rank``, docs/attacks.md): the source class's rank, and the attack images' rank, each compared paired by
image on the suite's ranked robustness metric, averaged over the attack's whole grid."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from .flags import nonfinite_notes, undefined_notes
from .meta import MetricInfo
from .robustness import lead_metric
from .stats import Estimate, bootstrap_mean
from .tables import Cell, Column, Table, estimate_cells, text_cell


def _paired(first: pd.Series, second: pd.Series, *, seed: int, resamples: int, key: str) -> Estimate:
    joined = pd.concat([first.rename("a"), second.rename("b")], axis=1).dropna()
    return bootstrap_mean((joined["a"] - joined["b"]).to_numpy(), seed=seed, resamples=resamples, key=key)


def _ablation_metric(suite: Any, frame: pd.DataFrame, metric: str | None) -> MetricInfo | None:
    if metric is not None:
        return suite.metric(metric) if metric in frame.columns else None
    metrics = suite.plugins.robustness_metrics(frame.columns)
    return lead_metric(metrics) if metrics else None


def _notes(frame: pd.DataFrame, metric: MetricInfo) -> list[str]:
    return nonfinite_notes(frame) + undefined_notes(frame, metric.label, metric.title)


def _multi_class_attacks(frame: pd.DataFrame) -> list[Any]:
    return [
        a for a, g in frame.groupby("attack", sort=False)
        if g["source_class_rank"].nunique() > 1 and (g["source_class_rank"] == 1).any()
    ]


def _class_rank_row(suite: Any, attack: Any, key: tuple[Any, Any], group: pd.DataFrame, ranks_all: list[int],
                    metric: MetricInfo, seed: int, resamples: int) -> dict[str, Cell]:
    model, explainer = key
    per = group.groupby(["source_class_rank", "image_id"])[metric.label].mean()
    means = {int(r): float(per.loc[r].mean()) for r in per.index.get_level_values(0).unique()}
    row = {
        "model": text_cell(str(model)), "explainer": text_cell(str(explainer)),
        "attack": text_cell(suite.attack(str(attack)).title),
    }
    estimates = [
        bootstrap_mean(per.loc[r].to_numpy() if r in means else np.array([]), seed=seed, resamples=resamples,
                       key=f"{suite.name}|ablation|{attack}|{model}|{explainer}|{r}")
        for r in ranks_all
    ]
    for r, cell in zip(ranks_all, estimate_cells(estimates, metric.digits), strict=True):
        row[f"rank:{r}"] = cell
    others = group[group["source_class_rank"] != 1].groupby("image_id")[metric.label].mean()
    difference = _paired(per.loc[1], others, seed=seed, resamples=resamples,
                         key=f"{suite.name}|ablation-diff|{attack}|{model}|{explainer}")
    row["difference"] = estimate_cells([difference], metric.digits)[0]
    order = sorted(means, key=lambda r: -means[r])
    row["position"] = Cell(f"{order.index(1) + 1} of {len(order)}", sort=order.index(1) + 1)
    return row


def _class_rank_columns(ranks_all: list[int], metric: MetricInfo) -> list[Column]:
    columns = [
        Column("model", "model", numeric=False),
        Column("explainer", "explainer", numeric=False),
        Column("attack", "attack", numeric=False),
    ]
    columns += [Column(f"rank:{r}", "running-up (1)" if r == 1 else f"class rank {r}",
                       f"mean {metric.title} injecting from the class ranked {r} after the predicted one") for r in ranks_all]
    return columns + [
        Column("difference", "running-up − others", "paired per image: running-up minus the mean of the other ranks; 95 % interval"),
        Column("position", "running-up's place", f"1 = the running-up class gives the largest {metric.title}"),
    ]


def source_class_table(suite: Any, frame: pd.DataFrame, metric: MetricInfo, seed: int, resamples: int) -> Table | None:
    """The running-up class (rank 1) against every other source-class rank, paired by image."""
    multi = _multi_class_attacks(frame)
    ranks_all = sorted({int(r) for a in multi for r in frame.loc[frame["attack"] == a, "source_class_rank"].dropna()})
    rows = [
        _class_rank_row(suite, attack, key, group, ranks_all, metric, seed, resamples)
        for attack in multi
        for key, group in frame[frame["attack"] == attack].groupby(["model", "explainer"], sort=False)
    ]
    if not rows:
        return None
    return Table(
        id="ablation-source-class",
        title="Ablation: running-up class vs other classes",
        caption=(
            f"Mean {metric.title} over the attack's whole grid when the injected images come from "
            "the running-up class (rank 1, the attack's own rule) or from the class of another "
            "rank. 95 % bootstrap intervals over images."
        ),
        columns=_class_rank_columns(ranks_all, metric),
        rows=rows,
        notes=_notes(frame[frame["attack"].isin(multi)], metric),
    )


def _image_rank_pairs(frame: pd.DataFrame) -> list[tuple[str, str]]:
    """(attack with the most confident images, the same attack skipping them)."""
    params = frame.drop_duplicates("attack")[["attack", "attack_params"]]
    described = {str(r.attack): json.loads(r.attack_params or "{}") for r in params.itertuples(index=False)}
    pairs = []
    for attack, p in described.items():
        if int(p.get("first_attack_image", 0)) <= 0:
            continue
        rest = {k: v for k, v in p.items() if k != "first_attack_image"}
        for other, q in described.items():
            same = {k: v for k, v in q.items() if k != "first_attack_image"} == rest
            if other != attack and same and int(q.get("first_attack_image", 0)) == 0:
                pairs.append((other, attack))
                break
    return pairs


def _images_text(suite: Any, attack: str, rows: pd.DataFrame) -> str:
    title = suite.attack(attack).title
    if rows.empty:
        return title
    ranks = rows["attack_image_rank"]
    return f"{title} (images {int(ranks.min()) + 1}–{int(ranks.max()) + 1})"


def _image_rank_rows(suite: Any, frame: pd.DataFrame, top: str, low: str, metric: MetricInfo,
                     seed: int, resamples: int) -> list[dict[str, Cell]]:
    first, second = frame[frame["attack"] == top], frame[frame["attack"] == low]
    rows = []
    for (model, explainer), group in first.groupby(["model", "explainer"], sort=False):
        other = second[(second["model"] == model) & (second["explainer"] == explainer)]
        a = group.groupby("image_id")[metric.label].mean()
        b = other.groupby("image_id")[metric.label].mean()
        key = f"{model}|{explainer}"
        cells = estimate_cells([
            bootstrap_mean(a.to_numpy(), seed=seed, resamples=resamples, key=f"{suite.name}|imgrank|{top}|{key}"),
            bootstrap_mean(b.to_numpy(), seed=seed, resamples=resamples, key=f"{suite.name}|imgrank|{low}|{key}"),
            _paired(a, b, seed=seed, resamples=resamples, key=f"{suite.name}|imgrank-diff|{top}|{low}|{key}"),
        ], metric.digits)
        rows.append({
            "model": text_cell(str(model)), "explainer": text_cell(str(explainer)),
            "top": text_cell(_images_text(suite, top, group)), "top_value": cells[0],
            "low": text_cell(_images_text(suite, low, other)), "low_value": cells[1],
            "difference": cells[2],
        })
    return rows


def image_rank_table(suite: Any, frame: pd.DataFrame, metric: MetricInfo, seed: int, resamples: int) -> Table | None:
    """The most confident attack images against lower-ranked ones of the same attack."""
    pairs = _image_rank_pairs(frame)
    rows = [row for top, low in pairs for row in _image_rank_rows(suite, frame, top, low, metric, seed, resamples)]
    if not rows:
        return None
    return Table(
        id="ablation-attack-image-rank",
        title="Ablation: most confident vs lower-ranked attack images",
        caption=(
            f"Mean {metric.title} over the attack's whole grid with the most confident attack "
            "images of the running-up class and with lower-ranked ones; the difference is paired "
            "per image, with a 95 % interval."
        ),
        columns=[
            Column("model", "model", numeric=False),
            Column("explainer", "explainer", numeric=False),
            Column("top", "top-ranked images", numeric=False),
            Column("top_value", metric.title),
            Column("low", "lower-ranked images", numeric=False),
            Column("low_value", metric.title),
            Column("difference", "top − lower", "paired per image; 95 % interval"),
        ],
        rows=rows,
        notes=_notes(frame[frame["attack"].isin({a for pair in pairs for a in pair})], metric),
    )


def ablation_tables(suite: Any, *, seed: int, resamples: int, metric: str | None = None) -> list[Table]:
    """(1) Source class rank: the running-up class (rank 1) against every other rank, paired
    by image; (2) attack-image rank: an attack that skips the most confident images against
    the same attack that does not. ``metric``: a robustness metric label (default: the one
    the overview tables rank by)."""
    frame = suite.robustness
    if frame.empty or "attack" not in frame.columns:
        return []
    info = _ablation_metric(suite, frame, metric)
    if info is None:
        return []
    tables = []
    if "source_class_rank" in frame.columns:
        tables.append(source_class_table(suite, frame, info, seed, resamples))
    if "attack_image_rank" in frame.columns and "attack_params" in frame.columns:
        tables.append(image_rank_table(suite, frame, info, seed, resamples))
    return [t for t in tables if t is not None]
