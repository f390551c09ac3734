"""Per-second rates from monotonic counters (pure: no I/O, time passed in).

Kernel counters (bytes read, packets received) only ever grow, until they
do not: a device is replaced, a driver reloads, a 32-bit counter wraps. A
``RateTracker`` remembers the last value and monotonic time of each series
and turns the next observation into ``delta / elapsed``, with these rules:

* the first observation of a series yields no rate (there is no baseline);
* a counter that went backwards yields no rate for that poll and becomes
  the new baseline (a reset or wrap never shows as a negative or absurd
  rate, and a wrap cannot be told from a reset, so neither is guessed at);
* elapsed time must be positive, else no rate (and the new value is the
  baseline);
* a value that is not finite yields no rate and the series is forgotten;
* ``observe()`` takes the whole set of a poll: a series that is absent from
  it is forgotten, so when it reappears its first poll again yields no rate.

Series keys are any hashable; the statistics use ``(metric, labels)``.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


def rate(prev_value: float, prev_time: float, value: float, now: float) -> float | None:
    """The per-second rate between two observations of a counter, or None.

    None when time did not move forward, the counter went backwards, or a
    value is not finite.
    """
    elapsed = now - prev_time
    delta = value - prev_value
    if not (elapsed > 0 and math.isfinite(elapsed)):
        return None
    if not (delta >= 0 and math.isfinite(delta)):
        return None
    return delta / elapsed


class RateTracker(Generic[K]):
    """Remembers the last observation of each series; see the module docstring.

    Not thread-safe: one tracker belongs to one statistic, which the
    collector runs on one thread at a time.
    """

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last: dict[K, tuple[float, float]] = {}

    def observe(self, counters: Mapping[K, float], now: float) -> dict[K, float]:
        """Record one poll of every series; return the rates that exist.

        ``now`` is the monotonic time of the poll (seconds). Series missing
        from ``counters`` are forgotten.
        """
        last = self._last
        fresh: dict[K, tuple[float, float]] = {}
        out: dict[K, float] = {}
        for key, raw in counters.items():
            value = float(raw)
            if not math.isfinite(value):
                continue
            prev = last.get(key)
            if prev is not None:
                r = rate(prev[0], prev[1], value, now)
                if r is not None:
                    out[key] = r
            fresh[key] = (value, now)
        self._last = fresh
        return out

    def __len__(self) -> int:
        """How many series have a baseline."""
        return len(self._last)

    def __contains__(self, key: object) -> bool:
        return key in self._last

    def clear(self) -> None:
        self._last = {}
