"""Declared metadata and capabilities of the explainers, and the seeds they draw from."""

from __future__ import annotations

import hashlib
import inspect
import json

import numpy as np
import torch

from xaibench.explainers.agi import AGIExplainer
from xaibench.explainers.attexplore import _mix_seed
from xaibench.explainers.saliency import SaliencyExplainer
from xaibench.registry import explainers
from xaibench.types import AttackContext, Explainer, id_seeds, image_seeds

from .helpers import images

TITLES = {
    "saliency": "Saliency",
    "integrated_gradients": "Integrated Gradients",
    "smoothgrad": "SmoothGrad",
    "deeplift_shap": "DeepLIFT SHAP",
    "attexplore": "AttEXplore",
    "agi": "AGI",
}


def test_every_builtin_explainer_declares_its_metadata(builtin_names) -> None:
    for name in builtin_names(explainers):
        cls = explainers.get(name)
        metadata = cls.metadata()
        json.dumps(metadata)
        assert cls.title and cls.summary, name
        assert metadata["title"] == cls.title
        assert set(metadata) >= {"title", "summary", "is_random", "has_completeness", "fuses_prediction", "reuses_logits"}
    for name, title in TITLES.items():
        assert explainers.get(name).title == title


def test_capabilities_are_declared_where_implemented(builtin_names) -> None:
    fused = {n for n in builtin_names(explainers) if explainers.get(n).fuses_prediction}
    assert fused == {"saliency", "input_x_gradient"}
    for name in fused:
        assert callable(getattr(explainers.get(name), "explain_predicted", None))
    logits = {n for n in builtin_names(explainers) if explainers.get(n).reuses_logits}
    assert logits == {"integrated_gradients"}
    for name in logits:
        assert "logits" in inspect.signature(explainers.get(name).completeness_gap).parameters


def test_every_random_explainer_accepts_noise_ids(builtin_names) -> None:
    for name in builtin_names(explainers):
        cls = explainers.get(name)
        if cls.is_random or name == "agi":  # AGI is random with classes="sampled"
            assert "noise_ids" in inspect.signature(cls.explain).parameters, name


def test_agi_is_random_per_instance(tiny) -> None:
    assert not AGIExplainer(tiny).metadata()["is_random"]
    sampled = AGIExplainer(tiny, classes="sampled")
    assert sampled.is_random and sampled.metadata()["is_random"]
    assert not AGIExplainer.metadata()["is_random"]


def test_overriding_explain_alone_drops_the_fused_path() -> None:
    class Scaled(SaliencyExplainer):
        def explain(self, x01, target):  # noqa: ANN001, ANN201
            return 2 * super().explain(x01, target)

    class Declared(SaliencyExplainer):
        fuses_prediction = True

        def explain(self, x01, target):  # noqa: ANN001, ANN201
            return super().explain(x01, target)

    class Untouched(SaliencyExplainer):
        pass

    assert SaliencyExplainer.fuses_prediction and Untouched.fuses_prediction
    assert not Scaled.fuses_prediction and not Scaled.metadata()["fuses_prediction"]
    assert Declared.fuses_prediction
    assert not Explainer.fuses_prediction


def _old_image_seed(image: np.ndarray, label: int, base: int) -> int:
    digest = hashlib.blake2b(digest_size=8)
    digest.update(int(base).to_bytes(8, "little", signed=True))
    digest.update(int(label).to_bytes(8, "little", signed=True))
    digest.update(np.ascontiguousarray(image).tobytes())
    return int.from_bytes(digest.digest(), "little") & 0x7FFF_FFFF_FFFF_FFFF


def _old_id_seed(noise_id: str, base: int) -> int:
    digest = hashlib.blake2b(digest_size=8, person=b"xaibench-crn")
    digest.update(int(base).to_bytes(8, "little", signed=True))
    digest.update(noise_id.encode("utf-8"))
    return int.from_bytes(digest.digest(), "little") & 0x7FFF_FFFF_FFFF_FFFF


def _old_repr_seed(*parts: object) -> int:
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & 0x7FFF_FFFF_FFFF_FFFF


def test_seeds_are_bit_identical_to_the_original_formulas() -> None:
    """The shared hashing helper feeds the same bytes: every random stream is unchanged."""
    x = images(3, 8, seed=2)
    target = torch.tensor([0, 4, 2])
    for base in (0, 7, -3):
        expected = [_old_image_seed(img, lab, base) for img, lab in zip(x.numpy(), target.tolist(), strict=True)]
        assert image_seeds(x, target, base) == expected
        ids = ["img_0", "n01440764/ILSVRC2012_val_00000293.JPEG", "é#independent"]
        assert id_seeds(ids, base) == [_old_id_seed(i, base) for i in ids]
    assert _mix_seed(11, 3) == _old_repr_seed(11, 3)
    context = AttackContext(original_ids=["a"], probs=torch.zeros(1, 2), pool=None, pool_probs=None, seed=5)
    generator = context.generator("a", "b", "gaussian_noise")
    reference = torch.Generator().manual_seed(_old_repr_seed(5, "a", "b", "gaussian_noise"))
    assert torch.equal(torch.rand(4, generator=generator), torch.rand(4, generator=reference))
