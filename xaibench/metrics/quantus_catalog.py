"""Which Quantus metrics xaibench runs as ``quantus.<Name>``, and why the others are left out.

Plain data, no import of Quantus (it takes seconds): ``quantus_metrics`` builds the plugin
classes from it on first use. Directions and categories are Quantus 0.6's own
(``score_direction``, ``evaluation_category``) unless an entry overrides the direction, with
the reason in ``docs/metrics.md § Quantus metrics by name``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

#: Quantus constructor parameters a suite cannot set: callables, plotting, aggregation, and
#: the switches the adapter owns (``normalise`` is applied per image by the adapter).
NOT_SETTABLE = frozenset({
    "similarity_func", "perturb_func", "perturb_func_kwargs", "normalise_func",
    "normalise_func_kwargs", "return_aggregate", "aggregate_func", "default_plot_func",
    "disable_warnings", "display_progressbar", "return_auc_per_sample", "loss_func",
    "output_func", "distance_func", "kwargs", "self",
})

#: ``perturb_baseline``: a pixel value, or one of Quantus's named baselines (per image).
Baseline = float | Literal["black", "white", "mean", "uniform"]
#: Baselines Quantus draws from ``np.random``.
RANDOM_BASELINES = frozenset({"uniform"})

#: Annotations for Quantus parameters typed ``str`` that take a fixed set of values.
ANNOTATIONS: dict[str, Any] = {
    "perturb_baseline": Baseline,
    "order": Literal["morf", "lerf", "random"],
    "segmentation_method": Literal["slic", "felzenszwalb"],
}

#: Integer parameters that must be ≥ 1.
POSITIVE = frozenset({
    "features_in_step", "nr_runs", "subset_size", "n_perturb_samples", "nr_samples",
    "patch_size", "regions_evaluation",
})


@dataclass(frozen=True)
class Adapted:
    """How one Quantus metric becomes a per-image xaibench faithfulness metric."""

    category: str  # Quantus's evaluation category (faithfulness, complexity, axiomatic)
    summary: str
    value_range: tuple[float | None, float | None] = (None, None)
    #: "score": one number per image; "curve": one curve per image, score = Quantus's AUC
    #: (trapezoid, dx = 1); "road": ROAD's per-percentage 0/1 accuracy, score = its mean.
    output: str = "score"
    #: What the curve's x axis counts: "features" (features_in_step) or "patches".
    curve_x: str = ""
    random: bool = False  # draws from np.random whatever the parameters
    per_image: bool = False  # Quantus's batch code mixes the images of a call
    uses_model: bool = True
    #: Explicit values for parameters whose Quantus default is ``None``.
    defaults: dict[str, Any] = field(default_factory=dict)
    #: Overrides Quantus's ``score_direction`` (documented where it does).
    higher_is_better: bool | None = None
    #: An AssertionError whose message contains this is a NaN for the image, not an error.
    nan_on: str = ""
    #: A Quantus 0.6 perturbation that fails on images of more than one channel, replaced by
    #: the adapter with one that is the same on one channel: "broadcast_mask" (IROF's
    #: one-channel superpixel mask, asserted to have the image's shape) or "pixel_indices"
    #: (ROAD ranks C·H·W channel entries, its imputation indexes H·W pixels).
    perturb_fix: str = ""
    #: Parameters that must keep one value (a Quantus 0.6 bug otherwise), with the reason.
    pinned: dict[str, tuple[Any, str]] = field(default_factory=dict)


ADAPTED: dict[str, Adapted] = {
    "Sparseness": Adapted(
        "complexity", "Gini index of the attribution (Chalasani et al. 2020)", (0.0, 1.0), uses_model=False
    ),
    "Complexity": Adapted(
        "complexity", "entropy of the attribution's share per feature (Bhatt et al. 2020)", (0.0, None),
        uses_model=False,
    ),
    "EffectiveComplexity": Adapted(
        "complexity", "number of features with attribution above eps (Nguyen & Martínez 2020)", (0.0, None),
        uses_model=False,
    ),
    "FaithfulnessCorrelation": Adapted(
        "faithfulness", "correlation of attribution sums and output drops of random subsets (Bhatt et al. 2020)",
        (-1.0, 1.0), random=True,
    ),
    "FaithfulnessEstimate": Adapted(
        "faithfulness", "correlation of attribution and output drop per step (Alvarez-Melis & Jaakkola 2018)",
        (-1.0, 1.0),
    ),
    "Infidelity": Adapted(
        "faithfulness", "Quantus's patch infidelity (Yeh et al. 2019)", (0.0, None),
        defaults={"perturb_patch_sizes": [4]},
    ),
    "IROF": Adapted(
        "faithfulness", "area over the curve of superpixel removal (Rieger & Hansen 2020)",
        per_image=True, nan_on="number of segments", perturb_fix="broadcast_mask",
    ),
    "Monotonicity": Adapted(
        "faithfulness", "1 if adding features least important first never lowers the output (Arya et al. 2019)",
        (0.0, 1.0),
    ),
    "MonotonicityCorrelation": Adapted(
        "faithfulness", "Spearman correlation of attribution and output variance (Nguyen & Martínez 2020)",
        (-1.0, 1.0),
    ),
    "PixelFlipping": Adapted(
        "faithfulness", "area under the output curve as features are flipped (Bach et al. 2015)", (0.0, None),
        output="curve", curve_x="features",
    ),
    "RegionPerturbation": Adapted(
        "faithfulness", "area under the output-drop curve of patch removal, AOPC (Samek et al. 2016)",
        output="curve", curve_x="patches", higher_is_better=True,
    ),
    "ROAD": Adapted(
        "faithfulness", "share of removal levels that keep the prediction, noisy imputation (Rong et al. 2022)",
        (0.0, 1.0), output="road", random=True, per_image=True, perturb_fix="pixel_indices",
        defaults={"percentages": list(range(1, 100, 2))},
    ),
    "Selectivity": Adapted(
        "faithfulness", "area under the output curve of patch removal (Montavon et al. 2018)", (0.0, None),
        output="curve", curve_x="patches",
    ),
    "Completeness": Adapted(
        "axiomatic", "1 if the attributions sum exactly to f(x) − f(baseline) (Sundararajan et al. 2017)",
        (0.0, 1.0),
    ),
    "NonSensitivity": Adapted(
        "axiomatic", "features whose zero attribution and no effect disagree (Nguyen & Martínez 2020)",
        (0.0, None),
        pinned={"features_in_step": (1, "Quantus 0.6 compares one prediction per step with one attribution "
                                        "per feature, which fails for larger steps")},
    ),
}

_EXPLAIN = (
    "it re-explains perturbed inputs through explain_func, and a metric gets no explainer from the "
    "runner (FaithfulnessMetric.evaluate receives attributions only)"
)
_SEGMENTS = "it needs ground-truth segmentation masks (s_batch), which the runner's datasets do not have"
_BATCH = (
    "its score of an image depends on the other images of the call (it compares explanations and "
    "predictions across the batch), so it has no per-image value"
)
_RANDOMISATION = (
    "it re-explains the image under a randomised model or class through explain_func, and a metric "
    "gets no explainer from the runner"
)

SKIPPED: dict[str, str] = {
    **dict.fromkeys((
        "AvgSensitivity", "MaxSensitivity", "LocalLipschitzEstimate", "Continuity",
        "RelativeInputStability", "RelativeOutputStability",
    ), _EXPLAIN),
    "RelativeRepresentationStability": _EXPLAIN + "; it also reads the model's internal layers",
    "InputInvariance": _EXPLAIN + " (it explains a shifted copy of the model)",
    **dict.fromkeys(
        ("MPRT", "SmoothMPRT", "EfficientMPRT", "ModelParameterRandomisation", "RandomLogit"), _RANDOMISATION
    ),
    **dict.fromkeys((
        "AUC", "AttributionLocalisation", "PointingGame", "RelevanceMassAccuracy",
        "RelevanceRankAccuracy", "TopKIntersection",
    ), _SEGMENTS),
    "Focus": "it needs mosaics of images of known classes (custom_batch), which the runner does not build",
    "SensitivityN": "it is a dataset-level score: a correlation across the images of the call per n, "
    "with no per-image value",
    "Consistency": _BATCH,
    "Sufficiency": _BATCH,
    "BatchSufficiency": _BATCH,
}
