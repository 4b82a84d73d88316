"""Attention rollout and Chefer et al.'s attention relevance against slow per-image oracles.

The oracles never touch ``routed_attention`` or the explainers' code: ``_manual_forward``
runs the timm ViT's modules by hand (patch embedding, ``qkv``, a hand-written softmax, the
MLPs, the head) and keeps every attention map; its logits are checked against the model's
own. Rollout and relevance are then multiplied out per image in a Python loop, in float64.

Random-init ViTs attend almost uniformly (timm initialises ``qkv`` with std 0.02), which
would make every map nearly constant and the comparisons weak: the ``sharp`` models scale
``qkv`` so that attention is peaked. Tolerances: the explainers compute in float32 with
another operation order (scale before vs after ``q·kᵀ``, torch's fused softmax, batched
products), a relative error of ≲ 1e-5; the maps are compared with ``rtol = 1e-4`` and an
absolute floor of 1e-5 of the map's largest value, while the maps themselves vary by far
more than that across pixels, images and targets (checked where it matters).
"""

from __future__ import annotations

import copy
import re

import pytest
import torch
import torch.nn.functional as F

from xaibench.errors import ConfigError
from xaibench.explainers.attention_maps import AttentionRolloutExplainer, CheferAttentionExplainer
from xaibench.registry import explainers

from .helpers import images, predicted, seeded, wrap

NAMES = ("attention_rollout", "chefer_attention")


def _sharpen(classifier, factor: float = 12.0):  # noqa: ANN001, ANN202
    """A copy whose attention is peaked: q and k weights scaled (v untouched)."""
    own = copy.deepcopy(classifier)
    with torch.no_grad():
        for block in own.model.blocks:
            dim = block.attn.qkv.in_features
            block.attn.qkv.weight[: 2 * dim] *= factor
    return own


@pytest.fixture(scope="module")
def sharp_vit(vit):  # noqa: ANN001, ANN201 - the conftest ViT (2×2 patches), peaked attention
    return _sharpen(vit)


@pytest.fixture(scope="module")
def vit64():  # noqa: ANN201 - 4×4 patches, two register tokens (3 prefix tokens), 6 blocks
    import timm

    model = seeded(
        21,
        lambda: timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=64, num_classes=10, reg_tokens=2, depth=6),
    )
    return wrap(model, "vit_tiny_reg_64", 64, 10)


@pytest.fixture(scope="module")
def sharp_vit64(vit64):  # noqa: ANN001, ANN201
    return _sharpen(vit64)


@pytest.fixture(scope="module")
def sharp_vit_avg():  # noqa: ANN201 - no class token, average pooling: read-out = mean of patch rows
    import timm

    model = seeded(
        22,
        lambda: timm.create_model(
            "vit_tiny_patch16_224", pretrained=False, img_size=48, num_classes=10, class_token=False, global_pool="avg", depth=6
        ),
    )
    return _sharpen(wrap(model, "vit_tiny_avg_48", 48, 10))


# --------------------------------------------------------------------------------------
# The oracle: a hand-run ViT and per-image loops
# --------------------------------------------------------------------------------------


def _manual_forward(classifier, x01):  # noqa: ANN001, ANN202
    """Logits and the attention map of every block (1×heads×L×L each), by hand."""
    net = classifier.model
    tokens = net.norm_pre(net.patch_drop(net._pos_embed(net.patch_embed((x01 - classifier.mean) / classifier.std))))
    maps = []
    for block in net.blocks:
        attn = block.attn
        y = block.norm1(tokens)
        n, length, dim = y.shape
        heads = attn.num_heads
        q, k, v = attn.qkv(y).reshape(n, length, 3, heads, dim // heads).permute(2, 0, 3, 1, 4)
        scores = torch.einsum("nhid,nhjd->nhij", q, k) / (dim // heads) ** 0.5
        weights = torch.exp(scores - scores.amax(dim=-1, keepdim=True))
        a = weights / weights.sum(dim=-1, keepdim=True)
        maps.append(a)
        mixed = torch.einsum("nhij,nhjd->nhid", a, v).transpose(1, 2).reshape(n, length, dim)
        tokens = tokens + block.ls1(attn.proj(mixed))
        tokens = tokens + block.ls2(block.mlp(block.norm2(tokens)))
    return net.forward_head(net.norm(tokens)), maps


def _read_out(classifier, relevance, x01):  # noqa: ANN001, ANN202
    """L×L float64 relevance → the 1×C×H×W map (class row, or the mean of patch rows)."""
    net = classifier.model
    prefix = net.num_prefix_tokens
    row = relevance[0, prefix:] if net.global_pool == "token" else relevance[prefix:, prefix:].mean(0)
    h, w = net.patch_embed.grid_size
    heat = row.float().reshape(1, 1, h, w)
    up = F.interpolate(heat, size=tuple(x01.shape[-2:]), mode="bilinear", align_corners=False)
    return up.repeat(1, x01.shape[1], 1, 1)


def _slow_rollout(classifier, x01, head_fusion="mean", discard_ratio=0.0):  # noqa: ANN001, ANN202
    out = []
    for i in range(x01.shape[0]):
        with torch.no_grad():
            logits, maps = _manual_forward(classifier, x01[i : i + 1])
        assert torch.allclose(logits, classifier(x01[i : i + 1]), rtol=1e-4, atol=1e-5)
        length = maps[0].shape[-1]
        rollout = torch.eye(length, dtype=torch.float64)
        for a in maps:
            heads = a[0].double()
            fused = {"mean": heads.mean(0), "max": heads.max(0).values, "min": heads.min(0).values}[head_fusion]
            if discard_ratio > 0:
                count = int(length * length * discard_ratio)
                entries = [(fused[r, c].item(), r * length + c) for r in range(length) for c in range(1, length)]
                for _, flat in sorted(entries)[:count]:  # lowest first, ties by position
                    fused[flat // length, flat % length] = 0.0
            step = fused + torch.eye(length, dtype=torch.float64)
            for r in range(length):
                step[r] = step[r] / step[r].sum()
            rollout = step @ rollout
        out.append(_read_out(classifier, rollout, x01[i : i + 1]))
    return torch.cat(out)


def _slow_chefer(classifier, x01, target):  # noqa: ANN001, ANN202
    out = []
    for i in range(x01.shape[0]):
        x = x01[i : i + 1].clone().requires_grad_(True)
        with torch.enable_grad():
            logits, maps = _manual_forward(classifier, x)
            grads = torch.autograd.grad(logits[0, int(target[i])], maps)
        length = maps[0].shape[-1]
        relevance = torch.eye(length, dtype=torch.float64)
        for a, g in zip(maps, grads, strict=True):
            cam = (g[0].double() * a[0].detach().double()).clamp(min=0).mean(0)
            relevance = relevance + cam @ relevance
        out.append(_read_out(classifier, relevance, x01[i : i + 1]))
    return torch.cat(out)


def _close(actual, expected, rtol=1e-4) -> None:  # noqa: ANN001
    scale = expected.abs().max().item()
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=1e-5 * scale)


# --------------------------------------------------------------------------------------
# (a), (b): equality with the oracles
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("head_fusion", ["mean", "max", "min"])
def test_rollout_equals_the_slow_reference(sharp_vit, sharp_vit64, head_fusion):  # noqa: ANN001
    for classifier, x in ((sharp_vit, images(3, 32, seed=1)), (sharp_vit64, images(2, 64, seed=2))):
        got = AttentionRolloutExplainer(classifier, head_fusion=head_fusion).explain(x, predicted(classifier, x))
        expected = _slow_rollout(classifier, x, head_fusion)
        assert got.dtype == torch.float32 and got.shape == x.shape
        _close(got, expected)
        low_res = expected[:, 0, :: x.shape[-1] // 4, :: x.shape[-1] // 4]
        assert (low_res.amax((1, 2)) - low_res.amin((1, 2))).min() > 100 * 1e-5 * expected.abs().max()


def test_rollout_discard_ratio_equals_the_slow_reference(vit64):  # noqa: ANN001
    # Mildly sharpened: with very peaked attention the lower half of the entries is ~0 already
    # and discarding it would change nothing the comparison could see.
    classifier = _sharpen(vit64, 3.0)
    x = images(2, 64, seed=3)
    plain = AttentionRolloutExplainer(classifier).explain(x, 0)
    for ratio in (0.5, 0.9):
        got = AttentionRolloutExplainer(classifier, discard_ratio=ratio).explain(x, 0)
        _close(got, _slow_rollout(classifier, x, "mean", ratio))
        assert (got - plain).abs().max() > 0.1 * plain.abs().max()


def test_rollout_without_class_token_reads_the_mean_of_patch_rows(sharp_vit_avg):  # noqa: ANN001
    x = images(2, 48, seed=4)
    got = AttentionRolloutExplainer(sharp_vit_avg).explain(x, 0)
    _close(got, _slow_rollout(sharp_vit_avg, x))


def test_chefer_equals_the_slow_per_image_reference(sharp_vit, sharp_vit64, sharp_vit_avg):  # noqa: ANN001
    for classifier, size in ((sharp_vit, 32), (sharp_vit64, 64), (sharp_vit_avg, 48)):
        x = images(3, size, seed=5)
        target = torch.tensor([0, 3, 7])
        got = CheferAttentionExplainer(classifier).explain(x, target)
        expected = _slow_chefer(classifier, x, target)
        assert got.dtype == torch.float32 and got.shape == x.shape
        _close(got, expected)
        other = CheferAttentionExplainer(classifier).explain(x, torch.tensor([5, 5, 5]))
        assert (other - got).abs().max() > 1e-2 * got.abs().max()  # target-specific


def test_rollout_ignores_the_target(sharp_vit):  # noqa: ANN001
    x = images(2, 32, seed=6)
    explainer = AttentionRolloutExplainer(sharp_vit)
    assert torch.equal(explainer.explain(x, torch.tensor([0, 1])), explainer.explain(x, torch.tensor([9, 4])))


# --------------------------------------------------------------------------------------
# (c) batch independence and determinism
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_batch_independence_and_determinism(sharp_vit64, name):  # noqa: ANN001
    explainer = explainers.get(name)(sharp_vit64)
    x = images(3, 64, seed=7)
    target = torch.tensor([2, 8, 4])
    batch = explainer.explain(x, target)
    alone = torch.cat([explainer.explain(x[i : i + 1], target[i : i + 1]) for i in range(3)])
    _close(batch, alone, rtol=1e-5)
    pair = explainer.explain(x[[2, 0]], target[[2, 0]])
    _close(pair, batch[[2, 0]], rtol=1e-5)
    assert torch.equal(explainer.explain(x, target), batch)


# --------------------------------------------------------------------------------------
# (d) refusal on a model without attention
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_refuses_a_cnn_with_a_reason(tiny, name):  # noqa: ANN001
    cls = explainers.get(name)
    reason = cls.incompatibility(tiny)
    assert reason and name in reason and "'tiny_cnn'" in reason and "Attention" in reason and "saliency" in reason
    with pytest.raises(ConfigError, match=re.escape(reason)):
        cls(tiny).explain(images(1, 16), torch.tensor([0]))


@pytest.mark.parametrize("name", NAMES)
def test_accepts_a_vit(vit, name):  # noqa: ANN001
    assert explainers.get(name).incompatibility(vit) is None


# --------------------------------------------------------------------------------------
# (e) the model is left as it was
# --------------------------------------------------------------------------------------


def _model_state(classifier):  # noqa: ANN001, ANN202
    blocks = [b.attn for b in classifier.model.blocks]
    return (
        [(a.__dict__.get("fused_attn", "unset"), "forward" in a.__dict__, sorted(a._modules)) for a in blocks],
        [(n, p.requires_grad, p.grad is None) for n, p in classifier.named_parameters()],
        classifier.training,
    )


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("fused", [True, False])
def test_the_model_is_unchanged(vit, name, fused):  # noqa: ANN001
    model = copy.deepcopy(vit)
    for block in model.model.blocks:
        block.attn.fused_attn = fused
    x = images(2, 32, seed=8)
    with torch.no_grad():
        before_logits = model(x)
    before = _model_state(model)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    explainers.get(name)(model).explain(x, torch.tensor([1, 2]))
    assert _model_state(model) == before
    assert all(b.attn.fused_attn is fused for b in model.model.blocks)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
    with torch.no_grad():
        assert torch.equal(model(x), before_logits)


# --------------------------------------------------------------------------------------
# (f) uniform attention gives a uniform rollout
# --------------------------------------------------------------------------------------


def test_uniform_attention_gives_a_uniform_rollout(vit):  # noqa: ANN001
    uniform = copy.deepcopy(vit)
    with torch.no_grad():
        for block in uniform.model.blocks:
            dim = block.attn.qkv.in_features
            block.attn.qkv.weight[: 2 * dim] = 0  # q = k = 0: every score 0, every row 1/L
            block.attn.qkv.bias[: 2 * dim] = 0
    x = images(2, 32, seed=9)
    got = AttentionRolloutExplainer(uniform).explain(x, 0)
    net = uniform.model
    length = net.num_prefix_tokens + net.patch_embed.num_patches
    # Â = ½U + ½I with U = 11ᵀ/L idempotent: Â^B = 2^-B·I + (1 − 2^-B)·U; off-diagonal entries.
    expected = (1 - 0.5 ** len(net.blocks)) / length
    torch.testing.assert_close(got, torch.full_like(got, expected), rtol=1e-5, atol=0)
    # The sharpened model's rollout is not uniform: the check can fail.
    sharp = AttentionRolloutExplainer(_sharpen(vit)).explain(x, 0)
    assert (sharp.amax() - sharp.amin()) > 1e-3 * expected


# --------------------------------------------------------------------------------------
# Registration, metadata, parameters
# --------------------------------------------------------------------------------------


def test_metadata_and_passes():
    rollout, chefer = explainers.get("attention_rollout"), explainers.get("chefer_attention")
    assert rollout is AttentionRolloutExplainer and chefer is CheferAttentionExplainer
    for cls in (rollout, chefer):
        meta = cls.metadata()
        assert meta["title"] and meta["summary"]
        assert not meta["is_random"] and not meta["has_completeness"] and not meta["fuses_prediction"]
    assert not rollout.needs_gradients and chefer.needs_gradients
    assert rollout.passes_per_image({}) == (1, 0) and chefer.passes_per_image({}) == (1, 1)


def test_invalid_parameters_are_config_errors(vit):  # noqa: ANN001
    with pytest.raises(ConfigError, match="head_fusion.*valid: mean, max, min"):
        AttentionRolloutExplainer(vit, head_fusion="median")
    for ratio in (-0.1, 1.0, "x"):
        with pytest.raises(ConfigError, match="discard_ratio"):
            AttentionRolloutExplainer(vit, discard_ratio=ratio)
