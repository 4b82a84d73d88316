"""The CAM family: Grad-CAM, Grad-CAM++ and Score-CAM on a convolutional or token layer.

Every method weighs the K channels of a target layer's activation ``A`` (N×K×h×w; ViT tokens
laid on their patch grid, ``cam_layers``) and returns ``ReLU(Σ_k w_k A_k)`` upsampled
bilinearly (``align_corners=False``, as pytorch-grad-cam's ``cv2.resize``) to the input size
and repeated over the colour channels. Maps are **not** min-max scaled (pytorch-grad-cam
scales each map to [0, 1]; the scale here is the layer's, as for every other explainer).

* Grad-CAM (Selvaraju et al., 2017): ``w_k = mean_ij ∂y/∂A_kij``;
* Grad-CAM++ (Chattopadhay et al., 2018, eq. 19 with the exponential-score closed form, as
  pytorch-grad-cam): ``w_k = Σ_ij α_kij ReLU(g_kij)``,
  ``α = g² / (2g² + Σ_ij A_kij · g³ + 1e-6)`` (0 where ``g = 0``);
* Score-CAM (Wang et al., 2020, Algorithm 1): each channel, upsampled (``align_corners=True``,
  as pytorch-grad-cam) and min-max scaled to [0, 1], masks the pixels; ``w = softmax_k`` of
  the target logits of the K masked images. Masked-out pixels go to 0 (black, pixel space).

``y`` is the target logit. Gradients come from one forward + backward for the whole batch,
through a gradient leaf at the layer only (``cam_layers.Capture``): the classifier stays
frozen, and no weight gradient is computed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from ..registry import explainers
from ..types import Classifier, Explainer
from ._common import finish, prepare
from .cam_layers import Capture, TargetLayer, as_map, cached_layer, find_module, target_layer

#: Grad-CAM++'s denominator floor (pytorch-grad-cam's).
PLUS_PLUS_EPS = 1e-6
#: Score-CAM's mask-scaling floor (pytorch-grad-cam's).
SCORE_EPS = 1e-8


class _CAM(Explainer):
    """Shared plumbing: the target layer, the activation (and gradient) capture, the output."""

    def __init__(self, classifier: Classifier, target_layer: str | None = None, **params):
        owner = getattr(self, "name", type(self).__name__)
        if target_layer is not None and not str(target_layer).strip():
            raise ConfigError(f"{owner}: target_layer must be a module name, got {target_layer!r}")
        super().__init__(classifier, target_layer=target_layer, **params)
        self.layer: TargetLayer = _layer(classifier, target_layer, owner)
        self.target_layer = self.layer.name
        self._module: nn.Module = find_module(classifier.model, self.layer.name)[1]

    @classmethod
    def incompatibility(cls, classifier: nn.Module) -> str | None:
        """Why the automatic target layer does not exist on this model, or None."""
        found = cached_layer(classifier, None)
        return found if isinstance(found, str) else None

    def _map(self, tensor: Tensor, x: Tensor) -> Tensor:
        size = tuple(x.shape[-2:])
        return as_map(tensor, self.layer, size, self.classifier.input_size).float()

    def _activations_and_gradients(self, x: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        """``A`` and ``∂y_target/∂A`` as N×K×h×w float32, from one forward + backward."""
        with torch.enable_grad(), Capture(self._module, leaf=True) as capture:
            logits = self.classifier(x)
            score = logits.gather(1, target.view(-1, 1)).sum()
            (grads,) = torch.autograd.grad(score, capture.value, allow_unused=True)
        if grads is None:
            raise ValueError(f"{self.name}: the logits do not depend on {self.layer.name!r}")
        return self._map(capture.value.detach(), x), self._map(grads, x)

    def _weights(self, x: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:  # pragma: no cover
        raise NotImplementedError

    def low_res(self, x01: Tensor, target: Tensor) -> Tensor:
        """``Σ_k w_k A_k`` before the ReLU and the upsampling, N×h×w (for tests, inspection)."""
        x, t = prepare(self.classifier, x01, target)
        weights, activations = self._weights(x, t)
        return (weights[:, :, None, None] * activations).sum(1)

    def explain(self, x01: Tensor, target: Tensor) -> Tensor:
        cam = self.low_res(x01, target).clamp_min(0).unsqueeze(1)
        up = F.interpolate(cam, size=tuple(x01.shape[-2:]), mode="bilinear", align_corners=False)
        return finish(up.expand(-1, x01.shape[1], -1, -1), x01)


def _layer(classifier: nn.Module, name: str | None, owner: str) -> TargetLayer:
    return target_layer(classifier, None if name is None else str(name), owner)


@explainers.register("grad_cam")
class GradCAMExplainer(_CAM):
    """Grad-CAM: channels weighted by their spatially averaged gradient, ReLU, upsampled."""

    title = "Grad-CAM"
    summary = "target layer's channels weighted by mean gradient, ReLU'd and upsampled"
    needs_gradients = True

    def __init__(self, classifier: Classifier, target_layer: str | None = None):
        super().__init__(classifier, target_layer=target_layer)

    def _weights(self, x: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        activations, grads = self._activations_and_gradients(x, target)
        return grads.mean(dim=(2, 3)), activations


@explainers.register("grad_cam_plus_plus")
class GradCAMPlusPlusExplainer(_CAM):
    """Grad-CAM++: positive gradients weighted by the closed-form α of the paper's eq. 19."""

    title = "Grad-CAM++"
    summary = "Grad-CAM with pixel-wise α weights of the positive gradients (eq. 19)"
    needs_gradients = True

    def __init__(self, classifier: Classifier, target_layer: str | None = None):
        super().__init__(classifier, target_layer=target_layer)

    def _weights(self, x: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        activations, grads = self._activations_and_gradients(x, target)
        g2 = grads.pow(2)
        g3 = g2 * grads
        total = activations.sum(dim=(2, 3), keepdim=True)
        alpha = g2 / (2 * g2 + total * g3 + PLUS_PLUS_EPS)
        alpha = torch.where(grads != 0, alpha, torch.zeros_like(alpha))
        return (grads.clamp_min(0) * alpha).sum(dim=(2, 3)), activations


@explainers.register("score_cam")
class ScoreCAMExplainer(_CAM):
    """Score-CAM: channels weighted by the softmax of the target logit of channel-masked images.

    ``batch_size`` masked images go through the model at once (the N×K masked images of a
    batch are chunked over images and channels alike); it trades memory for speed only.
    """

    title = "Score-CAM"
    summary = "channels weighted by the softmax over channels of the masked images' target logit"
    needs_gradients = False
    uses_baseline = True  # masked-out pixels become 0 (black)

    def __init__(self, classifier: Classifier, target_layer: str | None = None, batch_size: int = 64):
        if int(batch_size) < 1:
            raise ConfigError(f"score_cam: batch_size must be ≥ 1, got {batch_size}")
        super().__init__(classifier, target_layer=target_layer, batch_size=int(batch_size))
        self.batch_size = int(batch_size)

    def _activations(self, x: Tensor) -> Tensor:
        with torch.no_grad(), Capture(self._module, leaf=False) as capture:
            self.classifier(x)
        return self._map(capture.value, x)

    def _weights(self, x: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        activations = self._activations(x)
        n, k, h, w = activations.shape
        flat = activations.reshape(n * k, 1, h, w)
        scores = torch.empty(n * k, device=x.device, dtype=torch.float32)
        for start in range(0, n * k, self.batch_size):
            rows = torch.arange(start, min(start + self.batch_size, n * k), device=x.device)
            image = torch.div(rows, k, rounding_mode="floor")
            masks = _scaled_masks(flat[rows], tuple(x.shape[-2:])).to(x.dtype)
            with torch.no_grad():
                logits = self.classifier(x[image] * masks)
            scores[rows] = logits.gather(1, target[image].view(-1, 1)).squeeze(1).float()
        return torch.softmax(scores.view(n, k), dim=1), activations


def _scaled_masks(maps: Tensor, size: tuple[int, int]) -> Tensor:
    """Each map upsampled (``align_corners=True``) and min-max scaled to [0, 1]."""
    up = F.interpolate(maps, size=size, mode="bilinear", align_corners=True)
    low = up.amin(dim=(2, 3), keepdim=True)
    high = up.amax(dim=(2, 3), keepdim=True)
    return (up - low) / (high - low + SCORE_EPS)
