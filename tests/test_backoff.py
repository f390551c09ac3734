"""The one backoff rule (supervisor, sinks, uplink) and the Retry-After header."""

from __future__ import annotations

import random
from email.utils import formatdate

from hypothesis import given
from hypothesis import strategies as st

from pharosd.backoff import Backoff, parse_retry_after


def test_the_wait_doubles_from_initial_to_maximum() -> None:
    b = Backoff(1.0, 30.0)
    assert [b.nominal(k) for k in range(8)] == [1, 2, 4, 8, 16, 30, 30, 30]
    assert b.nominal(10_000) == 30.0


@given(st.integers(0, 200), st.floats(0.01, 10), st.floats(1, 1000), st.floats(0, 0.999))
def test_jitter_only_shortens_the_nominal_wait(failures: int, initial: float, cap: float,
                                               r: float) -> None:
    b = Backoff(initial, max(cap, initial))
    nominal = b.nominal(failures)
    assert 0.8 * nominal - 1e-9 <= b.delay(failures, r) <= nominal + 1e-9


def test_next_delay_counts_failures_and_reset_starts_over() -> None:
    b = Backoff(1.0, 30.0, rng=random.Random(7))
    seen = [b.next_delay() for _ in range(12)]
    for k, d in enumerate(seen):
        assert 0.8 * b.nominal(k) <= d <= b.nominal(k)
    assert seen[-1] >= 24.0
    assert len({round(d, 6) for d in seen[6:]}) > 1, "jitter at the cap too"
    b.reset()
    assert b.failures == 0 and b.next_delay() <= 1.0


def test_without_jitter_the_schedule_is_exact() -> None:
    b = Backoff(0.5, 30.0, jitter=0.0)
    assert [b.next_delay() for _ in range(8)] == [0.5, 1, 2, 4, 8, 16, 30, 30]


def test_retry_after_is_a_floor_counted_up_to_the_cap() -> None:
    b = Backoff(1.0, 30.0, jitter=0.0)
    assert b.delay(0, 0.0, retry_after=10.0) == 10.0      # longer than the backoff: waited
    assert b.delay(0, 0.0, retry_after=500.0) == 30.0     # capped at maximum by default
    assert b.delay(4, 0.0, retry_after=2.0) == 16.0       # shorter: the backoff stands
    assert b.delay(0, 0.0, retry_after=-5.0) == 1.0
    sinks = Backoff(1.0, 300.0, jitter=0.0, retry_after_cap=3600.0)
    assert sinks.delay(0, 0.0, retry_after=1200.0) == 1200.0
    assert sinks.delay(0, 0.0, retry_after=7200.0) == 3600.0


def test_retry_after_in_seconds_or_as_an_http_date() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after("120", now) == 120.0
    assert parse_retry_after(" 7 ", now) == 7.0
    assert parse_retry_after("1.5", now) == 1.5
    assert parse_retry_after(formatdate(now + 30, usegmt=True), now) == 30.0
    assert parse_retry_after(formatdate(now + 30), now) == 30.0        # "-0000": UTC too
    assert parse_retry_after(formatdate(now - 30, usegmt=True), now) == 0.0
    for bad in ("soon", "-3", "", None, "Mon, 99 Foo 2023 99:99:99 GMT"):
        assert parse_retry_after(bad, now) is None, bad
