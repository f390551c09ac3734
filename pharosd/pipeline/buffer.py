"""The hot buffer: a bounded in-memory FIFO of samples waiting for one receiver.

Samples are three packed arrays (series id ``q``, timestamp ms ``q``,
value ``d``: 24 bytes a sample), appended by the collector thread and taken
in whole batches by the uplink worker. At ``capacity`` the *oldest* samples
are dropped and counted (``dropped``); the uplink keeps the buffer well
below that by moving batches to the spill when the receiver is down or
behind (``max_pending``), so drops mean the spill itself cannot keep up.

``seq`` accounting lets the series registry know when an id is no longer
referenced: ``consumed_seq`` is the pipeline-wide sequence number up to
which this buffer has handed on (or dropped) every sample.
"""

from __future__ import annotations

import threading
from array import array
from collections.abc import Callable

from pharosd.pipeline.batch import Batch, SeriesKey

_COMPACT_AT = 8192


class HotBuffer:
    def __init__(self, capacity: int, base_seq: int = 0) -> None:
        self.capacity = capacity
        self._lock = threading.Lock()
        self._sid: array[int] = array("q")
        self._ts: array[int] = array("q")
        self._val: array[float] = array("d")
        self._start = 0
        self._base_seq = base_seq
        self.appended = 0        # samples ever appended
        self.consumed = 0        # samples ever taken or dropped
        self.dropped = 0         # samples dropped because the buffer was full

    def __len__(self) -> int:
        return len(self._ts) - self._start

    @property
    def consumed_seq(self) -> int:
        return self._base_seq + self.consumed

    def extend(self, sid: array[int], ts: array[int], val: array[float]) -> int:
        """Append samples; returns how many of the oldest were dropped to stay bounded."""
        with self._lock:
            self._sid.extend(sid)
            self._ts.extend(ts)
            self._val.extend(val)
            self.appended += len(ts)
            over = len(self._ts) - self._start - self.capacity
            if over > 0:
                self._start += over
                self.consumed += over
                self.dropped += over
                self._compact()
            return max(0, over)

    def take(self, n: int, key_of: Callable[[int], SeriesKey]) -> Batch:
        """Remove up to ``n`` of the oldest samples and return them as a batch."""
        with self._lock:
            lo = self._start
            hi = min(lo + n, len(self._ts))
            sids = self._sid[lo:hi]
            ts = self._ts[lo:hi]
            val = self._val[lo:hi]
            index: dict[int, int] = {}
            keys: list[SeriesKey] = []
            sidx: array[int] = array("I")
            for g in sids:
                i = index.get(g)
                if i is None:
                    i = index[g] = len(keys)
                    keys.append(key_of(g))
                sidx.append(i)
            self._start = hi
            self.consumed += hi - lo
            self._compact()
        return Batch(keys, sidx, ts, val)

    def clear(self) -> int:
        """Drop everything (a removed receiver); returns how many samples."""
        with self._lock:
            n = len(self._ts) - self._start
            self._sid, self._ts, self._val = array("q"), array("q"), array("d")
            self._start = 0
            self.consumed += n
            return n

    def oldest_ts(self) -> int | None:
        with self._lock:
            return self._ts[self._start] if len(self._ts) > self._start else None

    def nbytes(self) -> int:
        """Bytes held by the arrays (for status)."""
        with self._lock:
            return sum(a.itemsize * len(a) for a in (self._sid, self._ts, self._val))

    def _compact(self) -> None:
        if self._start >= _COMPACT_AT and self._start * 2 >= len(self._ts):
            del self._sid[:self._start]
            del self._ts[:self._start]
            del self._val[:self._start]
            self._start = 0
