"""The pure core of sending: one batch's way to a receiver.

(The wait after a failure is ``pharosd.backoff.Backoff``.)

``Delivery``: one batch (sorted by time) being delivered. The uplink asks
for ``next_part()``, sends it and reports the ``Verdict``. Acknowledged and
dropped samples are counted; on ``RETRY`` the part stays and
``remaining()`` tells what is still to send. Rejections are split off
without a retry storm:

* ``REJECT_AGE`` (Prometheus "too old sample", "out of bounds", "out of
  order sample": samples older than the receiver takes): rejection is
  monotone in time, so the newest sample of the refused part is probed
  alone; refused too, the whole part goes (counted ``too_old`` or
  ``out_of_order``); accepted, the rest is halved and each half sent
  (newer first): a binary search for the cutoff. ``too_old`` proofs also
  raise ``cutoff_ms``: the lane drops samples at or below it before
  sending, so a long replay into a short window costs no requests.
* ``REJECT_SAMPLE`` (a duplicate, 413 too large): halve until the bad
  samples are alone, and drop those.
* ``DROP`` (any other 4xx): the part is dropped (``rejected``).

A delivery gives up after ``3 * ceil(log2(n + 1)) + 8`` rejections and
drops what is left (``rejected``), so no batch is retried forever.
"""

from __future__ import annotations

import math
from bisect import bisect_right

from pharosd.pipeline.batch import Batch
from pharosd.pipeline.remote_write import Verdict

_SEND, _PROBE = "send", "probe"


class Delivery:
    """One time-sorted batch on its way to one receiver."""

    def __init__(self, batch: Batch, *, spill_ids: list[int] | None = None,
                 cutoff_ms: int | None = None) -> None:
        self.batch = batch
        self.spill_ids = list(spill_ids or ())     # the spill rows it came from, if any
        self.cutoff_ms = cutoff_ms
        n = len(batch)
        self.budget = 3 * math.ceil(math.log2(n + 1)) + 8
        self.rejections = 0
        self.acked = 0
        self.dropped: dict[str, int] = {}
        self._tasks: list[tuple[str, int, int]] = []   # a stack; the top is sent next
        start = 0
        if cutoff_ms is not None:
            start = bisect_right(batch.ts, cutoff_ms)
            self._drop(0, start, "too_old")
        if start < n:
            self._tasks.append((_SEND, start, n))

    def __repr__(self) -> str:
        return (f"Delivery(samples={len(self.batch)}, acked={self.acked}, "
                f"dropped={self.dropped}, spill_ids={self.spill_ids})")

    @property
    def done(self) -> bool:
        return not self._tasks

    def next_part(self) -> Batch | None:
        """The samples to send now, or None when every sample is acked or dropped."""
        if not self._tasks:
            return None
        kind, lo, hi = self._tasks[-1]
        if kind == _PROBE:
            return self.batch.slice(hi - 1, hi)
        return self.batch.slice(lo, hi)

    def remaining(self) -> Batch:
        """Every sample not yet acked or dropped, in time order."""
        ranges = sorted((lo, hi) for _, lo, hi in self._tasks)
        parts = [self.batch.slice(lo, hi) for lo, hi in ranges]
        if len(parts) == 1:
            return parts[0]
        out = Batch(self.batch.keys, self.batch.sidx[:0], self.batch.ts[:0], self.batch.val[:0])
        for p in parts:
            out.sidx.extend(p.sidx)
            out.ts.extend(p.ts)
            out.val.extend(p.val)
        return out

    def result(self, verdict: Verdict, reason: str = "rejected") -> dict[str, int]:
        """Apply the answer to the part last given by ``next_part``; returns the
        samples dropped by this step, by reason."""
        if not self._tasks or verdict is Verdict.RETRY:
            return {}
        before = dict(self.dropped)
        kind, lo, hi = self._tasks.pop()
        if verdict is Verdict.OK:
            if kind == _PROBE:
                self.acked += 1
                self._halve(lo, hi - 1)
            else:
                self.acked += hi - lo
        elif verdict is Verdict.DROP:
            if kind == _PROBE:
                self._drop(hi - 1, hi, "rejected")
                self._push(_SEND, lo, hi - 1)
            else:
                self._drop(lo, hi, "rejected")
        else:
            self.rejections += 1
            if kind == _PROBE:
                if verdict is Verdict.REJECT_AGE:
                    self._drop(lo, hi, reason)
                    if reason == "too_old":
                        newest = self.batch.ts[hi - 1]
                        self.cutoff_ms = max(self.cutoff_ms or newest, newest)
                else:
                    self._drop(hi - 1, hi, reason)
                    self._push(_SEND, lo, hi - 1)
            elif hi - lo == 1:
                self._drop(lo, hi, reason)
            elif verdict is Verdict.REJECT_AGE:
                self._push(_PROBE, lo, hi)
            else:
                self._halve(lo, hi)
            if self.rejections >= self.budget and self._tasks:
                for _, a, b in self._tasks:
                    self._drop(a, b, reason)
                self._tasks.clear()
        return {k: v - before.get(k, 0) for k, v in self.dropped.items()
                if v != before.get(k, 0)}

    def _halve(self, lo: int, hi: int) -> None:
        if hi - lo <= 0:
            return
        if hi - lo == 1:
            self._push(_SEND, lo, hi)
            return
        mid = (lo + hi) // 2
        self._push(_SEND, lo, mid)      # older half, sent second
        self._push(_SEND, mid, hi)      # newer half, sent first

    def _push(self, kind: str, lo: int, hi: int) -> None:
        if hi > lo:
            self._tasks.append((kind, lo, hi))

    def _drop(self, lo: int, hi: int, reason: str) -> None:
        if hi > lo:
            self.dropped[reason] = self.dropped.get(reason, 0) + (hi - lo)
