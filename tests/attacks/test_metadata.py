"""Declared metadata of the attacks: titles, grid axes, baselines, reference points."""

from __future__ import annotations

import json

import torch

from xaibench.attacks import ExIAA, GaussianNoise
from xaibench.registry import attacks
from xaibench.types import Attack, AttackOutput


def test_exiaa_and_its_baseline() -> None:
    exiaa = ExIAA(alphas=[0.03, 0.15], topks=[0.2, 0.05])
    metadata = exiaa.metadata()
    json.dumps(metadata)
    assert metadata["title"] == "eXIAA" and metadata["grid_axes"] == ["alpha", "topk"]
    assert metadata["baseline_of"] is None and metadata["black_box"] and metadata["needs_pool"]
    assert metadata["grid"] == exiaa.grid()
    # The largest α, then the largest top-k: what the runner used before it was declared.
    assert exiaa.reference_point() == {"alpha": 0.15, "topk": 0.2}
    assert ExIAA().reference_point() == {"alpha": 0.15, "topk": 0.8}
    noise = GaussianNoise()
    assert noise.metadata()["title"] == "Gaussian noise" and noise.baseline_of == "exiaa"
    assert noise.grid_axes == ("alpha", "topk") and set(noise.grid()[0]) == set(noise.grid_axes)


def test_every_builtin_attack_declares_a_title_and_its_axes(builtin_names) -> None:
    for name in builtin_names(attacks):
        attack = attacks.get(name)()
        assert attack.title and attack.summary, name
        for point in attack.grid():
            assert set(attack.grid_axes) <= set(point), name
        if attack.baseline_of is not None:
            assert attack.baseline_of in attacks


def test_an_attack_without_declared_axes_uses_its_grid_keys() -> None:
    class Brighten(Attack):
        def __init__(self, deltas: tuple = (0.05, 0.01)):
            self.deltas = deltas

        def grid(self):  # noqa: ANN201
            return [{"delta": d} for d in self.deltas]

        def perturb(self, x01, oracle, context):  # noqa: ANN001, ANN201
            return AttackOutput(images=x01, origin=torch.arange(x01.shape[0]), columns={})

    attack = Brighten()
    assert attack.reference_point() == {"delta": 0.05}
    metadata = attack.metadata()
    assert metadata["grid_axes"] == ["delta"] and metadata["title"] == "Brighten"
    assert metadata["reference"] == {"delta": 0.05}
