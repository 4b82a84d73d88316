"""Example images for the leaderboard: the original, the corrupted copy and both heatmaps."""

from __future__ import annotations

import io
from typing import Any

import torch
from torch import Tensor


def png(image01: Tensor) -> bytes:
    from PIL import Image

    array = (image01.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    if array.shape[2] == 1:
        array = array[:, :, 0]
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def heatmap(attributions: Tensor, side: int = 112) -> Tensor:
    """``Σ_c |a_c|``, average-pooled to at most ``side`` pixels a side."""
    heat = attributions.abs().sum(dim=0, keepdim=True).unsqueeze(0)
    if max(heat.shape[-2:]) > side:
        heat = torch.nn.functional.adaptive_avg_pool2d(heat, (min(side, heat.shape[-2]), min(side, heat.shape[-1])))
    return heat[0, 0].float()


def example_rows(
    rows: list[int],
    *,
    ids: list[str],
    origin: list[int],
    originals: Tensor,
    corrupted: Tensor,
    clean: Tensor,
    attacked: dict[int, Tensor],
    columns: dict[str, list[Any]],
) -> dict[str, list[Any]]:
    """One example per row in ``rows``: the attack's own columns and every robustness metric's
    value at that row (``columns``), the two images as PNG and the two heatmaps."""
    height, width = heatmap(clean[0]).shape
    return {
        "image_id": [ids[origin[r]] for r in rows],
        **{name: [values[r] for r in rows] for name, values in columns.items()},
        "original_png": [png(originals[origin[r]]) for r in rows],
        "corrupted_png": [png(corrupted[r]) for r in rows],
        "heatmap_original": [heatmap(clean[origin[r]]).flatten().tolist() for r in rows],
        "heatmap_corrupted": [heatmap(attacked[r]).flatten().tolist() for r in rows],
        "heatmap_height": [int(height)] * len(rows),
        "heatmap_width": [int(width)] * len(rows),
    }
