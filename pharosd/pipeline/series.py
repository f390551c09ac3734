"""The series registry: integer ids for the hot buffers, and inferred series ends.

The hot buffers store a series id per sample, not its name and labels;
``SeriesRegistry`` interns each ``(metric, labels)`` key to an id and turns
an id back into its key when a batch leaves a buffer.

Stale markers: the pipeline is never told that a series ended (an interface
or mount went away, a probe or statistic was removed on reload), so it
infers it. Each series remembers when it was last offered (monotonic time)
and its cadence (the gap between its last two arrivals). A series not
offered for ``max(2 x cadence, floor)`` gets one stale marker (value
``STALE_NAN``, stamped with the wall time of detection) and stays known: if
it comes back it simply continues. A series seen only once has no cadence
and gets no marker. A series silent for ``max(forget_after, its stale time +
60 s)`` is forgotten once every hot buffer has handed on all of its samples
(``seq`` marks tell when); if it returns later it starts afresh.

Bounds: at most ``max_series`` series in all, and at most
``max_per_source`` of one source (``source_of``: ``probe.<name>`` for a
probe's metrics, else the metric's first dotted part, ``disk``, ``cpu``...),
so a plugin whose perfdata labels keep changing cannot grow the registry
without end. A sample of a new series past a bound is not taken (the known
series go on) and is counted in ``refused`` (by source); the pipeline logs
it. A forgotten series frees its place once its id is freed.

Not thread-safe: the pipeline calls it under its own lock.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence

from pharosd.model import Sample
from pharosd.pipeline.batch import SeriesKey


class SeriesState:
    __slots__ = ("cadence", "id", "key", "last_ts", "seen", "source", "stale")

    def __init__(self, sid: int, key: SeriesKey, source: str) -> None:
        self.id = sid
        self.key = key
        self.source = source
        self.seen = 0.0            # monotonic time of the last offer
        self.cadence = 0.0         # seconds between the last two offers; 0 = unknown
        self.last_ts = 0           # ms of the newest sample
        self.stale = False


MAX_SERIES = 100_000
MAX_PER_SOURCE = 10_000


def source_of(metric: str) -> str:
    """The source a metric comes from: ``probe.<name>`` or the first dotted part."""
    head, dot, rest = metric.partition(".")
    if head == "probe" and dot:
        return "probe." + rest.partition(".")[0]
    return head


class SeriesRegistry:
    def __init__(self, floor: float = 5.0, forget_after: float = 600.0,
                 max_series: int = MAX_SERIES, max_per_source: int = MAX_PER_SOURCE) -> None:
        self.floor = floor
        self.forget_after = forget_after
        self.max_series = max_series
        self.max_per_source = max_per_source
        self._per_source: dict[str, int] = {}
        self.refused: dict[str, int] = {}      # by source: samples of series past a bound
        self.refused_samples = 0
        self._by_key: dict[SeriesKey, SeriesState] = {}
        self._by_id: dict[int, SeriesState] = {}
        self._next_id = 0
        # Series to forget once every buffer's consumed seq passes the mark.
        self._doomed: list[tuple[int, SeriesState]] = []
        self.markers_sent = 0
        self.forgotten = 0

    def __len__(self) -> int:
        return len(self._by_key)

    def key_of(self, sid: int) -> SeriesKey:
        return self._by_id[sid].key

    def observe(self, samples: Sequence[Sample], now: float,
                sid: array[int], ts: array[int], val: array[float]) -> None:
        """Append the samples as (id, ms, value) to the arrays; note arrival times.

        A sample of a new series past a bound is left out and counted."""
        by_key = self._by_key
        for s in samples:
            key = (s.metric, s.labels)
            st = by_key.get(key)
            if st is None:
                added = self._add(key)
                if added is None:
                    continue
                st = added
            elif st.seen != now:
                st.cadence = now - st.seen
            st.seen = now
            st.stale = False
            t = int(s.ts * 1000.0 + 0.5)
            if t > st.last_ts:
                st.last_ts = t
            sid.append(st.id)
            ts.append(t)
            val.append(s.value)

    def _add(self, key: SeriesKey) -> SeriesState | None:
        source = source_of(key[0])
        have = self._per_source.get(source, 0)
        if have >= self.max_per_source or len(self._by_id) >= self.max_series:
            self.refused[source] = self.refused.get(source, 0) + 1
            self.refused_samples += 1
            return None
        self._per_source[source] = have + 1
        st = SeriesState(self._next_id, key, source)
        self._next_id += 1
        self._by_key[key] = st
        self._by_id[st.id] = st
        return st

    def sweep(self, now: float, now_ms: int, seq: int, markers: bool,
              sid: array[int], ts: array[int], val: array[float], stale_value: float) -> int:
        """Find series that ended; append their stale markers to the arrays.

        ``seq`` is the pipeline's sample sequence number after the markers
        will have been appended; forgotten series are freed once every
        buffer has consumed up to it. Returns the number of markers.
        """
        n = 0
        for st in list(self._by_key.values()):
            idle = now - st.seen
            after = max(2.0 * st.cadence, self.floor)
            if not st.stale and st.cadence > 0 and idle >= after:
                st.stale = True
                if markers:
                    sid.append(st.id)
                    ts.append(max(now_ms, st.last_ts + 1))
                    val.append(stale_value)
                    n += 1
            if idle >= max(self.forget_after, after + 60.0):
                # Silent for long: forget it (from the key index now, by id later).
                del self._by_key[st.key]
                self._doomed.append((seq + n, st))
        self.markers_sent += n
        return n

    def free(self, consumed_seq: int) -> None:
        """Drop ids every buffer has handed on (``consumed_seq`` is their minimum)."""
        keep: list[tuple[int, SeriesState]] = []
        for mark, st in self._doomed:
            if mark <= consumed_seq:
                if self._by_id.get(st.id) is st:
                    del self._by_id[st.id]
                    self.forgotten += 1
                    left = self._per_source.get(st.source, 0) - 1
                    if left > 0:
                        self._per_source[st.source] = left
                    else:
                        self._per_source.pop(st.source, None)
            else:
                keep.append((mark, st))
        self._doomed = keep
