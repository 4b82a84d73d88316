"""The Gaussian-noise baseline: eXIAA's entry count and positions, seeded noise."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xaibench.attacks import ExIAA, GaussianNoise
from xaibench.errors import ConfigError
from xaibench.registry import attacks

from .toy import SHAPE, ToyModel, make_context, make_pool

ALPHAS = (0.1, 0.6)
TOPKS = (0.05, 0.3, 1.0)


@pytest.fixture()
def setup():
    """Interior pixels, so that every entry the attacks touch visibly changes."""
    model = ToyModel()
    pool = make_pool(8, bounds=False)
    x, context = make_context(model, pool, [0, 2])
    return model, x, context


def changed(output, x) -> torch.Tensor:
    return output.images != x[output.origin]


def test_same_positions_and_same_k_as_exiaa(setup) -> None:
    model, x, context = setup
    oracle = model.oracle()
    exiaa = ExIAA(alphas=ALPHAS, topks=TOPKS, n_attack_images=2).perturb(x, oracle, context)
    noise = GaussianNoise(alphas=ALPHAS, topks=TOPKS, n_attack_images=2).perturb(x, oracle, context)
    assert noise.columns == exiaa.columns
    assert torch.equal(noise.origin, exiaa.origin)
    # Both change exactly the k entries of I_k (no pixel sits on a bound here).
    assert torch.equal(changed(noise, x), changed(exiaa, x))
    assert changed(noise, x).flatten(1).sum(1).tolist() == exiaa.columns["k_entries"]


def test_noise_definition_is_x_plus_alpha_sigma_epsilon_on_the_exiaa_entries() -> None:
    model = ToyModel()
    x, context = make_context(model, make_pool(8), [0, 2])
    attack = GaussianNoise(alphas=ALPHAS, topks=TOPKS, n_attack_images=2, sigma=0.5)
    output = attack.perturb(x, model.oracle(), context)
    attributions = context.cache["attack_image_attributions"]
    for row in range(output.images.shape[0]):
        b = int(output.origin[row])
        original_id = context.original_ids[b]
        attack_id = output.columns["attack_image_id"][row]
        alpha, k = output.columns["alpha"][row], output.columns["k_entries"][row]
        z = attributions[(attack_id, output.columns["running_up_class"][row])].flatten().numpy()
        selected = np.lexsort((np.arange(z.size), -z))[:k]
        epsilon = torch.randn(SHAPE, generator=context.generator(original_id, attack_id, "gaussian_noise"))
        clean = x[b].flatten().numpy()
        expected = clean.copy()
        expected[selected] = np.clip(clean[selected] + alpha * 0.5 * epsilon.flatten().numpy()[selected], 0, 1)
        np.testing.assert_allclose(output.images[row].flatten().numpy(), expected, atol=1e-6)
    # σ = 0.5 with α = 0.6 pushes many entries past the bounds: clipping is exercised.
    assert output.images.min() == 0.0 and output.images.max() == 1.0


def test_random_positions_differ_but_keep_the_count(setup) -> None:
    model, x, context = setup
    oracle = model.oracle()
    same = GaussianNoise(alphas=ALPHAS, topks=TOPKS, n_attack_images=2).perturb(x, oracle, context)
    random = GaussianNoise(alphas=ALPHAS, topks=TOPKS, n_attack_images=2, positions="random").perturb(
        x, oracle, context
    )
    assert random.columns == same.columns
    assert changed(random, x).flatten(1).sum(1).tolist() == random.columns["k_entries"]
    assert not torch.equal(changed(random, x), changed(same, x))
    # Nested: the random entries for a larger top-k contain those of a smaller one.
    masks = changed(random, x).view(2, 2, len(ALPHAS), len(TOPKS), -1)
    assert (masks[..., 0, :] & ~masks[..., 1, :]).sum() == 0


def test_seeded_and_deterministic(setup) -> None:
    model, x, context = setup
    attack = GaussianNoise(alphas=ALPHAS, topks=TOPKS, n_attack_images=2, positions="random")
    first = attack.perturb(x, model.oracle(), context)
    second = attack.perturb(x, model.oracle(), context)
    assert torch.equal(first.images, second.images)
    context.seed += 1
    other = attack.perturb(x, model.oracle(), context)
    assert not torch.equal(first.images, other.images)


@pytest.mark.parametrize(
    ("params", "words"),
    [({"sigma": 0.0}, ["sigma", "> 0"]), ({"sigma": float("inf")}, ["sigma"]),
     ({"positions": "everywhere"}, ["positions", "'same'", "'random'"])],
)
def test_bad_parameters(params, words) -> None:
    with pytest.raises(ConfigError) as error:
        GaussianNoise(**params)
    for word in words:
        assert word in str(error.value)


def test_registered_params() -> None:
    defaults = {p.name: p.default for p in attacks.params("gaussian_noise")}
    assert defaults["sigma"] == 0.25 and defaults["positions"] == "same"
    assert GaussianNoise(positions="random").positions == "random"
    assert attacks.resolved_params("gaussian_noise", {"positions": "random"})["positions"] == "random"
