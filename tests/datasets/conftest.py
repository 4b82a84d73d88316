"""Shared fixtures for the datasets tests: offline, and a small fake ImageNet folder."""

from __future__ import annotations

import os

# Set before anything imports timm / huggingface_hub: these tests must never touch the network.
os.environ["HF_HUB_OFFLINE"] = "1"

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from .helpers import WNIDS, write_image  # noqa: E402


@pytest.fixture
def imagenet_root(tmp_path: Path) -> Path:
    """``<root>/<wnid>/<image>``: 2 + 2 + 1 valid images in three real classes."""
    root = tmp_path / "imagenet-val"
    files = {
        WNIDS[0]: ["ILSVRC2012_val_00000001.JPEG", "ILSVRC2012_val_00000002.png"],
        WNIDS[1]: ["ILSVRC2012_val_00000003.jpg", "ILSVRC2012_val_00000004.JPEG"],
        WNIDS[2]: ["ILSVRC2012_val_00000005.jpeg"],
    }
    seed = 0
    for wnid, names in files.items():
        (root / wnid).mkdir(parents=True)
        for name in names:
            write_image(root / wnid / name, seed)
            seed += 1
    return root
