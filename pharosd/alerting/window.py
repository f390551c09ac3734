"""The sliding window of one windowed alert instance: avg, min or max over ``over`` seconds.

Definition (times are the evaluator's monotonic ``now`` when a sample is
observed):

* The window at ``now`` holds the samples with ``now - over < t <= now``.
* It is *covered* once the instance's first sample is at least ``over`` old
  (``now - first >= over``); before that ``value()`` is None and the rule is
  not evaluated. With samples every ``interval`` and ``over = k * interval``
  the first aggregate comes with sample k+1 and averages the last k samples.
* A gap in the series does not uncover the window: the aggregate is then over
  whatever samples the last ``over`` seconds hold (at least the new one).
* NaN samples are not added (they count in ``ignored``).
* At most ``max_samples`` are held; when more arrive within ``over`` the
  oldest are dropped early (counted in ``dropped``) and the aggregate is over
  the newest ``max_samples``.

* ``predict``: the least-squares line through the window's samples (at least 3),
  read ``ahead`` seconds after ``now`` (``pharosd.alerting.trend``).

Cost: ``add`` and ``value`` are amortised O(1) (a running sum for avg, a
monotonic deque for min/max); ``predict`` is O(samples held) per ``value``.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Literal

from pharosd.alerting.trend import predict

Mode = Literal["avg", "min", "max", "predict"]

DEFAULT_MAX_SAMPLES = 4096


class Window:
    """Samples of the last ``over`` seconds of one series, aggregated by ``mode``."""

    __slots__ = ("_extreme", "_head", "_infs", "_pops", "_samples", "_sum", "ahead",
                 "dropped", "first", "ignored", "max_samples", "mode", "over")

    def __init__(self, over: float, mode: Mode = "avg",
                 max_samples: int = DEFAULT_MAX_SAMPLES, ahead: float = 0.0) -> None:
        if over <= 0:
            raise ValueError(f"window over must be above 0, got {over!r}")
        if max_samples < 1:
            raise ValueError(f"max_samples must be at least 1, got {max_samples!r}")
        self.over = float(over)
        self.mode: Mode = mode
        self.ahead = float(ahead)
        self.max_samples = max_samples
        self.first: float | None = None
        self.dropped = 0
        self.ignored = 0
        self._samples: deque[tuple[float, float]] = deque()
        self._head = 0                               # sequence number of _samples[0]
        self._extreme: deque[tuple[int, float]] = deque()   # (seq, value), min/max
        self._sum = 0.0                              # finite values only
        self._infs = [0, 0]                          # count of +inf, -inf held
        self._pops = 0                               # pops since the sum was recomputed

    def __len__(self) -> int:
        return len(self._samples)

    def add(self, now: float, value: float) -> None:
        """Add one sample observed at monotonic time ``now``."""
        if math.isnan(value):
            self.ignored += 1
            return
        if self.first is None:
            self.first = now
        self._expire(now)
        if len(self._samples) >= self.max_samples:
            self._pop()
            self.dropped += 1
        seq = self._head + len(self._samples)
        self._samples.append((now, value))
        if math.isinf(value):
            self._infs[value < 0] += 1
        else:
            self._sum += value
        if self.mode in ("min", "max"):
            ext = self._extreme
            if self.mode == "max":
                while ext and ext[-1][1] <= value:
                    ext.pop()
            else:
                while ext and ext[-1][1] >= value:
                    ext.pop()
            ext.append((seq, value))

    def value(self, now: float) -> float | None:
        """The aggregate at ``now``, or None while the window is not covered."""
        self._expire(now)
        if not self._samples or self.first is None or now - self.first < self.over:
            return None
        if self.mode == "predict":
            return predict(self._samples, now + self.ahead)
        if self.mode != "avg":
            return self._extreme[0][1]
        pos, neg = self._infs
        if pos and neg:
            return math.nan
        if pos or neg:
            return math.inf if pos else -math.inf
        if self._pops > len(self._samples):
            self._sum = math.fsum(v for _, v in self._samples if not math.isinf(v))
            self._pops = 0
        return self._sum / len(self._samples)

    def covered(self, now: float) -> bool:
        return self.first is not None and now - self.first >= self.over

    def _expire(self, now: float) -> None:
        edge = now - self.over
        samples = self._samples
        while samples and samples[0][0] <= edge:
            self._pop()

    def _pop(self) -> None:
        _, value = self._samples.popleft()
        self._head += 1
        self._pops += 1
        if math.isinf(value):
            self._infs[value < 0] -= 1
        else:
            self._sum -= value
        if not self._samples:
            self._sum, self._pops = 0.0, 0
        ext = self._extreme
        while ext and ext[0][0] < self._head:
            ext.popleft()
