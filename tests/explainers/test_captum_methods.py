"""Any Captum attribution method by name (``captum.<Name>``, xaibench.explainers.captum_methods).

Every offered method is checked against a direct Captum call on the same classifier (the
normalisation is inside it), for batch invariance, and for the output contract; the layer
methods' maps are Captum's layer attributions summed over channels, upsampled with
``LayerAttribution.interpolate`` (bilinear) and repeated over the image channels.

Tolerances. The explainer makes the very Captum call the reference makes, on the same
tensors, so the values agree to float32 rounding (``rtol = 1e-6``; in practice they are
bitwise equal). Batch invariance compares a batch with one image at a time: CPU convolution
kernels may sum in another order for another batch size (≈1e-7 relative on a logit), so
gradient maps agree to 1e-5 of their largest value; perturbation methods return differences
of logits, f(x) − f(x with a feature replaced), whose rounding error is that of the logits
themselves, so their tolerance is 2e-5 of the largest logit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from captum import attr as captum_attr
from captum.attr import LayerAttribution
from torch import nn

from xaibench.errors import ConfigError, UnknownPluginError
from xaibench.explainers import captum_methods
from xaibench.explainers.captum_params import adapt
from xaibench.registry import explainers
from xaibench.types import explanation_seeds

from .helpers import images, predicted, seeded, wrap

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


class ReluNet(nn.Module):
    """3×16×16 → 5 logits, only modules Captum's LRP and guided backprop know."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.relu2 = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.fc = nn.Linear(32, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.relu2(self.conv2(self.relu1(self.conv1(x))))), 1))


@pytest.fixture(scope="module")
def net():
    return wrap(seeded(4, ReluNet), "relu_net", 16, 5).requires_grad_(False)


#: One small setting per offered method (layers of ReluNet).
CASES: dict[str, dict] = {
    "Deconvolution": {},
    "DeepLift": {"baselines": 0.25},
    "FeatureAblation": {"patch_size": 4, "baselines": 0.5, "perturbations_per_eval": 4},
    "GradientShap": {"n_samples": 3, "stdevs": 0.05},
    "GuidedBackprop": {},
    "GuidedGradCam": {"layer": "conv2"},
    "InputXGradient": {},
    "IntegratedGradients": {"n_steps": 6, "method": "riemann_trapezoid"},
    "InternalInfluence": {"layer": "conv2", "n_steps": 4},
    "KernelShap": {"patch_size": 4, "n_samples": 12},
    "LRP": {},
    "LayerConductance": {"layer": "relu1", "n_steps": 4},
    "LayerDeepLift": {"layer": "conv2"},
    "LayerFeatureAblation": {"layer": "pool"},
    "LayerGradCam": {"layer": "conv2", "relu_attributions": True},
    "LayerGradientShap": {"layer": "conv2", "n_samples": 3},
    "LayerGradientXActivation": {"layer": "conv2"},
    "LayerIntegratedGradients": {"layer": "conv2", "n_steps": 4},
    "LayerLRP": {"layer": "conv2"},
    "Lime": {"patch_size": 4, "n_samples": 12},
    "Occlusion": {"sliding_window_shapes": [3, 6, 6], "strides": [3, 4, 4]},
    "Saliency": {"abs": False},
    "ShapleyValueSampling": {"patch_size": 8, "n_samples": 2},
    "ShapleyValues": {"patch_size": 8},
}
INIT_ONLY = ("multiply_by_inputs", "eps", "memory_efficient")
PERTURBATION = {n for n in CASES if not explainers.get("captum." + n).needs_gradients}


def _mask(x: torch.Tensor, patch: int) -> torch.Tensor:
    """Square-patch feature ids, written independently of the implementation."""
    h, w = x.shape[2:]
    ids = torch.arange((h // patch) * (w // patch)).view(h // patch, w // patch)
    return ids.repeat_interleave(patch, 0).repeat_interleave(patch, 1).view(1, 1, h, w)


def direct_captum(name: str, classifier, params: dict, x: torch.Tensor, t: torch.Tensor, noise_ids=None):
    """The Captum call written out by hand: the reference for ``captum.<name>``."""
    cls = getattr(captum_attr, name)
    params = dict(params)
    init = {k: params.pop(k) for k in INIT_ONLY if k in params}
    if "layer" in params:
        init["layer"] = classifier.model.get_submodule(params.pop("layer"))
    method = cls(classifier, **init)
    seed = params.pop("seed", 0)
    if "patch_size" in params:
        params["feature_mask"] = _mask(x, params.pop("patch_size"))
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()}
    if name in ("GradientShap", "LayerGradientShap"):
        kwargs["baselines"] = torch.full_like(x[:1], float(kwargs.get("baselines", 0.0)))

    def call(xs, ts):
        xs = xs.clone().requires_grad_(explainers.get("captum." + name).needs_gradients)
        return method.attribute(xs, target=ts, **kwargs)

    if name in captum_methods.RANDOM:
        parts = []
        for i, s in enumerate(explanation_seeds(x, t, seed, noise_ids)):
            torch.manual_seed(s)
            np.random.seed(s % 2**32)
            parts.append(call(x[i : i + 1], t[i : i + 1]))
        out = torch.cat(parts)
    else:
        out = call(x, t)
    if issubclass(cls, LayerAttribution):
        heat = LayerAttribution.interpolate(out.sum(1, keepdim=True), x.shape[2:], interpolate_mode="bilinear")
        out = heat.expand(-1, x.shape[1], -1, -1)
    return out.detach()


def test_every_captum_class_is_offered_or_skipped_with_a_reason():
    offered = captum_methods.offered()
    skipped = captum_methods.skipped()
    assert set(offered) == set(CASES), "every offered method has a test case"
    for name in ("GuidedBackprop", "Occlusion", "LayerGradCam", "InputXGradient", "Deconvolution",
                 "FeatureAblation", "ShapleyValueSampling", "LRP", "Lime", "KernelShap"):
        assert name in offered
    for name in ("NeuronGradient", "FeaturePermutation", "NoiseTunnel", "DeepLiftShap", "LayerActivation"):
        assert skipped[name], name
    classes = {n for n in dir(captum_attr) if isinstance(getattr(captum_attr, n), type)
               and issubclass(getattr(captum_attr, n), captum_attr.Attribution)}
    assert classes == set(offered) | set(skipped)
    assert set(explainers.provided_names("captum.*")) | set(explainers.names("captum.*")) == {
        "captum." + n for n in offered
    }


def test_parameters_are_typed_with_captum_defaults():
    params = {p.name: p for p in explainers.params("captum.Occlusion")}
    assert list(params) == ["sliding_window_shapes", "strides", "baselines", "perturbations_per_eval"]
    assert params["sliding_window_shapes"].required and params["sliding_window_shapes"].type_name == "list[int]"
    assert params["strides"].default is None and params["strides"].type_name == "int | list[int] | None"
    assert params["perturbations_per_eval"].default == 1
    ig = {p.name: p for p in explainers.params("captum.IntegratedGradients")}
    assert ig["n_steps"].default == 50 and ig["method"].default == "gausslegendre"
    assert "gausslegendre" in ig["method"].choices and ig["multiply_by_inputs"].default is True
    cam = {p.name: p for p in explainers.params("captum.LayerGradCam")}
    assert cam["layer"].required and cam["layer"].type_name == "str"
    assert "device_ids" not in cam and "attr_dim_summation" not in cam
    assert {p.name for p in explainers.params("captum.ShapleyValueSampling")} >= {"n_samples", "patch_size", "seed"}
    # A suite's values are checked and converted like any plugin's.
    assert explainers.coerce_params("captum.Occlusion", {"sliding_window_shapes": [1, 4.0, 4]}) == {
        "sliding_window_shapes": [1, 4, 4]
    }
    with pytest.raises(ConfigError, match=r"unknown parameter 'stride'.*Did you mean 'strides'"):
        explainers.validate_params("captum.Occlusion", {"sliding_window_shapes": [1, 4, 4], "stride": 2})
    with pytest.raises(ConfigError, match="needs the parameter layer"):
        explainers.validate_params("captum.LayerGradCam", {})


def test_capabilities_come_from_captum(net):
    meta = explainers.get("captum.IntegratedGradients").metadata()
    assert meta["title"] == "IntegratedGradients" and meta["summary"].startswith("Integrated Gradients is")
    assert meta["multiplies_by_inputs"] and meta["has_completeness"] and meta["convergence_param"] == "n_steps"
    assert meta["uses_baseline"] and meta["needs_gradients"] and not meta["is_random"]
    backprop = explainers.get("captum.GuidedBackprop").metadata()
    assert not backprop["multiplies_by_inputs"] and not backprop["has_completeness"]
    assert not explainers.get("captum.Occlusion").needs_gradients
    assert explainers.get("captum.ShapleyValueSampling").is_random
    assert not explainers.get("captum.LayerIntegratedGradients").has_completeness  # an upsampled layer map
    plain = explainers.get("captum.IntegratedGradients")(net, multiply_by_inputs=False, n_steps=4)
    assert not plain.multiplies_by_inputs and not plain.has_completeness
    assert plain.completeness_gap(images(1, 16), torch.tensor([0]), torch.zeros(1, 3, 16, 16)) is None
    assert explainers.origin("captum.Saliency") == "captum"


@pytest.mark.kernels
@pytest.mark.parametrize("name", sorted(CASES))
def test_values_equal_a_direct_captum_call(net, name):
    x = images(3, 16, seed=5)
    t = predicted(net, x)
    explainer = explainers.get("captum." + name)(net, **CASES[name])
    ours = explainer.explain(x, t)
    ref = direct_captum(name, net, CASES[name], x, t)
    assert ours.shape == x.shape and ours.dtype == torch.float32
    assert torch.isfinite(ours).all()
    # Lime's default surrogate is a Lasso (alpha 0.01) that zeroes this random net's small effects.
    assert ours.abs().max() > 0 or name == "Lime"
    torch.testing.assert_close(ours, ref.float(), rtol=1e-6, atol=1e-6 * float(ref.abs().max()))


@pytest.mark.kernels
@pytest.mark.parametrize("name", sorted(CASES))
def test_batch_equals_one_image_at_a_time(net, name):
    x = images(4, 16, seed=6)
    t = predicted(net, x)
    explainer = explainers.get("captum." + name)(net, **CASES[name])
    state, numpy_state = torch.get_rng_state(), np.random.get_state()
    batch = explainer.explain(x, t)
    assert torch.equal(torch.get_rng_state(), state)
    assert np.array_equal(np.random.get_state()[1], numpy_state[1])
    singles = torch.cat([explainer.explain(x[i : i + 1], t[i : i + 1]) for i in range(4)])
    with torch.no_grad():
        logit_scale = float(net(x).abs().max())
    atol = 2e-5 * logit_scale if name in PERTURBATION else 1e-5 * float(batch.abs().max())
    torch.testing.assert_close(batch, singles, rtol=1e-4, atol=atol)
    shuffled = explainer.explain(x.flip(0), t.flip(0)).flip(0)
    torch.testing.assert_close(shuffled, batch, rtol=1e-4, atol=atol)


def test_output_contract_and_hygiene(net):
    x = images(2, 16, seed=2)
    before = x.clone()
    t = predicted(net, x)
    explainer = explainers.get("captum.LayerGradCam")(net, layer="conv2")
    a = explainer.explain(x, t)
    assert a.shape == x.shape and not a.requires_grad and a.grad_fn is None
    assert torch.equal(a[:, 0], a[:, 1]) and torch.equal(a[:, 0], a[:, 2])  # repeated over channels
    assert torch.equal(x, before) and not x.requires_grad and x.grad is None
    assert all(p.grad is None and not p.requires_grad for p in net.parameters())
    torch.testing.assert_close(explainer.explain(x, int(t[0])), explainer.explain(x, t[:1].expand(2)))


def test_random_methods_draw_from_the_noise_ids(net):
    x = images(1, 16, seed=7).expand(3, -1, -1, -1).contiguous()
    t = predicted(net, x)
    explainer = explainers.get("captum.ShapleyValueSampling")(net, patch_size=4, n_samples=1, seed=3)
    a = explainer.explain(x, t, noise_ids=["a", "a", "b"])
    torch.testing.assert_close(a[0], a[1], rtol=0, atol=0)
    assert not torch.allclose(a[0], a[2])  # one permutation of 16 patches: another id, another order
    ref = direct_captum("ShapleyValueSampling", net, {"patch_size": 4, "n_samples": 1, "seed": 3}, x, t, ["a", "a", "b"])
    torch.testing.assert_close(a, ref, rtol=1e-6, atol=1e-7)
    other_seed = explainers.get("captum.ShapleyValueSampling")(net, patch_size=4, n_samples=1, seed=4)
    assert not torch.allclose(other_seed.explain(x[:1], t[:1], noise_ids=["a"]), a[:1])


def test_completeness_gap_matches_captums_convergence_delta(net):
    x = images(3, 16, seed=8)
    t = predicted(net, x)
    explainer = explainers.get("captum.IntegratedGradients")(net, n_steps=16, baselines=0.5)
    a = explainer.explain(x, t)
    ours = explainer.completeness_gap(x, t, a)
    ig = captum_attr.IntegratedGradients(net)
    _, delta = ig.attribute(x.clone(), baselines=0.5, target=t, n_steps=16, return_convergence_delta=True)
    with torch.no_grad():
        span = net(x).gather(1, t[:, None]).squeeze(1) - net(torch.full_like(x, 0.5))[0, t]
    torch.testing.assert_close(ours.double(), (delta.abs() / span.abs()).double(), rtol=1e-3, atol=1e-6)
    with torch.no_grad():
        logits = net(x)
    torch.testing.assert_close(explainer.completeness_gap(x, t, a, logits=logits), ours)
    assert float(ours.max()) < 0.05


def test_lrp_is_refused_for_modules_without_a_rule(net):
    from xaibench.models.digits_cnn import DigitsCNN, wrap_digits_cnn

    digits = wrap_digits_cnn(seeded(0, DigitsCNN), 32)
    reason = explainers.get("captum.LRP").incompatibility(digits)
    assert reason and "Flatten" in reason
    assert explainers.get("captum.LayerLRP").incompatibility(digits)
    assert explainers.get("captum.LRP").incompatibility(net) is None
    assert explainers.get("captum.GuidedBackprop").incompatibility(digits) is None


def test_layer_names_resolve_on_the_network_and_a_bad_one_is_explained(resnet18):
    cam = explainers.get("captum.LayerGradCam")
    assert cam(resnet18, layer="layer3").captum.layer is resnet18.model.layer3
    assert cam(resnet18, layer="layer4.1.conv2").captum.layer is resnet18.model.layer4[1].conv2
    assert cam(resnet18, layer="model.layer4").captum.layer is resnet18.model.layer4
    with pytest.raises(ConfigError, match=r"has no layer 'layr4'\. Did you mean 'layer4'\?.*layer1, layer2"):
        cam(resnet18, layer="layr4")
    x = images(2, 32, seed=9)
    a = cam(resnet18, layer="layer3").explain(x, predicted(resnet18, x))
    assert a.shape == x.shape and a.abs().max() > 0


def test_unknown_and_unusable_captum_names():
    with pytest.raises(UnknownPluginError, match=r"Did you mean 'captum\.GuidedBackprop'\?"):
        explainers.get("captum.GuidedBackprob")
    with pytest.raises(UnknownPluginError, match=r"Did you mean 'captum\.GuidedBackprop'\?"):
        explainers.get("captum.guidedbackprop")
    with pytest.raises(UnknownPluginError, match=r"'captum\.NeuronGradient' cannot be used.*neuron"):
        explainers.get("captum.NeuronGradient")
    with pytest.raises(UnknownPluginError, match="FeaturePermutation.*batch"):
        explainers.get("captum.FeaturePermutation")
    assert "captum.NoSuchMethod" not in explainers


def test_sizes_are_checked_against_the_models_images(net):
    with pytest.raises(ConfigError, match="ShapleyValueSampling"):
        explainers.get("captum.ShapleyValues")(net)  # 768 features
    with pytest.raises(ConfigError, match="patch_size must be"):
        explainers.get("captum.FeatureAblation")(net, patch_size=0)
    with pytest.raises(ConfigError, match=r"sliding_window_shapes \[1, 4, 4, 4\] does not fit.*3×16×16"):
        explainers.get("captum.Occlusion")(net, sliding_window_shapes=[1, 4, 4, 4])
    with pytest.raises(ConfigError, match=r"does not fit the model's 3×16×16"):
        explainers.get("captum.Occlusion")(net, sliding_window_shapes=[3, 17, 4])


def test_transformer_block_tokens_become_a_patch_map(vit):
    x = images(2, 32, seed=10)
    t = predicted(vit, x)
    explainer = explainers.get("captum.LayerIntegratedGradients")(vit, layer="blocks.1", n_steps=4)
    ours = explainer.explain(x, t)
    tokens = captum_attr.LayerIntegratedGradients(vit, vit.model.blocks[1]).attribute(x, target=t, n_steps=4)
    grid = tokens[:, 1:].sum(2).reshape(2, 1, 2, 2)  # one class token, 2×2 patches of 16 px
    ref = LayerAttribution.interpolate(grid, (32, 32), interpolate_mode="bilinear").expand(-1, 3, -1, -1)
    torch.testing.assert_close(ours, ref.detach(), rtol=1e-5, atol=1e-6 * float(ref.abs().max()))


# --------------------------------------------------------------------------------------
# Through the runner and the CLI
# --------------------------------------------------------------------------------------

SUITE = """
[suite]
name = "captum-digits"
seed = 0
device = "cpu"

[dataset]
name = "digits"
limit = 2

[[models]]
name = "digits_cnn"

[[explainers]]
name = "captum.GuidedBackprop"

[[explainers]]
name = "captum.LayerGradCam"
layer = "conv3"

[[attacks]]
name = "exiaa"
alphas = [0.1]
topks = [0.2]
n_attack_images = 1
"""


def test_a_suite_runs_captum_methods_by_name(tmp_path: Path):
    from xaibench.runner import build_plan, run_plan
    from xaibench.runner.results import read_results
    from xaibench.runner.suite import load_suite

    path = tmp_path / "suite.toml"
    path.write_text(SUITE)
    out = tmp_path / "out"
    report = run_plan(build_plan(load_suite(str(path)), out))
    assert report.units_failed == 0
    frame = read_results(out)
    assert set(frame["explainer"]) == {"captum.GuidedBackprop", "captum.LayerGradCam"}
    cam = frame[frame["explainer"] == "captum.LayerGradCam"]
    assert all('"layer": "conv3"' in p for p in cam["explainer_params"])
    assert frame["explanation_change_pct"].notna().all()


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (('layer = "conv3"', 'layer = "conv_3"'), ["[explainers[1]]", "no layer 'conv_3'", "Did you mean 'conv3'"]),
        (('name = "captum.GuidedBackprop"', 'name = "captum.GuidedBackprob"'),
         ["[explainers[0].name]", "Did you mean 'captum.GuidedBackprop'"]),
        (('layer = "conv3"', 'layer = "conv3"\nrelu = true'),
         ["[explainers[1]]", "unknown parameter 'relu'", "Did you mean 'relu_attributions'"]),
    ],
)
def test_suite_errors_name_the_key(tmp_path: Path, xaibench_cli, edit, expected):
    path = tmp_path / "suite.toml"
    path.write_text(SUITE.replace(*edit))
    code, _, err = xaibench_cli(["run", "--suite", str(path), "--out", str(tmp_path / "out")])
    assert code == 2 and "Traceback" not in err
    for fragment in expected:
        assert fragment in err, (fragment, err)


def test_list_explainers_shows_the_captum_methods(xaibench_cli):
    code, out, _ = xaibench_cli(["list", "explainers"])
    assert code == 0
    for name in captum_methods.offered():
        assert f"captum.{name}" in out, name
    assert "sliding_window_shapes: list[int] (required)" in out
    assert "from captum" in out


def test_adaptation_is_cached_and_names_its_reason():
    assert adapt("GuidedBackprop") is adapt("GuidedBackprop")
    assert isinstance(adapt("NeuronGradient"), str)
