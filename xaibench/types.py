"""The contracts every layer shares (see DESIGN.md).

Pixel space everywhere: every image tensor that crosses a module boundary is float32,
``N×C×H×W``, with values in ``[0, 1]``. Normalisation lives inside ``Classifier``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from .hashing import seed63, seed_of

# --------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------


class Classifier(nn.Module):
    """Wraps any torch image model: pixel-space ``[0,1]`` input, logits out.

    ``mean``/``std`` normalisation happens inside ``forward`` so no caller ever has to ask
    whether a tensor is normalised. ``pretrained_source`` records where the weights came from.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        name: str,
        num_classes: int,
        input_size: tuple[int, int],
        mean: Sequence[float],
        std: Sequence[float],
        in_channels: int = 3,
        class_names: Sequence[str] | None = None,
        pretrained_source: str = "random initialisation",
        notes: Sequence[str] = (),
    ):
        super().__init__()
        self.model = model
        self.name = name
        self.num_classes = int(num_classes)
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.in_channels = int(in_channels)
        self.class_names = list(class_names) if class_names is not None else [
            str(i) for i in range(self.num_classes)
        ]
        self.pretrained_source = pretrained_source
        self.notes: list[str] = list(notes)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
        self.channels_last = False
        self.eval()

    def forward(self, x01: Tensor) -> Tensor:
        x = (x01 - self.mean) / self.std
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.model(x)

    def use_channels_last(self, enabled: bool = True) -> Classifier:
        """Channels-last is ~3× faster for small CPU batches on depthwise CNNs (DESIGN.md)."""
        self.channels_last = enabled
        self.model.to(memory_format=torch.channels_last if enabled else torch.contiguous_format)
        return self

    def provenance(self) -> dict[str, Any]:
        return {
            "model": self.name,
            "num_classes": self.num_classes,
            "input_size": list(self.input_size),
            "pretrained_source": self.pretrained_source,
            "notes": list(self.notes),
            "channels_last": self.channels_last,
        }


# --------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------

UNKNOWN_LABEL = -1


@dataclass
class ImageBatch:
    """Images with their ids and labels (``-1`` where the label is unknown)."""

    ids: list[str]
    pixels: Tensor
    labels: Tensor

    def __post_init__(self) -> None:
        if self.pixels.ndim != 4:
            raise ValueError(f"ImageBatch pixels must be N×C×H×W, got shape {tuple(self.pixels.shape)}")
        if len(self.ids) != self.pixels.shape[0] or len(self.labels) != self.pixels.shape[0]:
            raise ValueError("ImageBatch: ids, pixels and labels must have the same length")

    def __len__(self) -> int:
        return len(self.ids)

    def select(self, index: Sequence[int] | Tensor) -> ImageBatch:
        index = torch.as_tensor(index, dtype=torch.long)
        return ImageBatch(
            ids=[self.ids[i] for i in index.tolist()],
            pixels=self.pixels[index],
            labels=self.labels[index],
        )

    def to(self, device: torch.device | str) -> ImageBatch:
        return ImageBatch(self.ids, self.pixels.to(device), self.labels.to(device))

    def images(self, index: Tensor) -> Tensor:
        """Pixels of the rows in ``index`` (any shape), shaped ``index.shape + C×H×W``."""
        return self.pixels[index.to(self.pixels.device)]


class ImagePool:
    """Images an attack may draw from, loaded on demand.

    An ImageNet pool of thousands of images does not fit in memory at 224 px; attacks only
    need the pixels of the few images they pick, so the pool keeps ids and a loader.
    ``ImageBatch`` offers the same ``ids`` / ``__len__`` / ``images`` interface for small pools.
    """

    def __init__(self, ids: Sequence[str], load: Callable[[list[int]], Tensor]):
        self.ids = list(ids)
        self._load = load

    def __len__(self) -> int:
        return len(self.ids)

    def images(self, index: Tensor) -> Tensor:
        rows = index.reshape(-1).cpu()
        unique, inverse = torch.unique(rows, return_inverse=True)
        pixels = self._load(unique.tolist())
        if pixels.shape[0] != unique.numel():
            raise RuntimeError("ImagePool: the loader returned a different number of images")
        return pixels[inverse].reshape(*index.shape, *pixels.shape[1:])


# --------------------------------------------------------------------------------------
# Explainers
# --------------------------------------------------------------------------------------


def image_seeds(x01: Tensor, target: Tensor, base_seed: int) -> list[int]:
    """One seed per image, from the suite seed and the image's own content and target.

    Seeding each image from what it *is* (not from its position in a batch) makes random
    explainers give the same values whether an image is explained alone or in any batch, and
    lets any shard be recomputed alone.
    """
    pixels = x01.detach().to("cpu", torch.float32).contiguous().numpy()
    targets = target.detach().to("cpu").tolist()
    base = int(base_seed).to_bytes(8, "little", signed=True)
    return [
        seed63(base, int(label).to_bytes(8, "little", signed=True), np.ascontiguousarray(image).tobytes())
        for image, label in zip(pixels, targets, strict=True)
    ]


def id_seeds(noise_ids: Sequence[str], base_seed: int) -> list[int]:
    """One seed per image from the suite (or explainer) seed and an *id*, not the pixels.

    Common random numbers: the runner hands a random explainer the id of the **original**
    image for the original and for every corrupted copy of it, so ``E(x)`` and ``E(x̂)`` draw
    the same noise and their difference is the attack's effect, not two independent draws.
    The seed depends only on ``(base_seed, id)``: an image gets the same noise alone, in any
    batch, on any executor.
    """
    base = int(base_seed).to_bytes(8, "little", signed=True)
    return [seed63(base, str(noise_id).encode("utf-8"), person=b"xaibench-crn") for noise_id in noise_ids]


def explanation_seeds(
    x01: Tensor, target: Tensor, base_seed: int, noise_ids: Sequence[str] | None = None
) -> list[int]:
    """The per-image seeds a random explainer draws from: from ``noise_ids`` when the caller
    gives them (common random numbers, see :func:`id_seeds`), else from each image's content
    and target (:func:`image_seeds`; e.g. an attack's own oracle calls)."""
    if noise_ids is None:
        return image_seeds(x01, target, base_seed)
    if len(noise_ids) != x01.shape[0]:
        raise ValueError(f"noise_ids has {len(noise_ids)} ids for {x01.shape[0]} images")
    return id_seeds(noise_ids, base_seed)


class _ClassOrInstanceMethod:
    """A method that runs on the class (``Cls.m()``) or on an instance (``obj.m()``).

    ``metadata()`` reads class attributes, but an instance may override one (AGI is random
    only with ``classes="sampled"``): called on the instance, it sees the instance's value.
    """

    def __init__(self, function: Callable[..., Any]):
        self.function = function
        functools.update_wrapper(self, function)  # type: ignore[arg-type]

    def __get__(self, instance: Any, owner: type) -> Callable[..., Any]:
        return functools.partial(self.function, owner if instance is None else instance)


def _display_name(plugin: Any) -> str:
    """``title``, else the registered ``name``, else the class name."""
    cls = plugin if isinstance(plugin, type) else type(plugin)
    return str(getattr(plugin, "title", "") or getattr(plugin, "name", "") or cls.__name__)


#: The capability attributes of an explainer, in the order ``Explainer.metadata`` lists them.
EXPLAINER_CAPABILITIES = (
    "needs_gradients",
    "uses_baseline",
    "is_random",
    "multiplies_by_inputs",
    "has_completeness",
    "convergence_param",
    "fuses_prediction",
    "reuses_logits",
)


class Explainer:
    """Attribution method: ``explain(x01, target)`` → attributions with the shape of ``x01``.

    Metadata (class attributes): ``title`` (display name; ``""`` = the registered name) and
    ``summary`` (one line for ``xaibench list`` and tooltips).

    Capabilities are class attributes too, declared (the runner and the leaderboard read
    them; nothing is inferred from signatures):

    * ``needs_gradients``, ``uses_baseline``, ``multiplies_by_inputs``;
    * ``is_random``: the attributions depend on a seed. A random explainer must accept
      ``explain(x01, target, noise_ids=[...])``: one id per image, and images with the same
      id draw the same noise (``explanation_seeds``). The runner passes ``noise_ids`` only
      to random explainers: the original's id for the original and all its corrupted copies
      (common random numbers), and ``"<id>#independent"`` for the noise-floor draw. Without
      ``noise_ids`` the seed comes from the image's content. An instance may set
      ``self.is_random`` when randomness depends on its parameters (AGI's sampled classes).
    * ``has_completeness``: Σ attribution should equal ``f(x) − f(baseline)`` (IG, DeepLIFT);
      then ``completeness_gap(x01, target, attributions)`` returns the per-image relative
      gap. ``convergence_param``: the integer parameter whose doubling shrinks the gap
      (IG: ``n_steps``); with ``max_completeness_gap`` on a suite entry the runner chooses it.
    * ``reuses_logits``: ``completeness_gap(x01, target, attributions, logits=None)`` uses
      the logits of ``x01`` when given; the runner then passes those it already has, so
      ``f(x)`` need not be forwarded again.
    * ``fuses_prediction``: the class implements ``explain_predicted(x01) -> (attributions,
      logits)``: explain each image's *predicted* class and return the logits (``N×K``,
      float32) of the same forward pass, the target being ``logits.argmax(dim=1)``; the
      attributions must equal ``explain(x01, logits.argmax(dim=1))``. Gradient explainers
      (saliency, input × gradient) get the prediction, the probabilities and the gradient
      from one forward + backward, where the runner would otherwise forward every
      corrupted image once more to predict it. A subclass that overrides ``explain``
      without overriding ``explain_predicted`` gets ``fuses_prediction = False`` (its
      inherited ``explain_predicted`` would no longer match), unless it sets the attribute
      itself.

    Optional: a classmethod ``incompatibility(classifier) -> str | None`` (the planner skips
    the model × explainer pair with that reason); a classmethod
    ``memory_per_image(params, image_shape) -> (bytes, why) | None``: the memory the explainer
    needs at once for one image (``params`` are its resolved parameters, ``image_shape`` is
    C×H×W), so the planner refuses a setting that cannot fit on the device before any work
    (``why`` names the parameters responsible); a classmethod ``passes_per_image(params) ->
    (forward, backward)``: the model passes one explanation of one image costs (saliency (1, 1),
    IG (n_steps, n_steps)), shown by ``xaibench plan`` (undeclared: shown as unknown).
    """

    name: ClassVar[str]
    title: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    needs_gradients: ClassVar[bool] = True
    uses_baseline: ClassVar[bool] = False
    is_random: ClassVar[bool] = False
    multiplies_by_inputs: ClassVar[bool] = False
    # Whether Σ attribution should equal f(x) − f(baseline) (IG, DeepLIFT, DeepLIFT SHAP).
    has_completeness: ClassVar[bool] = False
    # The integer parameter whose doubling shrinks the completeness gap (IG: ``n_steps``).
    # With ``max_completeness_gap`` on a suite entry the runner chooses it per model.
    convergence_param: ClassVar[str | None] = None
    # ``explain_predicted`` is implemented (and consistent with ``explain``).
    fuses_prediction: ClassVar[bool] = False
    # ``completeness_gap`` uses the ``logits=`` it is given.
    reuses_logits: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = vars(cls)
        if "explain" in own and "explain_predicted" not in own and "fuses_prediction" not in own:
            cls.fuses_prediction = False

    def __init__(self, classifier: Classifier, **params: Any):
        self.classifier = classifier
        self.params = params

    def explain(self, x01: Tensor, target: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def completeness_gap(self, x01: Tensor, target: Tensor, attributions: Tensor) -> Tensor | None:
        """Per image ``|Σa − (f(x) − f(b))| / |f(x) − f(b)|``; ``None`` when undefined."""
        return None

    @_ClassOrInstanceMethod
    def metadata(self_or_cls: Any) -> dict[str, Any]:  # noqa: N805
        """Title, summary and every capability, JSON-able (on the class or an instance)."""
        return {
            "title": _display_name(self_or_cls),
            "summary": self_or_cls.summary,
            **{key: getattr(self_or_cls, key) for key in EXPLAINER_CAPABILITIES},
        }


# --------------------------------------------------------------------------------------
# Attacks
# --------------------------------------------------------------------------------------


class Oracle:
    """What a black-box attack may use: predictions and explanations, nothing else.

    Both calls are batched; the runner decides the chunking. The oracle counts calls so the
    results can report them.
    """

    __slots__ = ("_predict", "_explain", "predict_calls", "explain_calls")

    def __init__(
        self,
        predict: Callable[[Tensor], Tensor],
        explain: Callable[[Tensor, Tensor], Tensor],
    ):
        self._predict = predict
        self._explain = explain
        self.predict_calls = 0
        self.explain_calls = 0

    def predict(self, x01: Tensor) -> Tensor:
        """Class probabilities, ``N×num_classes``."""
        self.predict_calls += int(x01.shape[0])
        return self._predict(x01)

    def explain(self, x01: Tensor, target: Tensor) -> Tensor:
        """Attributions for ``target``, same shape as ``x01``."""
        self.explain_calls += int(x01.shape[0])
        return self._explain(x01, target)


@dataclass
class AttackContext:
    """What the runner hands an attack besides the oracle.

    ``original_ids`` are the ids of the batch's originals (row ``i`` of ``x01``); ``seed`` is
    the suite seed. Draw random numbers from ``generator(original_id, …)``, never from the
    global RNG: an image then gets the same draws in any batch and on any executor.
    ``cache`` is shared by the attacks of one batch (eXIAA and its baseline share the
    attack images' explanations through it). ``pool`` is the image pool attack images come from (the suite's dataset); ``pool_probs``
    are the oracle's probabilities on it, computed once per (model, pool) and cached;
    ``probs`` are the oracle's probabilities on the originals (already needed by the runner).
    ``pool_labels`` holds one dataset label per pool row (``UNKNOWN_LABEL`` = unknown); when
    it is ``None`` an ``ImageBatch`` pool's own ``labels`` are used, and an ``ImagePool``'s
    labels are unknown.
    """

    original_ids: list[str]
    probs: Tensor
    pool: ImageBatch | ImagePool | None
    pool_probs: Tensor | None
    seed: int
    cache: dict[str, Any] = field(default_factory=dict)
    pool_labels: Tensor | None = None

    def generator(self, *salt: Any, device: torch.device | str = "cpu") -> torch.Generator:
        """A generator seeded from the suite seed and ``salt`` (e.g. the image id):
        ``torch.Generator().manual_seed(seed_of(seed, *salt))`` (``xaibench.hashing``)."""
        generator = torch.Generator(device=device)
        generator.manual_seed(seed_of(self.seed, *salt))
        return generator


@dataclass
class AttackOutput:
    """Corrupted images for a batch of originals, all grid points at once.

    ``images[m]`` is a corrupted copy of original ``origin[m]``. ``columns`` holds one value
    per row for each parameter that identifies the row (``alpha``, ``topk``,
    ``attack_image_id``, …); the runner writes them as Parquet columns.
    """

    images: Tensor
    origin: Tensor
    columns: dict[str, list[Any]]

    def __post_init__(self) -> None:
        rows = self.images.shape[0]
        if self.origin.shape[0] != rows:
            raise ValueError("AttackOutput: origin must have one entry per corrupted image")
        for key, values in self.columns.items():
            if len(values) != rows:
                raise ValueError(f"AttackOutput: column {key!r} has {len(values)} values, expected {rows}")


def grid_axes_of(attack: Attack) -> tuple[str, ...]:
    """The attack's ``grid_axes``, or the keys of its grid points when it declares none."""
    if attack.grid_axes:
        return tuple(attack.grid_axes)
    grid = attack.grid()
    return tuple(grid[0]) if grid else ()


class Attack:
    """An attack on explanations. ``black_box`` attacks receive only the ``Oracle``.

    Metadata (class attributes): ``title``, ``summary``; ``grid_axes``, the ``AttackOutput``
    columns that identify a grid point, in order (the first is the rows of a heatmap / the x
    of a line figure); ``baseline_of``, the plugin name of the attack this one is a baseline
    for; ``needs_pool``, whether it draws images from ``AttackContext.pool``;
    ``representative_row``, column values that pick, among the rows of one original at one
    grid point, the row its examples and attacked-faithfulness rows use (eXIAA: its most
    confident attack image, ``{"attack_image_rank": 0}``; ``{}``: every row at the point).
    """

    name: ClassVar[str]
    title: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    grid_axes: ClassVar[tuple[str, ...]] = ()
    representative_row: ClassVar[dict[str, Any]] = {}
    #: Display names of grid axes where the column name is not one (``{"alpha": "α"}``).
    axis_titles: ClassVar[dict[str, str]] = {}
    baseline_of: ClassVar[str | None] = None
    black_box: ClassVar[bool] = True
    needs_pool: ClassVar[bool] = False

    def grid(self) -> list[dict[str, Any]]:  # pragma: no cover - abstract
        raise NotImplementedError

    def perturb(self, x01: Tensor, oracle: Oracle, context: AttackContext) -> AttackOutput:
        raise NotImplementedError  # pragma: no cover

    def pool_note(self, pool_size: int) -> str | None:
        """Optional: what the planner should tell the user about a pool of ``pool_size`` images
        (e.g. that it holds fewer attack images than asked for); ``None``: nothing."""
        return None

    def images_per_original(self) -> int:
        """Corrupted images (rows) this attack makes from one original, for ``xaibench plan``'s
        cost estimate: one per grid point unless an attack says otherwise."""
        return max(1, len(self.grid()))

    def explained_per_original(self) -> int:
        """Images other than the corrupted ones this attack explains per original (eXIAA: its
        attack images, cached per batch and shared with every attack that uses the same ones,
        so the planner counts the largest of these, not their sum). Default 0."""
        return 0

    def reference_point(self) -> dict[str, Any]:
        """The grid point faithfulness-on-attacked rows and examples use by default.

        The largest grid point, comparing the values of the axes in order (for eXIAA the
        largest α, then the largest top-k); ``{}`` for an attack without a grid. Override it
        to declare another point; a suite's ``reference`` table overrides it on the axes it
        names.
        """
        grid = self.grid()
        if not grid:
            return {}
        axes = grid_axes_of(self)
        largest = max(grid, key=lambda point: tuple(float(point[axis]) for axis in axes))
        return {axis: largest[axis] for axis in axes}

    def metadata(self) -> dict[str, Any]:
        """Title, summary, grid and reference point, JSON-able."""
        return {
            "title": _display_name(self),
            "summary": self.summary,
            "grid_axes": list(grid_axes_of(self)),
            "grid": [dict(point) for point in self.grid()],
            "reference": self.reference_point(),
            "baseline_of": self.baseline_of,
            "representative_row": dict(self.representative_row),
            "axis_titles": dict(self.axis_titles),
            "black_box": self.black_box,
            "needs_pool": self.needs_pool,
        }


# --------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------

#: Names of the row-aligned tensors the runner can hand a robustness metric.
ROW_TENSORS = (
    "original",  # M×C×H×W, the clean image of each row
    "corrupted",  # M×C×H×W
    "expl_original",  # E(x, y*)
    "expl_corrupted",  # E(x̂, ŷ)
    "probs_original",  # M×K
    "probs_corrupted",  # M×K
)


def _metric_metadata(metric: Any) -> dict[str, Any]:
    low, high = metric.value_range
    return {
        "title": _display_name(metric),
        "summary": metric.summary,
        "category": metric.category,
        "higher_is_better": bool(metric.higher_is_better),
        "unit": metric.unit,
        "range": [low, high],
        "digits": metric.digits,
    }


class Metric:
    """One value per row. ``needs`` names the tensors (from ``ROW_TENSORS``) it reads.

    ``__call__(**tensors)`` gets every row tensor the runner has (ignore the extra ones) and
    returns one float value per row. Metadata (class attributes): ``title`` (``""`` = the
    registered name), ``summary``, ``higher_is_better`` (from the explainer's side: a more
    robust explainer scores better), ``category``, ``unit`` (``"%"``, ``"pp"``, ``""``),
    ``value_range`` (``(low, high)``, ``None`` = unbounded) and ``digits`` (decimals in
    tables; ``None`` = automatic). ``default_position``: a metric that sets it is computed in
    suites that name no metrics, in the order of the positions.
    """

    name: ClassVar[str]
    title: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    higher_is_better: ClassVar[bool]
    category: ClassVar[str] = "robustness"
    needs: ClassVar[tuple[str, ...]] = ()
    unit: ClassVar[str] = ""
    value_range: ClassVar[tuple[float | None, float | None]] = (None, None)
    digits: ClassVar[int | None] = None
    default_position: ClassVar[int | None] = None

    def __call__(self, **tensors: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    @_ClassOrInstanceMethod
    def metadata(self_or_cls: Any) -> dict[str, Any]:  # noqa: N805
        """Title, summary, direction, unit, range, digits and ``needs``, JSON-able."""
        return {**_metric_metadata(self_or_cls), "needs": list(self_or_cls.needs)}


# --------------------------------------------------------------------------------------
# Faithfulness metrics
# --------------------------------------------------------------------------------------


@dataclass
class FaithfulnessResult:
    """Per-image scores of a faithfulness metric, with its curves where defined.

    ``curves`` maps a curve name (e.g. ``"deletion"``, or ``"mif"`` and ``"lif"``) to an
    ``N×S`` tensor sampled at ``curve_x`` (length ``S``, the fraction of pixels perturbed).
    ``forward_images`` counts the images the metric pushed through the model.
    """

    scores: Tensor
    curves: dict[str, Tensor] = field(default_factory=dict)
    curve_x: Tensor | None = None
    forward_images: int = 0


class FaithfulnessMetric:
    """Scores how well attributions explain the model, one value per image.

    ``evaluate`` gets the model as a logits function ``forward(x01) -> N×K`` (no gradients
    needed; it accepts any batch size) and must build its perturbed images lazily, in chunks of
    ``chunk_size`` images, so memory stays bounded. Random metrics draw image ``i``'s
    perturbations from a generator seeded with ``seeds[i]`` (batch results = single results).
    ``multiplies_by_inputs`` tells the ``signed`` reduction whether the attributions already
    include the input factor (IG, DeepLIFT) or are raw gradients (saliency, SmoothGrad).
    """

    name: ClassVar[str]
    title: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    higher_is_better: ClassVar[bool]
    category: ClassVar[str] = "faithfulness"
    unit: ClassVar[str] = ""
    value_range: ClassVar[tuple[float | None, float | None]] = (None, None)
    digits: ClassVar[int | None] = None
    default_position: ClassVar[int | None] = None  # as ``Metric.default_position``

    @_ClassOrInstanceMethod
    def metadata(self_or_cls: Any) -> dict[str, Any]:  # noqa: N805
        """Title, summary, direction, unit, range and digits, JSON-able."""
        return _metric_metadata(self_or_cls)

    def evaluate(
        self,
        forward: Callable[[Tensor], Tensor],
        x01: Tensor,
        attributions: Tensor,
        target: Tensor,
        *,
        seeds: Sequence[int],
        chunk_size: int = 8,
        multiplies_by_inputs: bool = False,
    ) -> FaithfulnessResult:  # pragma: no cover - abstract
        raise NotImplementedError
