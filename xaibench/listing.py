"""What ``xaibench list`` says about a plugin class besides its parameters: its declared traits."""

from __future__ import annotations

from .types import EXPLAINER_CAPABILITIES, Attack, Explainer, FaithfulnessMetric, Metric


def plugin_traits(cls: object) -> list[str]:
    """The declared metadata of a plugin class worth a line in ``xaibench list``."""
    traits: list[str] = []
    if not isinstance(cls, type):
        return traits
    if issubclass(cls, Explainer):
        for key in EXPLAINER_CAPABILITIES:
            value = getattr(cls, key, None)
            if key == "convergence_param":
                if value:
                    traits.append(f"convergence_param={value}")
            elif value:
                traits.append(key)
    elif issubclass(cls, Attack):
        if cls.grid_axes:
            traits.append(f"grid: {' × '.join(cls.grid_axes)}")
        if cls.baseline_of:
            traits.append(f"baseline of {cls.baseline_of}")
        traits.append("black box" if cls.black_box else "white box")
        if cls.needs_pool:
            traits.append("needs_pool")
    elif issubclass(cls, Metric | FaithfulnessMetric):
        traits.append(getattr(cls, "category", ""))
        higher = getattr(cls, "higher_is_better", None)
        if higher is not None:
            traits.append("higher is better" if higher else "lower is better")
        if cls.unit:
            traits.append(f"unit {cls.unit}")
        low, high = cls.value_range
        if low is not None or high is not None:
            left = "(−∞" if low is None else f"[{low:g}"
            right = "∞)" if high is None else f"{high:g}]"
            traits.append(f"range {left}, {right}")
        if issubclass(cls, Metric) and cls.needs:
            traits.append(f"needs {', '.join(cls.needs)}")
    return traits
