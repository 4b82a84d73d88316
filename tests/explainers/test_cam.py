"""The CAM family (Grad-CAM, Grad-CAM++, Score-CAM): pytorch-grad-cam as the oracle, target
layers (automatic, overridden, ViT tokens), batch invariance, the output contract.

Tolerances of the oracle comparison. pytorch-grad-cam computes in float32 NumPy with another
summation order: a weighted sum of K ≤ 512 channels differs by ≲ K·2⁻²⁴ ≈ 3e-5 of its
magnitude in the worst case (observed ≤ 2e-6). Raw maps: ``rtol = 1e-4`` and ``atol = 1e-5``
of the map's largest value. Final maps: pytorch-grad-cam min-max scales each one to [0, 1]
(twice, with a 1e-7 floor; an affine map, so it commutes with the bilinear upsampling);
ours are scaled the same way and compared with ``atol = 1e-5`` — maps whose range is not
tiny are checked first, and the two methods differ from each other by > 0.05 on the same
maps, so the tolerance tells them apart.
"""

from __future__ import annotations

import copy
import json

import pytest
import torch
from torch import nn

from xaibench.errors import ConfigError
from xaibench.explainers.cam import (
    GradCAMExplainer,
    GradCAMPlusPlusExplainer,
    ScoreCAMExplainer,
)
from xaibench.explainers.cam_layers import TargetLayer, as_map
from xaibench.registry import explainers

from .helpers import images, predicted, seeded, wrap

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

NAMES = ("grad_cam", "grad_cam_plus_plus", "score_cam")
ORACLE = {"grad_cam": "GradCAM", "grad_cam_plus_plus": "GradCAMPlusPlus", "score_cam": "ScoreCAM"}


@pytest.fixture(scope="module")
def resnet96():
    import timm

    model = seeded(11, lambda: timm.create_model("resnet18", pretrained=False, num_classes=10))
    return wrap(model, "resnet18_96", 96, 10, mean=0.45, std=0.25).requires_grad_(False)


@pytest.fixture(scope="module")
def vit224():
    import timm

    model = seeded(12, lambda: timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=10))
    return wrap(model, "vit_tiny_224", 224, 10).requires_grad_(False)


def _vit_reshape(h: int, w: int):  # noqa: ANN202 - pytorch-grad-cam's documented ViT transform
    def reshape(tensor):  # noqa: ANN001, ANN202
        result = tensor[:, 1:, :].reshape(tensor.size(0), h, w, tensor.size(2))
        return result.transpose(2, 3).transpose(1, 2)

    return reshape


def _oracle(name, classifier, layer, x, t, reshape=None):  # noqa: ANN001, ANN202
    """pytorch-grad-cam's final (scaled) maps and its raw pre-ReLU maps ``Σ_k w_k A_k``."""
    cams = pytest.importorskip("pytorch_grad_cam")
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    own = copy.deepcopy(classifier).eval().requires_grad_(True)  # the tested model stays frozen
    module = own.model.get_submodule(layer)
    cam = getattr(cams, ORACLE[name])(model=own, target_layers=[module], reshape_transform=reshape)
    targets = [ClassifierOutputTarget(int(i)) for i in t]
    scaled = torch.from_numpy(cam(input_tensor=x, targets=targets))
    captured = cam.activations_and_grads
    activations = captured.activations[0].numpy()
    grads = captured.gradients[0].numpy() if captured.gradients else None
    raw = torch.from_numpy(cam.get_cam_image(x, module, targets, activations, grads))
    captured.release()
    return scaled, raw


def _minmax(a: torch.Tensor) -> torch.Tensor:
    a = a[:, 0].double()
    low, high = a.amin(dim=(1, 2), keepdim=True), a.amax(dim=(1, 2), keepdim=True)
    assert (high - low).min() > 1e-3 * a.abs().max(), "a (near) constant map compares nothing"
    return (a - low) / (high - low)


def _check_against_oracle(name, classifier, x, reshape=None, **params):  # noqa: ANN001, ANN202
    t = predicted(classifier, x)
    ours = explainers.get(name)(classifier, **params)
    scaled, raw = _oracle(name, classifier, ours.target_layer, x, t, reshape)
    low = ours.low_res(x, t)
    torch.testing.assert_close(low, raw, rtol=1e-4, atol=1e-5 * float(raw.abs().max()))
    attributions = ours.explain(x, t)
    torch.testing.assert_close(_minmax(attributions), scaled.double(), rtol=0, atol=1e-5)
    return _minmax(attributions)


@pytest.mark.kernels
@pytest.mark.parametrize("name", ["grad_cam", "grad_cam_plus_plus"])
def test_gradient_cams_equal_pytorch_grad_cam_on_a_resnet(name, resnet96):
    ours = _check_against_oracle(name, resnet96, images(3, 96, seed=1))
    other = "grad_cam_plus_plus" if name == "grad_cam" else "grad_cam"
    scaled, _ = _oracle(other, resnet96, "layer4", images(3, 96, seed=1), predicted(resnet96, images(3, 96, seed=1)))
    assert (ours - scaled.double()).abs().max() > 0.05  # the tolerance separates the methods


@pytest.mark.kernels
@pytest.mark.parametrize("name", ["grad_cam", "grad_cam_plus_plus"])
def test_gradient_cams_equal_pytorch_grad_cam_on_a_vit(name, vit224):
    """Tokens → B×D×14×14 after dropping the class token, as pytorch-grad-cam's ViT recipe."""
    assert explainers.get(name)(vit224).target_layer == "blocks.11.norm1"
    _check_against_oracle(name, vit224, images(2, 224, seed=2), reshape=_vit_reshape(14, 14))


@pytest.mark.kernels
def test_score_cam_equals_pytorch_grad_cam(tiny, vit):
    _check_against_oracle("score_cam", tiny, images(3, 16, seed=3), batch_size=5)
    # A ViT: 192 token channels on a 2×2 grid (32 px), chunks across images.
    _check_against_oracle("score_cam", vit, images(2, 32, seed=4), reshape=_vit_reshape(2, 2), batch_size=50)


@pytest.mark.kernels
@pytest.mark.parametrize("name", NAMES)
def test_batch_equals_one_image_at_a_time(tiny, name):
    x = images(4, 16, seed=5)
    t = predicted(tiny, x)
    explainer = explainers.get(name)(tiny, **({"batch_size": 7} if name == "score_cam" else {}))
    batch = explainer.explain(x, t)
    singles = torch.cat([explainer.explain(x[i : i + 1], t[i : i + 1]) for i in range(4)])
    scale = float(batch.abs().max())
    torch.testing.assert_close(batch, singles, rtol=1e-4, atol=1e-5 * scale)
    shuffled = explainer.explain(x.flip(0), t.flip(0)).flip(0)
    torch.testing.assert_close(shuffled, batch, rtol=1e-4, atol=1e-5 * scale)
    assert torch.equal(explainer.explain(x, t), batch)  # deterministic


def test_score_cam_chunks_do_not_change_the_map(tiny):
    x = images(3, 16, seed=6)
    t = predicted(tiny, x)
    one = ScoreCAMExplainer(tiny, batch_size=1).explain(x, t)
    many = ScoreCAMExplainer(tiny, batch_size=1000).explain(x, t)
    torch.testing.assert_close(one, many, rtol=1e-4, atol=1e-5 * float(one.abs().max()))


@pytest.mark.parametrize("name", NAMES)
def test_output_contract_and_hygiene(tiny, name):
    x = images(2, 16, seed=7)
    before = x.clone()
    t = predicted(tiny, x)
    explainer = explainers.get(name)(tiny)
    tiny.train()  # an explainer must attribute the eval-mode model
    state = torch.get_rng_state()
    a = explainer.explain(x, t)
    assert torch.equal(torch.get_rng_state(), state)
    assert not tiny.training
    assert a.shape == x.shape and a.dtype == torch.float32 and a.device == x.device
    assert not a.requires_grad and a.grad_fn is None
    assert torch.isfinite(a).all() and (a >= 0).all() and a.sum() > 0
    assert torch.equal(a[:, 0], a[:, 1]) and torch.equal(a[:, 0], a[:, 2])  # repeated channels
    assert torch.equal(x, before) and not x.requires_grad and x.grad is None
    assert all(p.grad is None for p in tiny.parameters())
    torch.testing.assert_close(explainer.explain(x, int(t[0])), explainer.explain(x, t[:1].expand(2)))


def test_the_target_class_matters(resnet96):
    x = images(1, 96, seed=8)
    explainer = GradCAMExplainer(resnet96)
    assert not torch.allclose(explainer.explain(x, torch.tensor([0])), explainer.explain(x, torch.tensor([1])))


def test_registration_parameters_and_capabilities(tiny):
    for name, title in zip(NAMES, ("Grad-CAM", "Grad-CAM++", "Score-CAM"), strict=True):
        cls = explainers.get(name)
        assert cls.title == title and cls.summary and cls.name == name
        assert not cls.is_random and not cls.has_completeness and not cls.fuses_prediction
        assert not cls.multiplies_by_inputs
        expected = {"target_layer": None, **({"batch_size": 64} if name == "score_cam" else {})}
        assert {p.name: p.default for p in explainers.params(name)} == expected
        json.dumps({**cls.metadata(), **explainers.resolved_params(name, {})})
    assert GradCAMExplainer.needs_gradients and GradCAMPlusPlusExplainer.needs_gradients
    assert not ScoreCAMExplainer.needs_gradients and ScoreCAMExplainer.uses_baseline
    with pytest.raises(ConfigError, match="batch_size"):
        ScoreCAMExplainer(tiny, batch_size=0)


def test_automatic_target_layers(tiny, resnet96, vit224, lite0):
    assert GradCAMExplainer(tiny).layer == TargetLayer("5", "nchw")  # last map larger than 1×1
    assert GradCAMExplainer(resnet96).layer == TargetLayer("layer4", "nchw")  # forward_features
    assert ScoreCAMExplainer(lite0).layer == TargetLayer("bn2", "nchw")
    assert GradCAMExplainer(vit224).layer == TargetLayer("blocks.11.norm1", "tokens", 1, (14, 14))


def test_target_layer_override_and_errors(resnet96):
    x = images(2, 96, seed=9)
    t = predicted(resnet96, x)
    layer3 = GradCAMExplainer(resnet96, target_layer="layer3")
    assert layer3.target_layer == "layer3"
    prefixed = GradCAMExplainer(resnet96, target_layer="model.layer3")  # relative to the classifier
    assert prefixed.target_layer == "layer3"
    torch.testing.assert_close(layer3.explain(x, t), prefixed.explain(x, t))
    assert not torch.allclose(layer3.explain(x, t), GradCAMExplainer(resnet96).explain(x, t))
    # An in-place add follows bn2 in a timm BasicBlock: the captured activation is not touched.
    assert torch.isfinite(GradCAMExplainer(resnet96, target_layer="layer4.1.bn2").explain(x, t)).all()
    with pytest.raises(ConfigError, match=r"grad_cam: target_layer 'layer5'.*close names: layer4"):
        GradCAMExplainer(resnet96, target_layer="layer5")
    with pytest.raises(ConfigError, match="4-D feature map or 3-D tokens"):
        ScoreCAMExplainer(resnet96, target_layer="fc")
    with pytest.raises(ConfigError, match="must be a module name"):
        GradCAMExplainer(resnet96, target_layer=" ")


class _Reused(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
        self.act = nn.ReLU()
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))

    def forward(self, x):  # noqa: ANN001, ANN201
        return self.head(self.act(self.conv2(self.act(self.conv1(x)))))


def test_a_reused_module_is_refused_and_a_model_without_maps_is_incompatible(tiny):
    reused = wrap(seeded(0, _Reused), "reused", 8, 3)
    with pytest.raises(ConfigError, match="called 2 times"):
        GradCAMExplainer(reused, target_layer="act")
    assert "called 2 times" in GradCAMExplainer.incompatibility(reused)  # the automatic choice
    mlp = wrap(seeded(0, lambda: nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 3))), "mlp", 8, 3)
    for cls in (GradCAMExplainer, GradCAMPlusPlusExplainer, ScoreCAMExplainer):
        assert cls.incompatibility(tiny) is None
        assert "no default target layer" in cls.incompatibility(mlp)
    with pytest.raises(ConfigError, match="no default target layer"):
        ScoreCAMExplainer(mlp)


def test_tokens_are_laid_on_their_patch_grid():
    """Token ``P + i·w + j`` becomes pixel ``(i, j)`` of every channel; prefix tokens go."""
    b, prefix, h, w, d = 2, 2, 2, 3, 4
    tokens = torch.arange(b * (prefix + h * w) * d, dtype=torch.float32).reshape(b, prefix + h * w, d)
    grid = as_map(tokens, TargetLayer("t", "tokens", prefix, (h, w)), (32, 48), (32, 48))
    assert grid.shape == (b, d, h, w)
    for i in range(h):
        for j in range(w):
            assert torch.equal(grid[:, :, i, j], tokens[:, prefix + i * w + j, :])
    # Another image size than the probe's keeps the patch stride (16 px): 4×6 patches.
    larger = torch.zeros(b, prefix + 4 * 6, d)
    assert as_map(larger, TargetLayer("t", "tokens", prefix, (h, w)), (64, 96), (32, 48)).shape == (b, d, 4, 6)
    nhwc = torch.rand(b, h, w, d)
    assert torch.equal(as_map(nhwc, TargetLayer("t", "nhwc"), (32, 48), (32, 48)), nhwc.permute(0, 3, 1, 2))


class _ChannelsLastNet(nn.Module):
    """A Swin-like network: ``forward_features`` returns N×h×w×C (``num_features`` = C)."""

    num_features = 6

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 6, 4, stride=4)
        self.norm = nn.LayerNorm(6)
        self.fc = nn.Linear(6, 3)

    def forward_features(self, x):  # noqa: ANN001, ANN201
        return self.norm(self.stem(x).permute(0, 2, 3, 1))

    def forward(self, x):  # noqa: ANN001, ANN201
        return self.fc(self.forward_features(x).mean(dim=(1, 2)))


def test_channels_last_feature_maps():
    net = wrap(seeded(0, _ChannelsLastNet), "nhwc", 32, 3)
    explainer = GradCAMExplainer(net)
    assert explainer.layer == TargetLayer("norm", "nhwc")
    _check_against_oracle("grad_cam", net, images(2, 32, seed=10), reshape=lambda a: a.permute(0, 3, 1, 2))
