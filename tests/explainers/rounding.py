"""Rounding-error scales for comparisons across batch shapes and kernels (docs/testing.md).

Two evaluations of the same float64 computation that differ only in summation order (batch
shape, SIMD width, BLAS gemv vs gemm, thread count: all chosen per shape and per CPU) are not
bit-equal; they differ by rounding. First-order rounding error is ``u·E``: ``u`` the unit
roundoff, ``E`` the computation's error amplification on this data (``Σ|terms|`` of every
sum, carried through the method). ``E`` does not depend on the precision, so *precision
switching* measures it: the same computation in float32 and in float64 (same weights, same
inputs, same draws) differs by ``≈ u32·E``, and any float64 evaluation is then within
``≈ u64·E`` of the exact value.
"""

from __future__ import annotations

from torch import Tensor

#: Unit roundoffs (half an ulp of 1).
U32 = 2.0**-24
U64 = 2.0**-53

#: Another kernel rounds differently: its error is another draw of the same scale, not the same
#: draw. Allowed: this many times the measured scale (and the measurement at one point stands
#: for nearby points of the same path).
PATTERN = 4.0


def amplification(low: Tensor, high: Tensor) -> Tensor:
    """Per row (first dimension): ``max |low − high| / u32``, the measured ``E``.

    ``low`` is the float32 run, ``high`` the float64 run of the same computation.
    """
    return (low.double() - high.double()).abs().flatten(1).max(dim=1).values / U32


def float64_spread(amplification_per_row: Tensor, scale: float) -> Tensor:
    """Largest difference two float64 evaluations may show, per row, as ``rows×1×1×1``.

    Each is within ``PATTERN·u64·E`` of the exact value, so two are within twice that;
    ``scale`` carries ``E`` of one building block to the result (e.g. a sum of ``T`` steps).
    """
    bound = 2.0 * PATTERN * U64 * amplification_per_row * scale
    return bound.view(-1, 1, 1, 1)


def excess(a: Tensor, b: Tensor, bound: Tensor) -> float:
    """``max(|a − b| − bound)``: ≤ 0 when ``a`` and ``b`` agree within ``bound``."""
    return float(((a.double() - b.double()).abs() - bound).max())
