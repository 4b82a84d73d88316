"""eXIAA against a slow per-row reference, plus its invariants and its oracle contract."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch

from xaibench.attacks import (
    ROW_COLUMNS,
    ExIAA,
    GaussianNoise,
    descending_ranks,
    running_up_classes,
    topk_entry_counts,
)
from xaibench.errors import ConfigError
from xaibench.registry import attacks
from xaibench.types import AttackContext, ImageBatch

from .toy import SHAPE, ToyModel, make_context, make_pool, sub_context

ALPHAS = (0.1, 0.5, 0.9)
TOPKS = (0.05, 0.1, 0.3, 1.0)


def exact_k(topk: float, n_positive: int) -> int:
    return math.ceil(Fraction(str(topk)) * n_positive)


def reference(
    x, context: AttackContext, model: ToyModel, n_attack_images: int, alphas, topks, class_rank=1, first=0
):
    """The spec, one row at a time, in numpy: a list of (expected image, I_k, columns).

    ``class_rank``/``first``: the ablations (the class of that rank, images after the first).
    """
    pool = context.pool
    pool_probs = context.pool_probs.numpy()
    rows = []
    for b, original_id in enumerate(context.original_ids):
        order = np.argsort(-context.probs[b].numpy(), kind="stable")
        y_r = int(order[class_rank])
        candidates = [i for i in range(len(pool)) if pool.ids[i] != original_id]
        ranked = sorted(candidates, key=lambda i: (-pool_probs[i, y_r], i))
        chosen = ranked[first : first + n_attack_images]
        clean = x[b].flatten().numpy()
        for slot, i in enumerate(chosen):
            rank = first + slot
            source = pool.pixels[i].flatten().numpy()
            z = (model.weight[y_r].view(SHAPE) * (pool.pixels[i] - 0.3)).flatten().numpy()
            n_positive = int((z > 0).sum())
            entry_order = np.lexsort((np.arange(z.size), -z))  # descending, ties: lower index
            for alpha in alphas:
                for topk in topks:
                    k = exact_k(topk, n_positive)
                    selected = entry_order[:k]
                    expected = clean.copy()
                    expected[selected] = np.clip(
                        (1 - alpha) * clean[selected] + alpha * source[selected], 0, 1
                    )
                    columns = {
                        "alpha": alpha, "topk": topk, "attack_image_rank": rank,
                        "attack_image_id": pool.ids[i], "running_up_class": int(order[1]),
                        "n_positive_entries": n_positive, "k_entries": k,
                        "source_class": y_r, "source_class_rank": class_rank,
                    }
                    rows.append((b, expected, selected, columns))
    return rows


@pytest.fixture()
def setup():
    model = ToyModel()
    pool = make_pool(10)
    x, context = make_context(model, pool, [0, 3, 5])
    return model, pool, x, context


@pytest.mark.parametrize(
    ("source_class_ranks", "first"),
    [((1,), 0), ((2,), 0), ((1,), 4), ((1, 3, 2), 2)],
    ids=["paper", "third-class", "images-5th-on", "several-classes-and-offset"],
)
def test_matches_the_per_row_reference(setup, source_class_ranks, first) -> None:
    model, _, x, context = setup
    output = ExIAA(
        alphas=ALPHAS, topks=TOPKS, n_attack_images=3, source_class_ranks=list(source_class_ranks),
        first_attack_image=first,
    ).perturb(x, model.oracle(), context)
    expected = [
        row
        for class_rank in source_class_ranks
        for row in reference(x, context, model, 3, ALPHAS, TOPKS, class_rank=class_rank, first=first)
    ]
    assert output.images.shape == (len(source_class_ranks) * 3 * 3 * len(ALPHAS) * len(TOPKS), *SHAPE)
    assert len(expected) == output.images.shape[0]
    assert tuple(output.columns) == ROW_COLUMNS
    for row, (b, image, selected, columns) in enumerate(expected):
        assert int(output.origin[row]) == b
        assert {key: output.columns[key][row] for key in columns} == columns
        got = output.images[row].flatten().numpy()
        clean = x[b].flatten().numpy()
        outside = np.ones(clean.size, dtype=bool)
        outside[selected] = False
        # Only entries of I_k change …
        np.testing.assert_array_equal(got[outside], clean[outside])
        # … with the blend, and every entry of I_k whose blend differs does change.
        np.testing.assert_allclose(got[selected], image[selected], atol=1e-6)
        differs = np.abs(image[selected] - clean[selected]) > 1e-6
        assert (got[selected][differs] != clean[selected][differs]).all()
        assert 0.0 <= got.min() and got.max() <= 1.0


def test_k_is_ceil_of_topk_times_positive_entries(setup) -> None:
    model, _, x, context = setup
    output = ExIAA(alphas=(0.2,), topks=TOPKS).perturb(x, model.oracle(), context)
    for topk, n_positive, k in zip(
        output.columns["topk"], output.columns["n_positive_entries"], output.columns["k_entries"], strict=True
    ):
        assert 0 < n_positive < math.prod(SHAPE)
        assert k == exact_k(topk, n_positive)
    # float noise must not add an entry: 0.1 × 30 is 3, 0.3 × 10 is 3, 0.7 × 10 is 7
    counts = topk_entry_counts(torch.tensor([30, 10, 10]), [0.1, 0.3, 0.7])
    assert counts.tolist() == [[3, 9, 21], [1, 3, 7], [1, 3, 7]]


def test_outputs_stay_in_the_unit_interval_at_the_bounds() -> None:
    model = ToyModel()
    pool = make_pool(6)
    pool.pixels[:, 0] = 1.0  # channel 0 saturated, channel 1 black: sources on the bounds
    pool.pixels[:, 1] = 0.0
    x, context = make_context(model, pool, [0, 1])
    output = ExIAA(alphas=(0.03, 0.99), topks=(1.0,)).perturb(x, model.oracle(), context)
    assert output.images.min() >= 0.0 and output.images.max() <= 1.0
    assert (output.images[:, 0] == 1.0).all() and (output.images[:, 1] == 0.0).all()


def test_running_up_class_is_the_second_highest() -> None:
    probs = torch.tensor([[0.1, 0.6, 0.3], [0.5, 0.2, 0.3], [0.2, 0.2, 0.6]])
    predicted, running_up = running_up_classes(probs)
    assert predicted.tolist() == [1, 0, 2]
    assert running_up.tolist() == [2, 2, 0]  # tie between classes 0 and 1: the first


def test_attack_images_are_the_most_confident_for_the_running_up_class_never_the_original(setup) -> None:
    model, pool, x, context = setup
    _, running_up = running_up_classes(context.probs)
    # Make each original the most confident pool image for its own running-up class.
    for row, image_id in enumerate(context.original_ids):
        context.pool_probs[pool.ids.index(image_id), running_up[row]] = 1.0
    output = ExIAA(alphas=(0.1,), topks=(0.1,), n_attack_images=3).perturb(x, model.oracle(), context)
    for row, original_id in enumerate(context.original_ids):
        y_r = int(running_up[row])
        scores = context.pool_probs[:, y_r].clone()
        scores[pool.ids.index(original_id)] = -1
        best = [pool.ids[i] for i in torch.argsort(scores, descending=True, stable=True)[:3].tolist()]
        rows = [m for m in range(len(output.origin)) if int(output.origin[m]) == row]
        assert [output.columns["attack_image_id"][m] for m in rows] == best
        assert [output.columns["attack_image_rank"][m] for m in rows] == [0, 1, 2]
        assert original_id not in [output.columns["attack_image_id"][m] for m in rows]
        assert {output.columns["running_up_class"][m] for m in rows} == {y_r}


def test_grid_coverage_and_row_order(setup) -> None:
    model, _, x, context = setup
    attack = ExIAA(alphas=ALPHAS, topks=TOPKS, n_attack_images=2)
    assert attack.grid() == [{"alpha": a, "topk": t} for a in ALPHAS for t in TOPKS]
    output = attack.perturb(x, model.oracle(), context)
    per_original = 2 * len(ALPHAS) * len(TOPKS)
    assert output.origin.tolist() == [b for b in range(3) for _ in range(per_original)]
    assert output.columns["alpha"][: len(TOPKS) + 1] == [ALPHAS[0]] * len(TOPKS) + [ALPHAS[1]]
    assert output.columns["topk"][: len(TOPKS)] == list(TOPKS)
    assert output.columns["attack_image_rank"][:per_original] == [0] * (per_original // 2) + [1] * (per_original // 2)
    grid_points = {(a, t, r) for a, t, r in zip(
        output.columns["alpha"], output.columns["topk"], output.columns["attack_image_rank"], strict=True
    )}
    assert len(grid_points) == per_original


def test_uses_only_the_oracle_one_explain_call_and_the_cache(setup) -> None:
    model, _, x, context = setup
    oracle = model.oracle()
    ExIAA(alphas=(0.1,), topks=(0.1, 0.5)).perturb(x, oracle, context)
    # Every attack image of the batch explained in one call; nothing predicted (pool_probs given).
    assert model.explain_invocations == 1
    assert model.predict_invocations == 0 and oracle.predict_calls == 0
    pairs = len(context.cache["attack_image_attributions"])
    assert oracle.explain_calls == model.explain_batches[0] == pairs <= 3 * 3
    # The baseline and a second eXIAA reuse the cached explanations: no further calls.
    GaussianNoise(alphas=(0.1,), topks=(0.1,)).perturb(x, oracle, context)
    ExIAA(alphas=(0.2,), topks=(0.3,)).perturb(x, oracle, context)
    assert model.explain_invocations == 1 and oracle.explain_calls == pairs


def test_missing_pool_probs_are_predicted_once(setup) -> None:
    model, _, x, context = setup
    context.pool_probs = None
    oracle = model.oracle()
    output = ExIAA(alphas=(0.1,), topks=(0.1,)).perturb(x, oracle, context)
    GaussianNoise(alphas=(0.1,), topks=(0.1,)).perturb(x, oracle, context)
    assert model.predict_invocations == 1 and oracle.predict_calls == len(context.pool)
    assert len(output.origin) == 3 * 3


@pytest.mark.parametrize("attack_class", [ExIAA, GaussianNoise])
def test_one_batch_equals_one_image_at_a_time(setup, attack_class) -> None:
    model, _, x, context = setup
    attack = attack_class(alphas=ALPHAS, topks=TOPKS, n_attack_images=2)
    batched = attack.perturb(x, model.oracle(), context)
    rows_per_original = 2 * len(ALPHAS) * len(TOPKS)
    for b in range(3):
        single = attack.perturb(x[b : b + 1], model.oracle(), sub_context(context, [b]))
        part = slice(b * rows_per_original, (b + 1) * rows_per_original)
        assert torch.equal(single.images, batched.images[part])
        for key, values in single.columns.items():
            assert values == batched.columns[key][part], key


def test_small_pools_use_what_there_is() -> None:
    model = ToyModel()
    pool = make_pool(3)
    x, context = make_context(model, pool, [0])
    output = ExIAA(alphas=(0.1,), topks=(0.1,), n_attack_images=5).perturb(x, model.oracle(), context)
    assert sorted(output.columns["attack_image_id"]) == ["img1", "img2"]
    # An original outside the pool has one image more than one inside it: ragged, no padding rows.
    outsider = ImageBatch(["new"], torch.rand(1, *SHAPE), torch.tensor([-1]))
    probs = model.predict(torch.cat([x, outsider.pixels]))
    context = AttackContext(["img0", "new"], probs, pool, context.pool_probs, seed=0)
    output = ExIAA(alphas=(0.1,), topks=(0.1,), n_attack_images=5).perturb(
        torch.cat([x, outsider.pixels]), model.oracle(), context
    )
    assert output.origin.tolist() == [0, 0, 1, 1, 1]
    assert output.columns["attack_image_rank"] == [0, 1, 0, 1, 2]


def test_a_pool_with_only_the_original_is_a_clear_error() -> None:
    model = ToyModel()
    pool = make_pool(1)
    x, context = make_context(model, pool, [0])
    with pytest.raises(ConfigError, match="no image other than the original"):
        ExIAA().perturb(x, model.oracle(), context)
    context.pool = None
    with pytest.raises(ConfigError, match="image pool"):
        ExIAA().perturb(x, model.oracle(), context)


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"alphas": [0.0]}, ["alphas", "(0, 1)"]),
        ({"alphas": [1.0]}, ["alphas", "(0, 1)"]),
        ({"alphas": [0.1, -0.2]}, ["alphas", "(0, 1)"]),
        ({"alphas": []}, ["alphas", "non-empty"]),
        ({"alphas": 0.1}, ["alphas", "list"]),
        ({"alphas": [0.1, 0.1]}, ["alphas", "repeated"]),
        ({"topks": [0.0]}, ["topks", "(0, 1]"]),
        ({"topks": [1.2]}, ["topks", "(0, 1]"]),
        ({"topks": [float("nan")]}, ["topks", "(0, 1]"]),
        ({"topks": ["0.1"]}, ["topks", "number"]),
        ({"n_attack_images": 0}, ["n_attack_images", "≥ 1"]),
        ({"n_attack_images": 1.5}, ["n_attack_images", "integer"]),
    ],
)
@pytest.mark.parametrize("attack_class", [ExIAA, GaussianNoise])
def test_bad_parameters_raise_config_errors_naming_them(attack_class, params, words) -> None:
    with pytest.raises(ConfigError) as error:
        attack_class(**params)
    for word in words:
        assert word in str(error.value)


def test_registered_with_the_paper_grid_as_defaults() -> None:
    assert attacks.get("exiaa") is ExIAA and attacks.get("gaussian_noise") is GaussianNoise
    defaults = {p.name: p.default for p in attacks.params("exiaa")}
    assert defaults == {
        "alphas": (0.03, 0.06, 0.09, 0.12, 0.15),
        "topks": (0.01, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8),
        "n_attack_images": 3,
        # The paper's attack: the running-up class's most confident images.
        "source_class_ranks": (1,),
        "first_attack_image": 0,
        # … taken among the images of that class (the paper's X_{y_r}).
        "attack_image_source": "class",
    }
    attack = ExIAA()
    assert len(attack.grid()) == 50 and ExIAA.black_box and ExIAA.needs_pool
    assert {"attack": attack.name, **attacks.resolved_params("exiaa", {})} == {"attack": "exiaa", "alphas": list(defaults["alphas"]),
                                 "topks": list(defaults["topks"]), "n_attack_images": 3,
                                 "source_class_ranks": [1], "first_attack_image": 0,
                                 "attack_image_source": "class"}


def test_descending_ranks_break_ties_by_lower_index_and_put_nan_last() -> None:
    values = torch.tensor([1.0, 3.0, 1.0, float("nan"), 3.0, -2.0, 0.0, 1.0]).view(1, 2, 2, 2)
    assert descending_ranks(values).tolist() == [[2, 0, 3, 7, 1, 6, 5, 4]]


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"source_class_ranks": [0]}, ["source_class_ranks", "≥ 1"]),
        ({"source_class_ranks": []}, ["source_class_ranks"]),
        ({"source_class_ranks": [1, 1]}, ["distinct"]),
        ({"first_attack_image": -1}, ["first_attack_image"]),
    ],
)
def test_bad_ablation_parameters_raise_config_errors(params, words) -> None:
    with pytest.raises(ConfigError) as error:
        ExIAA(**params)
    for word in words:
        assert word in str(error.value)


def test_a_class_rank_beyond_the_model_and_an_offset_beyond_the_pool_are_clear_errors(setup) -> None:
    model, pool, x, context = setup
    n_classes = context.probs.shape[1]
    with pytest.raises(ConfigError, match=f"class rank {n_classes} does not exist"):
        ExIAA(alphas=(0.1,), topks=(0.1,), source_class_ranks=[n_classes]).perturb(x, model.oracle(), context)
    with pytest.raises(ConfigError, match="first_attack_image=10 skips every usable pool image"):
        ExIAA(alphas=(0.1,), topks=(0.1,), first_attack_image=len(pool)).perturb(x, model.oracle(), context)
