"""SmoothGrad (and SmoothGrad², VarGrad): saliency averaged over noisy copies of the image."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal, get_args

import torch
from captum.attr import Saliency
from torch import Tensor

from ..errors import ConfigError
from ..registry import explainers
from ..types import Classifier, Explainer, explanation_seeds
from ._common import check_choice, finish, prepare, quiet_captum

NtType = Literal["smoothgrad", "smoothgrad_sq", "vargrad"]
NT_TYPES: tuple[str, ...] = get_args(NtType)


@explainers.register("smoothgrad")
class SmoothGradExplainer(Explainer):
    """Captum-equivalent ``NoiseTunnel(Saliency)``, seeded per image instead of globally.

    ``stdevs`` is an absolute standard deviation in pixel units (images are in [0, 1]):
    0.15 is 15 % of the range, the AttEXplore paper's setting. ``abs=False`` (the default)
    is classic SmoothGrad, the mean of signed gradients; ``abs=True`` averages |gradients|.

    Captum's ``NoiseTunnel`` draws the noise of the whole expanded batch from the global RNG,
    so an image's explanation depends on which images share its batch. Here the noise of
    image ``i`` comes from a ``torch.Generator`` seeded with ``explanation_seeds(x, y, seed, noise_ids)[i]``
    (from the id the runner passes: the original's id for the original and every corrupted copy
    of it, so both are explained with the same noise; else from the image's content),
    drawn as ``torch.normal(0, stdevs, (nt_samples, C, H, W))`` — the very numbers
    ``NoiseTunnel`` draws for that image alone after ``torch.manual_seed(seed_i)`` (Captum's
    ``torch.normal(0, std_tensor)`` fills a standard normal and scales it, which gives the same
    floats as drawing with ``std`` directly). The noisy copies of the whole batch are then
    attributed in one ``Saliency`` call, or in chunks of ``nt_samples_batch_size`` samples
    per image. The global RNG is never touched; the noise is drawn on the CPU so that CPU and
    GPU runs see the same noise.
    """

    title = "SmoothGrad"
    summary = "saliency averaged over noisy copies of the image (Smilkov et al. 2017)"
    is_random = True

    def __init__(
        self,
        classifier: Classifier,
        nt_samples: int = 16,
        stdevs: float = 0.15,
        abs: bool = False,  # Captum's name for the flag
        seed: int = 0,
        nt_type: NtType = "smoothgrad",
        nt_samples_batch_size: int | None = None,
    ):
        check_choice("smoothgrad", "nt_type", nt_type, NT_TYPES)
        if int(nt_samples) < 1:
            raise ConfigError("smoothgrad: nt_samples must be ≥ 1")
        if not float(stdevs) >= 0.0:
            raise ConfigError(f"smoothgrad: stdevs must be ≥ 0 (pixel units), got {stdevs!r}")
        if nt_samples_batch_size is not None and int(nt_samples_batch_size) < 1:
            raise ConfigError("smoothgrad: nt_samples_batch_size must be ≥ 1 or None")
        super().__init__(
            classifier,
            nt_samples=int(nt_samples),
            stdevs=float(stdevs),
            abs=bool(abs),
            seed=int(seed),
            nt_type=nt_type,
            nt_samples_batch_size=nt_samples_batch_size,
        )
        self.nt_samples = int(nt_samples)
        self.stdevs = float(stdevs)
        self.abs = bool(abs)
        self.seed = int(seed)
        self.nt_type = nt_type
        self.samples_per_call = min(self.nt_samples, int(nt_samples_batch_size or self.nt_samples))
        self._saliency = Saliency(classifier)

    @classmethod
    def memory_per_image(cls, params: dict[str, Any], image_shape: Sequence[int]) -> tuple[int, str]:
        """The noise of all ``nt_samples`` draws and the noisy copies exist at once (float32)."""
        samples = int(params["nt_samples"])
        size = 4 * math.prod(image_shape)
        return 2 * samples * size, f"nt_samples = {samples} noisy copies of a {'×'.join(map(str, image_shape))} image"

    @classmethod
    def passes_per_image(cls, params: dict[str, Any]) -> tuple[int, int]:
        return int(params["nt_samples"]), int(params["nt_samples"])

    def noise(self, x01: Tensor, target: Tensor, noise_ids: Sequence[str] | None = None) -> Tensor:
        """The noise for each image, ``N × nt_samples × C × H × W``, on the CPU."""
        t = torch.as_tensor(target).reshape(-1).expand(x01.shape[0])
        shape = (self.nt_samples, *x01.shape[1:])
        draws = []
        # One generator per image is the point (batch invariance); drawing is cheap.
        for seed in explanation_seeds(x01, t, self.seed, noise_ids):
            generator = torch.Generator(device="cpu").manual_seed(seed)
            draws.append(torch.normal(0.0, self.stdevs, size=shape, generator=generator))
        return torch.stack(draws)

    def explain(self, x01: Tensor, target: Tensor, noise_ids: Sequence[str] | None = None) -> Tensor:
        x, t = prepare(self.classifier, x01, target)
        n = x.shape[0]
        noisy = x.unsqueeze(1) + self.noise(x01, t, noise_ids).to(device=x.device, dtype=x.dtype)
        total: Tensor | None = None
        total_sq: Tensor | None = None
        for start in range(0, self.nt_samples, self.samples_per_call):
            stop = min(start + self.samples_per_call, self.nt_samples)
            k = stop - start
            rows = noisy[:, start:stop].reshape(n * k, *x.shape[1:])
            with quiet_captum():
                grads = self._saliency.attribute(
                    rows, target=t.repeat_interleave(k), abs=self.abs
                ).view(n, k, *x.shape[1:])
            # The same sums, in the same order, as Captum's NoiseTunnel.
            part, part_sq = grads.sum(dim=1), torch.pow(grads, 2).sum(dim=1)
            total = part if total is None else total + part
            total_sq = part_sq if total_sq is None else total_sq + part_sq
        assert total is not None and total_sq is not None
        mean, mean_sq = total / self.nt_samples, total_sq / self.nt_samples
        if self.nt_type == "smoothgrad":
            result = mean
        elif self.nt_type == "smoothgrad_sq":
            result = mean_sq
        else:  # vargrad
            result = mean_sq - mean * mean
        return finish(result, x01)
