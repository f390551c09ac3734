"""The linear trend of a series, extrapolated: the value judged by ``mode: predict``.

``predict(points, at)`` fits ``v = a + b*t`` to ``points`` (``(t, v)`` pairs) by ordinary
least squares and returns ``a + b*at``: where the series will be at time ``at`` if it
keeps its trend (Prometheus' ``predict_linear`` does the same over a range). It needs at
least ``MIN_POINTS`` (3) points and two distinct times, else it returns None. Times are
centred on their mean before fitting, so large monotonic clock values lose no precision.
An infinite value makes the prediction infinite in its direction (NaN when both
directions are present); NaN points are skipped by the caller (the window does).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

MIN_POINTS = 3


def slope_intercept(points: Sequence[tuple[float, float]]) -> tuple[float, float, float] | None:
    """``(slope, mean_t, mean_v)`` of the least-squares line, or None when undefined."""
    n = len(points)
    if n < MIN_POINTS:
        return None
    mean_t = math.fsum(t for t, _ in points) / n
    mean_v = math.fsum(v for _, v in points) / n
    stt = math.fsum((t - mean_t) ** 2 for t, _ in points)
    if stt <= 0.0:
        return None
    stv = math.fsum((t - mean_t) * (v - mean_v) for t, v in points)
    return stv / stt, mean_t, mean_v


def predict(points: Sequence[tuple[float, float]], at: float) -> float | None:
    """The least-squares line through ``points`` evaluated at time ``at``; see the module."""
    if len(points) < MIN_POINTS:
        return None
    pos = any(v == math.inf for _, v in points)
    neg = any(v == -math.inf for _, v in points)
    if pos or neg:
        return math.nan if pos and neg else (math.inf if pos else -math.inf)
    fit = slope_intercept(points)
    if fit is None:
        return None
    slope, mean_t, mean_v = fit
    return mean_v + slope * (at - mean_t)
