"""Attribution hygiene: in-place flags cleared, reused modules found."""

from __future__ import annotations

import timm
import torch
from torch import Tensor, nn

from xaibench.models import load_model, prepare_for_attribution
from xaibench.models.hygiene import find_reused_modules
from xaibench.types import Classifier


class SharedReLU(nn.Module):
    """Calls one ReLU twice, like torchvision's BasicBlock."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.act = nn.ReLU(inplace=True)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 5))
        self.unused_dropout = nn.Dropout(0.1)

    def forward(self, x: Tensor) -> Tensor:
        x = self.act(self.conv1(x))
        x = self.act(self.conv2(x))
        x = self.unused_dropout(self.unused_dropout(x))  # reused pass-through: harmless
        return self.head(x)


def _wrap(model: nn.Module, size: int = 8) -> Classifier:
    return Classifier(
        model, name="toy", num_classes=5, input_size=(size, size), mean=(0.5,) * 3, std=(0.25,) * 3
    )


def test_reused_relu_is_detected_and_inplace_cleared() -> None:
    classifier = _wrap(SharedReLU())
    notes = prepare_for_attribution(classifier)
    assert classifier.reused_modules == ["act"]
    assert classifier.model.act.inplace is False
    assert "set inplace=False on 1 modules" in notes
    assert "reused modules: act (called 2×)" in notes
    assert classifier.notes == notes
    # Idempotent: a second pass finds the same reuse and adds no duplicate notes.
    assert prepare_for_attribution(classifier) == []
    assert classifier.reused_modules == ["act"]


def test_find_reused_modules_counts_calls() -> None:
    model = SharedReLU()
    assert find_reused_modules(model, torch.zeros(1, 3, 8, 8)) == [("act", 2)]


def test_clean_model_has_empty_reused_list() -> None:
    model = nn.Sequential(nn.Conv2d(3, 2, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(5))
    classifier = _wrap(model)
    assert prepare_for_attribution(classifier) == []
    assert classifier.reused_modules == []


def test_timm_resnet18_has_no_reuse_and_loses_inplace() -> None:
    reference = timm.create_model("resnet18", pretrained=False)
    inplace_before = sum(getattr(m, "inplace", None) is True for m in reference.modules())
    assert inplace_before > 0
    classifier = load_model("resnet18", pretrained=False)
    assert classifier.reused_modules == []
    assert not any(getattr(m, "inplace", False) for m in classifier.modules())
    assert f"set inplace=False on {inplace_before} modules" in classifier.notes


def test_torchvision_resnet_shared_relus_are_found() -> None:
    import torchvision

    classifier = _wrap(torchvision.models.resnet18(weights=None, num_classes=5), size=32)
    prepare_for_attribution(classifier)
    expected = [f"layer{i}.{j}.relu" for i in range(1, 5) for j in range(2)]
    assert classifier.reused_modules == expected
    assert any("layer1.0.relu (called 2×)" in note for note in classifier.notes)


def test_clearing_inplace_keeps_the_outputs() -> None:
    torch.manual_seed(0)
    model = SharedReLU().eval()
    x = torch.rand(2, 3, 8, 8)
    classifier = _wrap(model)
    with torch.no_grad():
        before = classifier(x)
        prepare_for_attribution(classifier)
        after = classifier(x)
    assert torch.equal(before, after)
