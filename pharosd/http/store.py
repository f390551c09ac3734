"""The latest value of every series, for ``/metrics`` and the status page.

``LatestValues.offer`` is a collector consumer (it never blocks: one dict
update per sample under a lock). It keeps, per ``(metric, labels)``, the
last value, its wall time, a probe's note (its plugin's first line), when
it arrived (monotonic) and its cadence (the gap between its last two
arrivals). A series not offered for ``max(2.5 x cadence, min_stale)`` is
left out of snapshots, so a scrape stops showing an interface that went
away and Prometheus marks it stale; a series seen only once ends after
``forget_after``. Expired series are freed on the next ``offer`` sweep.

Bounded: at most ``max_series`` series; samples of new series beyond it
are dropped and counted (``dropped``); known series keep updating.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pharosd.model import Labels, Sample

MAX_SERIES = 50_000
MIN_STALE = 5.0          # seconds: never expire a series sooner than this
FORGET_AFTER = 600.0     # seconds: a series seen only once
SWEEP_EVERY = 30.0


@dataclass(slots=True)
class Latest:
    """One series' last sample."""

    metric: str
    labels: Labels
    value: float
    ts: float                   # wall time of the sample
    note: str | None
    seen: float                 # monotonic arrival
    cadence: float = 0.0        # seconds between its last two arrivals (0: seen once)

    def expired(self, now: float, min_stale: float, forget_after: float) -> bool:
        if self.cadence <= 0:
            return now - self.seen > forget_after
        return now - self.seen > max(2.5 * self.cadence, min_stale)


class LatestValues:
    """See the module docstring."""

    def __init__(self, max_series: int = MAX_SERIES, *, min_stale: float = MIN_STALE,
                 forget_after: float = FORGET_AFTER,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.max_series = max_series
        self._min_stale = min_stale
        self._forget_after = forget_after
        self._now = monotonic
        self._lock = threading.Lock()
        self._series: dict[tuple[str, Labels], Latest] = {}
        self._next_sweep = 0.0
        self.dropped = 0          # samples of new series refused at the bound
        self.updated = 0          # samples taken

    def __len__(self) -> int:
        with self._lock:
            return len(self._series)

    def offer(self, samples: Sequence[Sample]) -> None:
        now = self._now()
        with self._lock:
            series = self._series
            for s in samples:
                key = (s.metric, s.labels)
                cur = series.get(key)
                if cur is None:
                    if len(series) >= self.max_series:
                        self.dropped += 1
                        continue
                    series[key] = Latest(s.metric, s.labels, s.value, s.ts, s.note, now)
                else:
                    if now > cur.seen:
                        cur.cadence = now - cur.seen
                    cur.value, cur.ts, cur.note, cur.seen = s.value, s.ts, s.note, now
                self.updated += 1
            if now >= self._next_sweep:
                self._next_sweep = now + SWEEP_EVERY
                for k in [k for k, v in series.items()
                          if v.expired(now, self._min_stale, self._forget_after)]:
                    del series[k]

    def snapshot(self) -> list[Latest]:
        """Copies of the live series (expired ones left out), in no particular order."""
        now = self._now()
        with self._lock:
            return [Latest(v.metric, v.labels, v.value, v.ts, v.note, v.seen, v.cadence)
                    for v in self._series.values()
                    if not v.expired(now, self._min_stale, self._forget_after)]

    def clear(self) -> None:
        with self._lock:
            self._series.clear()
