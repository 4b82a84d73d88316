"""End to end on digits: the robustness rows carry where each attack image came from.

Digits has labels 0–9 in the model's class indices and 26–48 test images per class, so
under the paper's rule (``attack_image_source = "class"``, the default) every attack image is
an image of the row's source class and no row falls back to the pool.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from xaibench.datasets.digits import digits_arrays
from xaibench.runner import build_plan, run_plan
from xaibench.runner.results import read_results
from xaibench.runner.suite import load_suite

SUITE = """
[suite]
name = "digits-attack-images"
seed = 5
device = "cpu"
batch_size = 8
images_per_unit = 3
examples = 0
faithfulness_on_attacked = "none"

[dataset]
name = "digits"
n_classes = 3

[[models]]
name = "digits_cnn"

[[explainers]]
name = "saliency"

[[attacks]]
name = "exiaa"
alphas = [0.1]
topks = [0.2]
n_attack_images = 2
source_class_ranks = [1, 2]

[[attacks]]
name = "gaussian_noise"
alphas = [0.1]
topks = [0.2]
n_attack_images = 2

[[attacks]]
name = "exiaa"
label = "exiaa_pool"
alphas = [0.1]
topks = [0.2]
n_attack_images = 2
attack_image_source = "pool"
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("digits-attack-images")
    path = tmp / "suite.toml"
    path.write_text(SUITE)
    out = tmp / "out"
    plan = build_plan(load_suite(str(path)), out)
    run_plan(plan)
    return plan, out


def test_rows_record_the_attack_images_label_and_source(run) -> None:
    _, out = run
    frame = read_results(out, table="robustness")
    for column in ("attack_image_label", "attack_image_source", "source_class", "running_up_class"):
        assert column in frame.columns, column
    _, targets = digits_arrays()
    true_label = frame["attack_image_id"].map(lambda i: int(targets[int(i.split(":")[1])]))
    # The recorded label is the image's digit.
    assert (frame["attack_image_label"] == true_label).all()

    by_class = frame[frame["attack"].isin(["exiaa", "gaussian_noise"])]
    assert len(by_class) == 3 * (2 * 2 + 2)  # originals × (2 ranks × 2 images + 2 images)
    assert set(by_class["attack_image_source"]) == {"class"}
    # Every attack image is an image of the source class: the running-up class at rank 1 …
    rank_1 = by_class[by_class["source_class_rank"] == 1]
    assert (rank_1["attack_image_label"] == rank_1["running_up_class"]).all()
    # … and the class of rank 2 in the ablation.
    rank_2 = by_class[by_class["source_class_rank"] == 2]
    assert len(rank_2) == 3 * 2
    assert (rank_2["attack_image_label"] == rank_2["source_class"]).all()
    assert (rank_2["source_class"] != rank_2["running_up_class"]).all()
    # The baseline takes eXIAA's attack images.
    key = ["image_id", "attack_image_rank"]
    exiaa = rank_1[rank_1["attack"] == "exiaa"].set_index(key)["attack_image_id"].sort_index()
    noise = rank_1[rank_1["attack"] == "gaussian_noise"].set_index(key)["attack_image_id"].sort_index()
    assert exiaa.equals(noise)

    pooled = frame[frame["attack"] == "exiaa_pool"]
    assert len(pooled) == 3 * 2 and set(pooled["attack_image_source"]) == {"pool"}
    # The original is never its own attack image.
    assert (frame["attack_image_id"] != frame["image_id"]).all()


def test_a_pool_cache_without_labels_is_recomputed_with_them(run) -> None:
    plan, out = run
    res, model = plan.resources(), plan.suite.models[0]
    pool = res.pool_probabilities(model)
    probs, labels = pool.probs, pool.labels.clone()
    dataset = res.dataset(model)
    assert labels.tolist() == [dataset.labels[i] for i in res.pool(model)]
    (cache,) = (out / "_cache").glob("pool-probs-*.npz")
    with np.load(cache) as stored:
        assert np.array_equal(stored["labels"], labels.numpy())
        ids = stored["ids"]
    # An older cache: ids and probabilities only.
    buffer = io.BytesIO()
    np.savez(buffer, ids=ids, probs=np.zeros_like(probs.numpy()))
    cache.write_bytes(buffer.getvalue())
    fresh = type(res)(plan.suite, plan.out, plan.device)  # another process: nothing in memory
    again = fresh.pool_probabilities(model)
    assert torch.equal(again.labels, labels)
    torch.testing.assert_close(again.probs, probs)  # recomputed, not the zeros of the old file
    with np.load(cache) as stored:
        assert "labels" in stored.files
