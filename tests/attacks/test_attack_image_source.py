"""``attack_image_source``: the paper's images *of* the running-up class, or the whole pool.

eXIAA (seed 000, section 3) takes ``x̄ = argmax_{x' ∈ X_{y_r}} f_{y_r}(x')``: images labelled
with the running-up class. ``"class"`` (default) does that and falls back to the pool, per slot
and recorded per row, where the class has too few images; ``"pool"`` ranks the whole pool.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xaibench.attacks import ATTACK_IMAGE_SOURCES, ExIAA, GaussianNoise, running_up_classes
from xaibench.attacks.attack_images import ranked_class
from xaibench.errors import ConfigError
from xaibench.registry import attacks
from xaibench.types import UNKNOWN_LABEL, AttackContext, ImagePool

from .toy import N_CLASSES, ToyModel, make_context, make_pool, sub_context

GRID = {"alphas": (0.1, 0.3), "topks": (0.2, 1.0)}
PER_IMAGE = 2 * 2  # rows per attack image


def expected_choice(context: AttackContext, labels: list[int], b: int, y: int, n: int, first: int, source: str):
    """The rule in plain Python: ``[(pool row, from class)]`` for original ``b``, source class ``y``."""
    probs = context.pool_probs[:, y].tolist()
    usable = [i for i in range(len(context.pool)) if context.pool.ids[i] != context.original_ids[b]]
    by_confidence = sorted(usable, key=lambda i: (-probs[i], i))
    if source == "pool":
        return [(i, False) for i in by_confidence[first : first + n]]
    of_class = [i for i in by_confidence if labels[i] == y]
    others = [i for i in by_confidence if labels[i] != y]
    return [(i, i in of_class) for i in (of_class + others)[first : first + n]]


def shuffle_predictions(context: AttackContext, seed: int) -> None:
    """Random class orders for the originals (the toy model ranks every image alike)."""
    generator = torch.Generator().manual_seed(seed)
    context.probs = torch.softmax(3 * torch.randn(context.probs.shape, generator=generator), dim=1)


def set_running_up(context: AttackContext, classes: list[int]) -> None:
    """Originals whose running-up class is ``classes[b]`` (predicted: the next class)."""
    probs = torch.full_like(context.probs, 0.01)
    for b, y_r in enumerate(classes):
        probs[b, (y_r + 1) % N_CLASSES] = 0.6
        probs[b, y_r] = 0.3
    context.probs = probs / probs.sum(dim=1, keepdim=True)


def rows_of(output, b: int) -> list[int]:
    return [m for m in range(len(output.origin)) if int(output.origin[m]) == b]


def per_slot(output, b: int, column: str, class_rank: int | None = None) -> list:
    """One value per attack image of original ``b`` (the first row of each)."""
    rows = [m for m in rows_of(output, b)
            if class_rank is None or output.columns["source_class_rank"][m] == class_rank]
    return [output.columns[column][m] for m in rows[::PER_IMAGE]]


def check_against_rule(output, context, labels, *, n, first=0, source="class", class_ranks=(1,)) -> None:
    for b in range(len(context.original_ids)):
        for class_rank in class_ranks:
            y = int(ranked_class(context.probs, class_rank)[b])
            chosen = expected_choice(context, labels, b, y, n, first, source)
            got_ids = per_slot(output, b, "attack_image_id", class_rank)
            assert got_ids == [context.pool.ids[i] for i, _ in chosen]
            assert per_slot(output, b, "attack_image_label", class_rank) == [labels[i] for i, _ in chosen]
            assert per_slot(output, b, "attack_image_source", class_rank) == [
                "class" if of_class else "pool" for _, of_class in chosen
            ]
            assert set(per_slot(output, b, "source_class", class_rank)) == {y}


@pytest.fixture()
def labelled():
    """12 toy images, 3 originals; every class has 2 images."""
    model = ToyModel()
    pool = make_pool(12)
    pool.labels = torch.tensor([i % N_CLASSES for i in range(12)])
    x, context = make_context(model, pool, [0, 4, 7])
    set_running_up(context, [2, 3, 2])
    return model, pool, x, context


def test_class_rule_prefers_an_image_of_the_class_over_a_more_confident_other_image(labelled) -> None:
    model, pool, x, context = labelled
    _, running_up = running_up_classes(context.probs)
    labels = pool.labels.tolist()
    for y_r in set(running_up.tolist()):
        # An image of another class (and not an original) becomes the pool's most confident for y_r …
        decoy = next(i for i in range(len(pool)) if labels[i] != y_r and pool.ids[i] not in context.original_ids)
        context.pool_probs[decoy, y_r] = 1.0
    output = ExIAA(**GRID, n_attack_images=1).perturb(x, model.oracle(), context)
    pooled = ExIAA(**GRID, n_attack_images=1, attack_image_source="pool").perturb(x, model.oracle(), context)
    for b, y_r in enumerate(running_up.tolist()):
        # … but the class rule takes the most confident image *labelled* y_r.
        of_class = [i for i in range(len(pool)) if labels[i] == y_r and pool.ids[i] != context.original_ids[b]]
        best = max(of_class, key=lambda i: (float(context.pool_probs[i, y_r]), -i))
        assert set(output.columns["attack_image_id"][m] for m in rows_of(output, b)) == {pool.ids[best]}
        assert {output.columns["attack_image_label"][m] for m in rows_of(output, b)} == {y_r}
        assert {output.columns["attack_image_source"][m] for m in rows_of(output, b)} == {"class"}
        # The pool rule takes the decoy, of another class.
        decoy_ids = {pooled.columns["attack_image_id"][m] for m in rows_of(pooled, b)}
        assert len(decoy_ids) == 1 and labels[pool.ids.index(decoy_ids.pop())] != y_r
        assert {pooled.columns["attack_image_source"][m] for m in rows_of(pooled, b)} == {"pool"}


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(("n", "first"), [(1, 0), (3, 0), (2, 1)])
@pytest.mark.parametrize("source", ATTACK_IMAGE_SOURCES)
def test_both_rules_match_the_plain_reference_with_random_labels(seed, n, first, source) -> None:
    """Random labels (some unknown) make classes with 0, 1, 2, … images: fallbacks and not."""
    model = ToyModel(seed=seed)
    pool = make_pool(14, seed=seed + 10)
    generator = torch.Generator().manual_seed(seed)
    pool.labels = torch.randint(-1, N_CLASSES, (14,), generator=generator)
    x, context = make_context(model, pool, [0, 5, 9, 13])
    shuffle_predictions(context, seed)
    output = ExIAA(**GRID, n_attack_images=n, first_attack_image=first, attack_image_source=source).perturb(
        x, model.oracle(), context
    )
    check_against_rule(output, context, pool.labels.tolist(), n=n, first=first, source=source)


def test_the_pool_rule_reproduces_the_choice_that_ignores_labels(labelled) -> None:
    model, pool, x, context = labelled
    pooled = ExIAA(**GRID, n_attack_images=3, attack_image_source="pool").perturb(x, model.oracle(), context)
    # The same pool without labels: the choice depends on f_{y_r} only.
    unlabelled = AttackContext(context.original_ids, context.probs, pool, context.pool_probs, seed=context.seed,
                               pool_labels=torch.full((len(pool),), UNKNOWN_LABEL))
    blind = ExIAA(**GRID, n_attack_images=3).perturb(x, model.oracle(), unlabelled)
    assert pooled.columns["attack_image_id"] == blind.columns["attack_image_id"]
    assert torch.equal(pooled.images, blind.images)
    # … and it is not the class rule's choice here (the test can tell them apart).
    by_class = ExIAA(**GRID, n_attack_images=3).perturb(x, model.oracle(), context)
    assert by_class.columns["attack_image_id"] != pooled.columns["attack_image_id"]
    assert set(pooled.columns["attack_image_source"]) == {"pool"}
    assert pooled.columns["attack_image_label"] == [int(pool.labels[pool.ids.index(i)])
                                                   for i in pooled.columns["attack_image_id"]]


def test_fallback_only_for_originals_whose_class_has_no_image_and_only_for_the_missing_slots() -> None:
    model = ToyModel()
    pool = make_pool(12)
    x, context = make_context(model, pool, [0, 1, 2, 11])
    y = [1, 4, 5, 3]
    set_running_up(context, y)
    labels = [UNKNOWN_LABEL] * len(pool)
    # Original 0: three images of its running-up class; 1 and 2: one each; 3: none (no 3s).
    plenty, single = [3, 4, 5], [6]
    for i in plenty:
        labels[i] = y[0]
    labels[single[0]] = y[1]
    labels[7:] = [0, 2, 0, 0, 2]  # other classes
    labels[1] = y[2]  # original 1 is labelled with original 2's running-up class: not usable by 1 …
    context.pool_labels = torch.tensor(labels)
    output = ExIAA(**GRID, n_attack_images=3).perturb(x, model.oracle(), context)
    assert per_slot(output, 0, "attack_image_source") == ["class"] * 3
    assert sorted(per_slot(output, 0, "attack_image_id")) == [pool.ids[i] for i in plenty]
    assert per_slot(output, 1, "attack_image_source") == ["class", "pool", "pool"]
    assert per_slot(output, 1, "attack_image_id")[0] == pool.ids[single[0]]
    # … but usable by original 2, whose class has this one image.
    assert per_slot(output, 2, "attack_image_source") == ["class", "pool", "pool"]
    assert per_slot(output, 2, "attack_image_id")[0] == pool.ids[1]
    # An original whose class has no image: every slot falls back, to the pool rule's choice.
    assert per_slot(output, 3, "attack_image_source") == ["pool"] * 3
    pooled = ExIAA(**GRID, n_attack_images=3, attack_image_source="pool").perturb(x, model.oracle(), context)
    assert per_slot(output, 3, "attack_image_id") == per_slot(pooled, 3, "attack_image_id")
    # No row is lost to the fallback, and every fallback image is of another class.
    assert len(output.origin) == 4 * 3 * PER_IMAGE
    for m, source in enumerate(output.columns["attack_image_source"]):
        if source == "pool":
            assert output.columns["attack_image_label"][m] != output.columns["source_class"][m]
    check_against_rule(output, context, labels, n=3)


def test_the_original_is_never_its_own_attack_image_even_when_labelled_with_the_class() -> None:
    model = ToyModel()
    pool = make_pool(8)
    x, context = make_context(model, pool, [2, 5])
    set_running_up(context, [1, 4])
    labels = [UNKNOWN_LABEL] * len(pool)
    labels[2], labels[5] = 1, 4  # each original is labelled with its own running-up class …
    labels[6] = 4  # … and original 1's class has one other image
    for row, y_r in [(2, 1), (5, 4)]:
        context.pool_probs[row, y_r] = 1.0  # … and is the pool's most confident image for it
    context.pool_labels = torch.tensor(labels)
    for source in ATTACK_IMAGE_SOURCES:
        output = ExIAA(**GRID, n_attack_images=2, attack_image_source=source).perturb(x, model.oracle(), context)
        for b, original_id in enumerate(context.original_ids):
            ids = per_slot(output, b, "attack_image_id")
            assert original_id not in ids and len(ids) == 2
        check_against_rule(output, context, labels, n=2, source=source)
    # Under the class rule: original 0's class has only itself, so both slots fall back;
    # original 1 takes the other image of class 4, then falls back.
    output = ExIAA(**GRID, n_attack_images=2).perturb(x, model.oracle(), context)
    assert per_slot(output, 0, "attack_image_source") == ["pool", "pool"]
    assert per_slot(output, 1, "attack_image_source") == ["class", "pool"]
    assert per_slot(output, 1, "attack_image_id")[0] == pool.ids[6]


def test_ablation_ranks_take_images_of_the_class_of_their_rank() -> None:
    model = ToyModel()
    pool = make_pool(30, seed=3)
    pool.labels = torch.tensor([i % N_CLASSES for i in range(30)])  # 5 images per class
    x, context = make_context(model, pool, [0, 7, 11])
    ranks = (1, 2, 4)
    output = ExIAA(**GRID, n_attack_images=2, source_class_ranks=list(ranks)).perturb(x, model.oracle(), context)
    for m in range(len(output.origin)):
        b, rank = int(output.origin[m]), output.columns["source_class_rank"][m]
        y = int(ranked_class(context.probs, rank)[b])
        assert output.columns["source_class"][m] == y == output.columns["attack_image_label"][m]
        assert output.columns["attack_image_source"][m] == "class"
    # The ablation of lower-ranked images: first_attack_image counts within the class.
    low = ExIAA(**GRID, n_attack_images=2, first_attack_image=2).perturb(x, model.oracle(), context)
    check_against_rule(output, context, pool.labels.tolist(), n=2, class_ranks=ranks)
    check_against_rule(low, context, pool.labels.tolist(), n=2, first=2)
    assert set(low.columns["attack_image_source"]) == {"class"}


@pytest.mark.parametrize("source", ATTACK_IMAGE_SOURCES)
def test_the_gaussian_baseline_shares_the_attack_images(labelled, source) -> None:
    model, _, x, context = labelled
    exiaa = ExIAA(**GRID, n_attack_images=3, attack_image_source=source).perturb(x, model.oracle(), context)
    noise = GaussianNoise(**GRID, n_attack_images=3, attack_image_source=source).perturb(x, model.oracle(), context)
    for column in ("attack_image_id", "attack_image_label", "attack_image_source", "k_entries"):
        assert noise.columns[column] == exiaa.columns[column], column


def test_unknown_labels_fall_back_everywhere_and_match_the_pool_rule() -> None:
    """The ``samples`` photos have no labels (-1), and a loader pool carries none."""
    model = ToyModel()
    batch = make_pool(9)
    x, context = make_context(model, batch, [1, 4])
    loader_pool = ImagePool(batch.ids, lambda rows: batch.pixels[rows])
    context.pool = loader_pool
    output = ExIAA(**GRID, n_attack_images=3).perturb(x, model.oracle(), context)
    assert set(output.columns["attack_image_source"]) == {"pool"}
    assert set(output.columns["attack_image_label"]) == {UNKNOWN_LABEL}
    pooled = ExIAA(**GRID, n_attack_images=3, attack_image_source="pool").perturb(x, model.oracle(), context)
    assert output.columns["attack_image_id"] == pooled.columns["attack_image_id"]


def test_context_labels_win_over_the_batch_labels_and_must_fit_the_pool(labelled) -> None:
    model, pool, x, context = labelled
    context.pool_labels = torch.full((len(pool),), UNKNOWN_LABEL)
    output = ExIAA(**GRID, n_attack_images=1).perturb(x, model.oracle(), context)
    assert set(output.columns["attack_image_source"]) == {"pool"}
    context.pool_labels = torch.zeros(len(pool) - 1, dtype=torch.long)
    with pytest.raises(ValueError, match="pool_labels has 11 labels for a pool of 12"):
        ExIAA(**GRID, n_attack_images=1).perturb(x, model.oracle(), context)


def test_batch_invariance_under_the_class_rule(labelled) -> None:
    model, _, x, context = labelled
    attack = ExIAA(**GRID, n_attack_images=3)
    batched = attack.perturb(x, model.oracle(), context)
    for b in range(3):
        single_context = sub_context(context, [b])
        single = attack.perturb(x[b : b + 1], model.oracle(), single_context)
        rows = rows_of(batched, b)
        for column, values in single.columns.items():
            assert values == [batched.columns[column][m] for m in rows], column


@pytest.mark.parametrize("attack_class", [ExIAA, GaussianNoise])
def test_the_option_is_a_named_validated_parameter_defaulting_to_the_paper(attack_class) -> None:
    defaults = {p.name: p.default for p in attacks.params(attack_class.name)}
    assert defaults["attack_image_source"] == "class"
    resolved = attacks.resolved_params(attack_class.name, {})
    assert attack_class().attack_image_source == resolved["attack_image_source"] == "class"
    resolved = attacks.resolved_params(attack_class.name, {"attack_image_source": "pool"})
    assert attack_class(attack_image_source="pool").attack_image_source == resolved["attack_image_source"] == "pool"
    with pytest.raises(ConfigError, match="attack_image_source must be one of 'class', 'pool'"):
        attack_class(attack_image_source="labels")


def test_every_attack_image_row_has_a_known_source_value(labelled) -> None:
    model, _, x, context = labelled
    output = ExIAA(**GRID, n_attack_images=3, source_class_ranks=[1, 3]).perturb(x, model.oracle(), context)
    assert set(output.columns["attack_image_source"]) <= {"class", "pool"}
    labels = np.array(output.columns["attack_image_label"])
    classes = np.array(output.columns["source_class"])
    sources = np.array(output.columns["attack_image_source"])
    np.testing.assert_array_equal(sources == "class", labels == classes)
