"""The least-squares trend used by ``window: {mode: predict}``."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from pharosd.alerting.trend import predict

finite = st.floats(-1e6, 1e6, allow_nan=False)


def test_needs_three_points_and_two_distinct_times():
    assert predict([(0, 1), (1, 2)], 10) is None
    assert predict([(5, 1), (5, 2), (5, 3)], 10) is None
    assert predict([(0, 1), (1, 2), (2, 3)], 10) == 11


def test_disk_filling_one_percent_a_minute_reaches_100_in_four_hours():
    points = [(1e6 + 60 * i, 50.0 + i) for i in range(61)]        # an hour, monotonic times
    at = 1e6 + 3600 + 4 * 3600
    assert math.isclose(predict(points, at), 110.0 + 240.0)


def test_infinities():
    assert predict([(0, 1), (1, math.inf), (2, 3)], 5) == math.inf
    assert predict([(0, -math.inf), (1, 1), (2, 3)], 5) == -math.inf
    assert math.isnan(predict([(0, -math.inf), (1, math.inf), (2, 3)], 5))


@settings(max_examples=300, deadline=None)
@given(a=finite, b=st.floats(-100, 100), base=st.floats(0, 1e7),
       ts=st.lists(st.floats(0, 1e4), min_size=3, max_size=50, unique=True), ahead=finite)
def test_exact_on_a_line(a, b, base, ts, ahead):
    if max(ts) - min(ts) < 1e-3:
        return
    points = [(base + t, a + b * t) for t in ts]
    got = predict(points, base + ahead)
    want = a + b * ahead
    scale = abs(a) + abs(b) * (abs(ahead) + 1e4) + 1.0
    assert abs(got - want) <= 1e-6 * scale


@settings(max_examples=200, deadline=None)
@given(vs=st.lists(finite, min_size=3, max_size=30), at=finite)
def test_symmetric_noise_does_not_move_a_flat_series(vs, at):
    # mirrored values around a constant: slope 0, prediction = the mean
    pts = [(float(i), v) for i, v in enumerate(vs)]
    pts += [(float(len(vs) + i), v) for i, v in enumerate(reversed(vs))]
    got = predict(pts, at)
    mean = math.fsum(vs) / len(vs)
    assert abs(got - mean) <= 1e-6 * (max(abs(v) for v in vs) + 1) * (abs(at) + 60)
