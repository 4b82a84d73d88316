"""AttEXplore (Zhu et al., ICLR 2024): attribution along a frequency-explored transfer-attack path.

Code name AMPE in the authors' repository. Starting at the image, ``num_steps`` sign steps are
taken; each step averages the loss gradients of ``N`` "approximate features" (SSA spectrum
simulation: ``IDCT(DCT(x_t + ξ) ⊙ M)``, each passed through DI input diversity), smooths the
average with a Gaussian (TI), divides it by its mean ``|·|`` and adds it to a momentum buffer
``G_t``. The attribution is ``Σ_t s·(x_{t+1} − x_t) ⊙ G_t`` (``s = −1`` when descending), which
is ``α·Σ_t |G_t|`` wherever no clip binds and never negative.

Units: images are pixel-space ``[0, 1]`` (the classifier normalises inside, as the reference's
``Normalize`` layer does), so ``epsilon``, ``step_size`` and ``sigma`` are fractions of the
pixel range: the paper's ``ε = 48/255`` and ``σ = 16`` (divided by 255 in the code) become
``0.188`` and ``0.0627``. Where the authors' code departs from the paper, the code's behaviour
is the default and a parameter switches to the paper's variant (``docs/attexplore.md``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import ConfigError
from ..hashing import seed_of
from ..registry import explainers
from ..types import Classifier, Explainer, explanation_seeds
from ._common import cast_params, check_choice, finish, prepare
from ._dct import dct2, idct2

Loss = Literal["reference", "reference_la", "neg_prob", "ce"]
Direction = Literal["descend", "ascend"]
Mask = Literal["uniform", "gaussian"]
GradWrt = Literal["sample", "iterate"]
DiMode = Literal["auto", "pad", "pad_resize_back"]
LOSSES, DIRECTIONS, MASKS, GRAD_WRT, DI_MODES = (get_args(t) for t in (Loss, Direction, Mask, GradWrt, DiMode))


def _check_settings(s: dict[str, Any]) -> None:
    """Values out of range are a ``ConfigError`` that says what is valid."""
    for what, valid in (
        ("loss", LOSSES), ("direction", DIRECTIONS), ("mask", MASKS), ("grad_wrt", GRAD_WRT), ("di_mode", DI_MODES),
    ):
        check_choice("attexplore", what, s[what], valid)
    if s["num_steps"] < 1 or s["N"] < 1:
        raise ConfigError("attexplore: num_steps and N must be ≥ 1")
    for what in ("epsilon", "sigma", "rho", "momentum"):
        if not s[what] >= 0.0:
            raise ConfigError(f"attexplore: {what} must be ≥ 0 (pixel units), got {s[what]!r}")
    if s["step_size"] is not None and not s["step_size"] > 0.0:
        raise ConfigError(f"attexplore: step_size must be > 0 or None, got {s['step_size']!r}")
    if not 0.0 <= s["di_prob"] <= 1.0:
        raise ConfigError(f"attexplore: di_prob must be in [0, 1], got {s['di_prob']!r}")
    if not s["di_ratio"] >= 1.0:
        raise ConfigError(f"attexplore: di_ratio must be ≥ 1, got {s['di_ratio']!r}")
    if s["ti_size"] < 0 or (s["ti_size"] > 1 and s["ti_size"] % 2 == 0):
        raise ConfigError(f"attexplore: ti_size must be odd (or 0/1 for no TI), got {s['ti_size']!r}")
    if not s["ti_nsig"] > 0.0:
        raise ConfigError(f"attexplore: ti_nsig must be > 0, got {s['ti_nsig']!r}")
    if s["samples_batch_size"] is not None and s["samples_batch_size"] < 1:
        raise ConfigError("attexplore: samples_batch_size must be ≥ 1 or None")


def label_loss(logits: Tensor, target: Tensor, kind: str) -> Tensor:
    """Per-row loss of the target class, from logits (the reference model outputs softmax).

    ``reference``: ``−log_softmax(softmax(softmax(z)))[y]`` (ATTEXPLORE repo: softmax layer in
    the model, ``use_softmax=True``, then cross-entropy); ``reference_la``:
    ``−log_softmax(softmax(z))[y]`` (the LA repo, ≈ ``neg_prob`` in direction);
    ``neg_prob``: ``−softmax(z)[y]``; ``ce``: plain cross-entropy on the logits.
    """
    index = target.view(-1, 1)
    if kind == "ce":
        return -F.log_softmax(logits, dim=1).gather(1, index).squeeze(1)
    if kind == "neg_prob":
        return -F.softmax(logits, dim=1).gather(1, index).squeeze(1)
    z = F.softmax(logits, dim=1)
    if kind == "reference":
        z = F.softmax(z, dim=1)
    return -F.log_softmax(z, dim=1).gather(1, index).squeeze(1)


def gaussian_kernel(size: int, nsig: float) -> Tensor:
    """The reference TI kernel: N(0,1) pdf at ``linspace(−nsig, nsig, size)``, outer, sum 1.

    For 7×7 and nsig 3 the taps are one pixel apart, so the kernel std is 1 px (centre 0.15924).
    Float64 on the CPU; cast where used.
    """
    taps = torch.linspace(-float(nsig), float(nsig), int(size), dtype=torch.float64)
    one_d = torch.exp(-0.5 * taps * taps)  # the pdf's constant cancels in the normalisation
    kernel = torch.outer(one_d, one_d)
    return kernel / kernel.sum()


def resize_pad(
    x: Tensor, size_h: Tensor, size_w: Tensor, top: Tensor, left: Tensor, out_hw: tuple[int, int]
) -> Tensor:
    """Per row: bilinear resize to ``size_h×size_w`` then zero-pad to ``out_hw`` at ``top/left``.

    One ``grid_sample`` for all rows, each with its own size and offsets. It equals
    ``F.interpolate(..., mode="bilinear", align_corners=False)`` followed by ``F.pad`` with
    zeros (the reference DI), since both map output pixel ``i`` to source coordinate
    ``(i − top + ½)·H/size − ½`` and clamp it to the image (``padding_mode="border"``).
    """
    rows = x.shape[0]
    out_h, out_w = out_hw
    dtype, device = x.dtype, x.device
    i = torch.arange(out_h, device=device, dtype=dtype).unsqueeze(0)
    j = torch.arange(out_w, device=device, dtype=dtype).unsqueeze(0)
    top_f, left_f = top.to(dtype).unsqueeze(1), left.to(dtype).unsqueeze(1)
    size_h_f, size_w_f = size_h.to(dtype).unsqueeze(1), size_w.to(dtype).unsqueeze(1)
    gy = 2.0 * (i - top_f + 0.5) / size_h_f - 1.0
    gx = 2.0 * (j - left_f + 0.5) / size_w_f - 1.0
    grid = torch.stack(
        (gx.unsqueeze(1).expand(rows, out_h, out_w), gy.unsqueeze(2).expand(rows, out_h, out_w)),
        dim=-1,
    )
    resized = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    inside_h = (i >= top_f) & (i < top_f + size_h_f)
    inside_w = (j >= left_f) & (j < left_f + size_w_f)
    inside = (inside_h.unsqueeze(2) & inside_w.unsqueeze(1)).unsqueeze(1)
    return resized * inside.to(dtype)


def _mix_seed(seed: int, *salt: int) -> int:
    return seed_of(int(seed), *salt)


@dataclass
class AttExploreTrace:
    """The path of one ``trace`` call (model dtype and device).

    ``iterates`` holds ``x_0 … x_T``; ``buffers`` the momentum buffers ``G_0 … G_{T−1}``, each
    the one that chose the step out of ``iterates[t]``. Empty unless recording was asked for.
    """

    attributions: Tensor
    iterates: list[Tensor] = field(default_factory=list)
    buffers: list[Tensor] = field(default_factory=list)
    di_mode: str = "off"


@explainers.register("attexplore")
class AttExploreExplainer(Explainer):
    """AttEXplore / AMPE, batched over images and over the ``N`` samples of each step.

    Defaults reproduce the reference code with the paper's Table 1 budget (``ε = 48/255``;
    the code's own default is 16/255): ``num_steps=10`` sign steps of ``ε/num_steps``,
    ``N=20`` samples per step with pixel noise ``σ = 16/255`` and a spectrum mask
    ``U[1−ρ, 1+ρ]`` (``ρ = 0.5``), DI (probability 0.5, resize-pad to ``int(1.15·H)``), TI
    (7×7 Gaussian, σ = 1 px), division by the mean ``|g|``, momentum 1, the triple-softmax loss,
    and *descent* of that loss (the path raises the target's confidence).

    Paper variants: ``direction="ascend"``, ``loss="ce"`` or ``"neg_prob"``, ``di_prob=0``,
    ``ti_size=1``, ``normalize=False``, ``mask="gaussian"``, ``grad_wrt="iterate"``.
    ``di_mode="auto"`` zero-pads (the reference) when the model accepts the larger input and
    otherwise resizes the padded image back to ``H×W`` (the LA repo's variant, e.g. for ViTs);
    a one-image probe forward decides, once per input size.

    Randomness: step ``t`` of image ``i`` draws from a CPU generator seeded by
    ``(explanation_seeds(x, y, seed, noise_ids)[i], t)`` (the id's seed when the
    runner passes ``noise_ids``: common random numbers for an original and its corrupted copies), in a fixed order (the DI draws of the step, then noise
    and mask per sample), so results do not depend on the batch, on ``samples_batch_size`` or
    on the device. ``samples_batch_size`` caps the samples per image in one forward/backward
    (``None``: all ``N``, i.e. ``B·N`` rows per pass). Cost per image:
    ``num_steps·N`` forward and backward rows (200 at the defaults), plus ``num_steps − 1``
    no-grad forwards with ``early_stop``.
    """

    title = "AttEXplore"
    summary = "attribution along a frequency-explored transfer-attack path (Zhu et al., ICLR 2024)"
    needs_gradients = True
    is_random = True
    uses_baseline = False
    # Each term is a pixel displacement times a gradient, like IG's (x − b) ⊙ ∇f.
    multiplies_by_inputs = True
    has_completeness = False

    def __init__(
        self,
        classifier: Classifier,
        epsilon: float = 48 / 255,
        num_steps: int = 10,
        N: int = 20,
        sigma: float = 16 / 255,
        rho: float = 0.5,
        momentum: float = 1.0,
        step_size: float | None = None,
        loss: Loss = "reference",
        direction: Direction = "descend",
        mask: Mask = "uniform",
        grad_wrt: GradWrt = "sample",
        di_prob: float = 0.5,
        di_ratio: float = 1.15,
        di_mode: DiMode = "auto",
        ti_size: int = 7,
        ti_nsig: float = 3.0,
        normalize: bool = True,
        use_sign: bool = True,
        early_stop: bool = False,
        seed: int = 0,
        samples_batch_size: int | None = None,
    ):
        # The signature above is the one declaration of the settings: every parameter,
        # cast to its declared type, becomes an attribute and a recorded parameter.
        given = {k: v for k, v in locals().items() if k not in ("self", "classifier", "__class__")}
        settings = cast_params("attexplore", AttExploreExplainer.__init__, given)
        _check_settings(settings)
        super().__init__(classifier, **settings)
        vars(self).update(settings)
        # T·α = ε by default, so the ε-ball clip never binds (spec §2.10 P3).
        self.alpha = self.step_size if self.step_size is not None else self.epsilon / self.num_steps
        self.sign = -1.0 if self.direction == "descend" else 1.0
        self.samples_per_pass = min(self.N, int(self.samples_batch_size or self.N))
        self._accepts_size: dict[tuple[int, int], bool] = {}

    # -- public -------------------------------------------------------------------------
    def explain(self, x01: Tensor, target: Tensor, noise_ids: Sequence[str] | None = None) -> Tensor:
        return finish(self.trace(x01, target, noise_ids=noise_ids).attributions, x01)

    def trace(
        self, x01: Tensor, target: Tensor, *, record: bool = False, noise_ids: Sequence[str] | None = None
    ) -> AttExploreTrace:
        """Run the exploration; with ``record`` also return the iterates and buffers.

        ``noise_ids`` (one per image): images with the same id draw the same noise (common
        random numbers, ``types.explanation_seeds``); without them the seed comes from the
        image's content and target.
        """
        x, t = prepare(self.classifier, x01, target)
        seeds = explanation_seeds(x01, t, self.seed, noise_ids)
        di_mode, out_hw = self._resolve_di(x)
        eps, alpha, s = self.epsilon, self.alpha, self.sign
        active = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
        x_t, buffer, attributions = x.clone(), torch.zeros_like(x), torch.zeros_like(x)
        result = AttExploreTrace(attributions, di_mode=di_mode)
        if record:
            result.iterates.append(x_t.clone())
        for step in range(self.num_steps):
            g = self._mean_gradient(x_t, t, seeds, step, di_mode, out_hw)
            g = self._post_process(g)
            buffer = self.momentum * buffer + g
            if self.use_sign:
                proposal = x_t + s * alpha * buffer.sign()
                x_next = (x + (proposal - x).clamp(-eps, eps)).clamp(0.0, 1.0)
            else:
                # The reference's unused L2 branch: 100·α·G/‖G‖₂ per image, no ε-ball clip.
                norm = buffer.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
                direction = buffer / torch.where(norm > 0, norm, torch.ones_like(norm))
                x_next = (x_t + s * 100.0 * alpha * direction).clamp(0.0, 1.0)
            x_next = torch.where(active.view(-1, 1, 1, 1), x_next, x_t)
            # The buffer that chose the step times the actual (clipped) step: ≥ 0 termwise.
            attributions += s * (x_next - x_t) * buffer
            x_t = x_next
            if record:
                result.iterates.append(x_t.clone())
                result.buffers.append(buffer.clone())
            if self.early_stop and step < self.num_steps - 1:
                # MFABA-style early stop: a row whose prediction left the target stops moving.
                with torch.no_grad():
                    active &= self.classifier(x_t).argmax(1) == t
        result.attributions = attributions
        return result

    def ti_kernel(self, channels: int, like: Tensor) -> Tensor:
        """The depthwise TI weight, ``channels × 1 × k × k``."""
        kernel = gaussian_kernel(self.ti_size, self.ti_nsig).to(device=like.device, dtype=like.dtype)
        return kernel.expand(channels, 1, self.ti_size, self.ti_size).contiguous()

    # -- internals ----------------------------------------------------------------------
    def _post_process(self, g: Tensor) -> Tensor:
        if self.ti_size > 1:
            g = F.conv2d(g, self.ti_kernel(g.shape[1], g), padding=self.ti_size // 2, groups=g.shape[1])
        if self.normalize:
            # Reference: g / mean|g| per image. An all-zero gradient (saturated softmax) makes
            # that 0/0 = NaN; leaving it zero gives a zero step instead.
            scale = g.abs().mean(dim=(1, 2, 3), keepdim=True)
            g = g / torch.where(scale > 0, scale, torch.ones_like(scale))
        return g

    def _resolve_di(self, x: Tensor) -> tuple[str, tuple[int, int]]:
        """DI mode for this input size: ``off``, ``pad`` or ``pad_resize_back``; output size."""
        h, w = int(x.shape[-2]), int(x.shape[-1])
        out_hw = (int(h * self.di_ratio), int(w * self.di_ratio))
        if self.di_prob == 0.0 or out_hw[0] <= h or out_hw[1] <= w:
            return "off", (h, w)
        if self.di_mode != "auto":
            return self.di_mode, out_hw
        if out_hw not in self._accepts_size:
            probe = torch.zeros((1, x.shape[1], *out_hw), device=x.device, dtype=x.dtype)
            try:
                with torch.no_grad():
                    self.classifier(probe)
                self._accepts_size[out_hw] = True
            except Exception:  # fixed-size models (ViT patch embedding) reject other sizes
                self._accepts_size[out_hw] = False
        return ("pad" if self._accepts_size[out_hw] else "pad_resize_back"), out_hw

    def _draws(self, generators: list[torch.Generator], k: int, shape: tuple[int, ...]) -> tuple[Tensor, Tensor]:
        """Noise ``ξ/σ`` and mask ``M`` of the next ``k`` samples of each image, ``B×k×C×H×W``.

        Drawn per sample in a fixed order from each image's CPU generator, so the values do
        not depend on how the samples are chunked or on the device.
        """
        noise, masks = [], []
        for generator in generators:
            for _ in range(k):
                noise.append(torch.randn(shape, generator=generator))
                if self.mask == "uniform":
                    masks.append(torch.rand(shape, generator=generator))
                else:
                    masks.append(torch.randn(shape, generator=generator))
        b = len(generators)
        return torch.stack(noise).view(b, k, *shape), torch.stack(masks).view(b, k, *shape)

    def _mean_gradient(
        self,
        x_t: Tensor,
        t: Tensor,
        seeds: list[int],
        step: int,
        di_mode: str,
        out_hw: tuple[int, int],
    ) -> Tensor:
        """``(1/N)·Σ_n ∂ℓ/∂x_f^(n)`` per image (or w.r.t. ``x_t`` with ``grad_wrt="iterate"``)."""
        shape = tuple(x_t.shape[1:])
        generators = [torch.Generator(device="cpu").manual_seed(_mix_seed(s, step)) for s in seeds]
        # DI draws of the whole step first: coin, size, top, left (4 × N uniforms per image).
        di_draws = torch.stack([torch.rand((4, self.N), generator=g) for g in generators])
        total = torch.zeros_like(x_t)
        for start in range(0, self.N, self.samples_per_pass):
            k = min(self.samples_per_pass, self.N - start)
            noise, mask = self._draws(generators, k, shape)
            total += self._chunk_gradient(
                x_t, t, noise, mask, di_draws[:, :, start : start + k], di_mode, out_hw
            )
        return total / self.N

    def _chunk_gradient(
        self,
        x_t: Tensor,
        t: Tensor,
        noise: Tensor,
        mask: Tensor,
        di_draws: Tensor,
        di_mode: str,
        out_hw: tuple[int, int],
    ) -> Tensor:
        """Summed gradients of ``k`` samples per image: one forward/backward of ``B·k`` rows."""
        b, k = noise.shape[:2]
        shape = tuple(x_t.shape[1:])
        rows = b * k
        dtype, device = x_t.dtype, x_t.device
        noise = noise.to(device=device, dtype=dtype).view(rows, *shape)
        u = mask.to(device=device, dtype=dtype).view(rows, *shape)
        spectrum_mask = 1.0 + self.rho * (2.0 * u - 1.0) if self.mask == "uniform" else 1.0 + self.rho * u
        targets = t.repeat_interleave(k)
        base = x_t.unsqueeze(1).expand(b, k, *shape).reshape(rows, *shape)
        with torch.enable_grad():
            if self.grad_wrt == "iterate":
                leaf = base.detach().requires_grad_(True)
                x_f = idct2(dct2(leaf + self.sigma * noise) * spectrum_mask)
            else:
                # SSA convention: the gradient stops at the approximate feature x_f.
                with torch.no_grad():
                    x_f = idct2(dct2(base + self.sigma * noise) * spectrum_mask)
                leaf = x_f.requires_grad_(True)
                x_f = leaf
            loss = self._di_loss(x_f, targets, di_draws.permute(0, 2, 1).reshape(rows, 4), di_mode, out_hw)
            (grad,) = torch.autograd.grad(loss, leaf)
        return grad.view(b, k, *shape).sum(dim=1)

    def _di_loss(
        self, x_f: Tensor, targets: Tensor, draws: Tensor, di_mode: str, out_hw: tuple[int, int]
    ) -> Tensor:
        """Sum of per-row losses after DI (differentiated through), ``draws`` ``rows×4``."""
        if di_mode == "off":
            return label_loss(self.classifier(x_f), targets, self.loss).sum()
        h, w = x_f.shape[-2:]
        out_h, out_w = out_hw
        # Integer DI parameters on the CPU in float64 (exact, and MPS has no float64), then
        # moved: sizes uniform in [H, out−1], pads in [0, out−size−1] (torch.randint ranges).
        draws = draws.to(device="cpu", dtype=torch.float64)
        size_h = (h + (draws[:, 1] * (out_h - h)).floor()).clamp(max=out_h - 1)
        size_w = (w + (draws[:, 1] * (out_w - w)).floor()).clamp(max=out_w - 1)
        top = (draws[:, 2] * (out_h - size_h)).floor().clamp(max=out_h - size_h - 1)
        left = (draws[:, 3] * (out_w - size_w)).floor().clamp(max=out_w - size_w - 1)
        size_h, size_w, top, left = (v.long().to(x_f.device) for v in (size_h, size_w, top, left))
        applied = (draws[:, 0] < self.di_prob).to(x_f.device)
        idx_a = applied.nonzero().squeeze(1)
        idx_n = (~applied).nonzero().squeeze(1)
        parts = []
        if idx_n.numel():
            parts.append((x_f[idx_n], targets[idx_n]))
        if idx_a.numel():
            inputs_a = resize_pad(
                x_f[idx_a], size_h[idx_a], size_w[idx_a], top[idx_a], left[idx_a], out_hw
            )
            if di_mode == "pad_resize_back":
                inputs_a = F.interpolate(inputs_a, size=(h, w), mode="bilinear", align_corners=False)
            parts.append((inputs_a, targets[idx_a]))
        if di_mode == "pad_resize_back" and len(parts) == 2:
            # Every row is H×W again: one forward.
            parts = [(torch.cat([parts[0][0], parts[1][0]]), torch.cat([parts[0][1], parts[1][1]]))]
        # With "pad", two sub-batches: the model sees H×W rows and out_h×out_w rows.
        loss = x_f.new_zeros(())
        for inputs, rows_targets in parts:
            loss = loss + label_loss(self.classifier(inputs), rows_targets, self.loss).sum()
        return loss


def loss_at(classifier: Classifier, x: Tensor, target: Tensor, kind: str) -> Tensor:
    """Per-image ``label_loss`` at ``x`` (no grad): for completeness-style checks."""
    with torch.no_grad():
        return label_loss(classifier(x), target, kind)


__all__ = [
    "AttExploreExplainer",
    "AttExploreTrace",
    "gaussian_kernel",
    "label_loss",
    "loss_at",
    "resize_pad",
]
