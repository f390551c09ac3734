"""One receiver's lane: its hot buffer, its deliveries, its requests, its counters.

``Lane.step(now)`` runs on the uplink worker thread and never blocks on
the network: a request (encode, compress, POST through the lane's
``Transport``) is handed to its ``Launcher`` (the lane's one sender thread in
production, see ``connection``) and the worker looks at it on its next
step; a request past the receiver's ``timeout`` is ended (``abort``). The
settings come from ``receiver.resolve_settings``; the wait after
a failure is a ``pharosd.backoff.Backoff`` (``min_backoff`` doubling to
``max_backoff``, a ``Retry-After`` honoured up to ``max_backoff``). What a
step does, in order:

1. a finished request: count it and apply its verdict to the delivery;
2. the receiver is down (in backoff) or slow (a request outstanding for
   longer than ``flush``): once per ``flush`` every sample in the hot buffer
   is moved to the spill in batches, so an outage costs no memory and a
   ``kill -9`` loses at most about ``flush`` of samples;
3. the buffer holds more than ``max_pending``: the oldest batches beyond it
   go to the spill;
4. no request outstanding and not backing off: continue the delivery, or
   start the next one. Live data (the hot buffer, when it holds a full
   batch or ``flush`` has passed) and replay (the oldest spilled rows, up to
   ``replay_size(batch)`` samples: 25 times ``batch``, at most 100,000)
   take turns, one request each, so live data keeps flowing during a
   catch-up and replay gets every request live data does not need.

A live delivery that fails with a retryable error goes to the spill; a
spilled one stays there (rewritten to what is left if part of it was
acknowledged). A spilled batch is deleted only when all of it is
acknowledged or dropped by a rejection.

``step`` returns how long the worker may wait before the next step when
nothing wakes it. An offer that fills a batch or finds the buffer empty sets
the worker's event, and so does the end of a request that failed or after
which more waits to be sent (a replay, parked batches, a full batch). The
wait lasts until a request's deadline, the end of a backoff, or the flush
of a partial batch; at most about ``flush`` while a request is outstanding
or the receiver is down, and without limit when nothing waits. The end of a
lone live request that went well is taken in on the next step (the next
collection's offer, at most ``flush`` later) rather than on a wakeup of its
own. Flushes keep in step with collections: a partial batch due within
``FLUSH_SLACK`` goes at once, and the timer for one waits ``FLUSH_SLACK``
past its due time, since one collection's samples arrive a few milliseconds
earlier or later from one interval to the next and a second wakeup for them
costs more than that much lag.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Callable
from typing import Any

import structlog

from pharosd.backoff import Backoff
from pharosd.clock import Clock
from pharosd.errors import UplinkError, describe_error
from pharosd.pipeline import compression
from pharosd.pipeline.batch import Batch, SeriesKey
from pharosd.pipeline.buffer import HotBuffer
from pharosd.pipeline.connection import ConnectionTransport, SerialLauncher
from pharosd.pipeline.delivery import Delivery
from pharosd.pipeline.receiver import ReceiverSettings
from pharosd.pipeline.remote_write import (
    LabelCache,
    Verdict,
    classify,
    encode_write_request,
    reject_reason,
)
from pharosd.pipeline.spill import Spill
from pharosd.pipeline.transport import Launcher, Transport
from pharosd.redact import scrub, url_secrets

log = structlog.get_logger(__name__)

_LOG_EVERY = 60.0        # seconds between repeated warnings of one kind
REPLAY_FACTOR = 25       # a replay request carries up to this many times ``batch`` samples
REPLAY_MAX = 100_000     # ... and at most this many (a 413 halves it, see ``delivery``)
FLUSH_SLACK = 0.05       # seconds; a partial batch due within this goes now (at most flush/20)
MIN_WAIT = 0.01          # the shortest wait ``step`` asks for when something is due later


class _Request:
    """One request: encode, compress and post ``part`` (the launcher runs ``run``,
    on another thread in production); the worker polls ``done``."""

    def __init__(self, part: Batch, settings: ReceiverSettings, labels: LabelCache,
                 transport: Transport, wake: threading.Event, started: float, *,
                 urgent: bool = True) -> None:
        self.part = part
        self.urgent = urgent                # its end wakes the worker even when it went well
        self.started = started
        self.done = threading.Event()
        self.status = 0
        self.body = ""
        self.error: str | None = None
        self.encode_error: str | None = None
        self.retry_after: float | None = None
        self.aborted = False
        self._args = (settings, labels, transport, wake)

    def run(self) -> None:
        settings, labels, transport, wake = self._args
        try:
            try:
                body = compression.compress(encode_write_request(self.part, labels))
            except Exception as e:
                self.encode_error = describe_error(e)
                return
            try:
                reply = transport.post(settings, body)
            except Exception as e:  # connection refused, timeout, TLS ...
                # requests quotes the URL (with its query) in its messages
                self.error = scrub(describe_error(e), url_secrets(settings.url))
                return
            self.status, self.body, self.retry_after = (reply.status, reply.body,
                                                        reply.retry_after)
        finally:
            self.done.set()
            if self.needs_step():
                wake.set()

    def needs_step(self) -> bool:
        """Whether its end should be taken in at once: an urgent request, or one that
        did not go well (its batch goes to the spill without waiting)."""
        return self.urgent or not (self.encode_error is None and self.error is None
                                   and 200 <= self.status < 300)

    def verdict(self) -> Verdict:
        if self.encode_error is not None:
            return Verdict.DROP
        if self.error is not None:
            return Verdict.RETRY
        return classify(self.status, self.body)


class Lane:
    """One receiver's buffer, deliveries and counters; see the module docstring."""

    def __init__(self, settings: ReceiverSettings, spill: Spill,
                 key_of: Callable[[int], SeriesKey], clock: Clock, wake: threading.Event,
                 base_seq: int = 0, *, transport: Transport | None = None,
                 launcher: Launcher | None = None) -> None:
        self.settings = settings
        self.name = settings.name
        self.buffer = HotBuffer(settings.capacity, base_seq)
        self._spill = spill
        self._key_of = key_of
        self._clock = clock
        self._wake = wake
        self._labels = LabelCache(settings.external_labels)
        self._transport: Transport = transport or ConnectionTransport(clock)
        self._launcher: Launcher = launcher or SerialLauncher()
        self._backoff = Backoff(settings.min_backoff, settings.max_backoff)
        self._req: _Request | None = None
        self._delivery: Delivery | None = None
        self._parked: list[Batch] = []     # batches the spill refused, kept to retry
        self._replay_turn = False
        self._next_attempt = 0.0
        self._last_live = clock.monotonic()
        self._last_spill = 0.0
        self._last_log: dict[str, float] = {}
        self._down_since: float | None = None
        self.removed = False
        self.cutoff_ms: int | None = None
        # counters (samples unless named otherwise)
        self.sent = 0
        self.retried = 0
        self.dropped: dict[str, int] = {}
        self.requests = 0
        self.failures = 0
        self.up: bool | None = None
        self.last_success: float | None = None     # wall
        self.last_error: str | None = None
        self.started_wall = clock.wall()

    # -- configuration -------------------------------------------------------------

    def apply(self, settings: ReceiverSettings) -> None:
        """New settings for this receiver; buffered and spilled samples are kept."""
        old = self.settings
        self.settings = settings
        self.buffer.capacity = settings.capacity
        if settings.external_labels != old.external_labels:
            self._labels = LabelCache(settings.external_labels)
        self._backoff.initial = settings.min_backoff
        self._backoff.maximum = settings.max_backoff
        if self._next_attempt > self._clock.monotonic() + settings.max_backoff:
            self._next_attempt = self._clock.monotonic() + settings.max_backoff
        if settings.url != old.url:
            self.cutoff_ms = None

    def count_drop(self, reason: str, n: int) -> None:
        if n > 0:
            self.dropped[reason] = self.dropped.get(reason, 0) + n
            if reason == "buffer_full":
                self._warn("buffer_full", "hot_buffer_full", dropped=n,
                           dropped_total=self.dropped[reason], capacity=self.buffer.capacity)

    # -- the worker's step -----------------------------------------------------------

    def step(self, now: float) -> float:
        """One step (see the module docstring); the seconds until the next is due."""
        if self.removed:
            return math.inf
        s = self.settings
        req = self._req
        if req is not None:
            if not req.done.is_set():
                if now - req.started > s.timeout and not req.aborted:
                    req.aborted = True      # the whole-request deadline: end it
                    abort = getattr(self._transport, "abort", None)
                    if callable(abort):
                        abort()
                if now - req.started > s.flush:
                    self._spill_hot(now, keep=0)
                elif len(self.buffer) > s.max_pending:
                    self._spill_hot(now, keep=s.max_pending, force=True)
                return self._in_flight_wait(req, now)
            self._req = None
            self._finish(req, now)
        if now < self._next_attempt:
            self._spill_hot(now, keep=0)
            # back when the wait ends or the next spill of the hot buffer is due
            return max(MIN_WAIT, min(self._next_attempt, self._last_spill + s.flush) - now)
        if len(self.buffer) > s.max_pending:
            self._spill_hot(now, keep=s.max_pending, force=True)
        if self._delivery is None:
            self._delivery = self._pick(now)
        d = self._delivery
        if d is None:
            if self._spill.has_rows(self.name):      # could not be read: try again
                return s.flush
            if not len(self.buffer):
                return math.inf                      # an offer wakes the worker
            return max(MIN_WAIT, self._last_live + s.flush + self._slack() - now)
        part = d.next_part()
        if part is None:
            self._complete(d)
            self._delivery = None
            return 0.0
        self._start(part, now)
        return self._in_flight_wait(self._req, now)

    def _slack(self) -> float:
        return min(FLUSH_SLACK, self.settings.flush / 20)

    def _in_flight_wait(self, req: _Request | None, now: float) -> float:
        """Until the request's deadline, at most about ``flush``; an urgent request's
        end wakes the worker, a lone live one's is taken in on the next step."""
        s = self.settings
        if req is None or (req.done.is_set() and req.needs_step()):
            return 0.0
        slack = self._slack()      # so that the next collection's offer comes first
        due = [now + s.flush + slack]                          # a lone request's end
        if not req.done.is_set():                              # a slow one: spill the rest
            due.append(max(req.started, self._last_spill) + s.flush + slack)
            if not req.aborted:
                due.append(req.started + s.timeout)
        return max(MIN_WAIT, min(due) - now)

    def _pick(self, now: float) -> Delivery | None:
        s = self.settings
        depth = len(self.buffer)
        live = bool(self._parked) or depth >= s.batch or (
            depth > 0 and now - self._last_live >= s.flush - self._slack())
        replay = self._spill.has_rows(self.name)
        if replay and (self._replay_turn or not live):
            self._replay_turn = False
            try:
                got = self._spill.oldest(self.name, replay_size(s.batch))
            except UplinkError:
                got = None
            if got is not None:
                ids, batch = got
                return self._new_delivery(batch.by_time(), ids)
        if live:
            self._replay_turn = True
            self._last_live = now
            batch = self._parked.pop(0) if self._parked else self.buffer.take(
                s.batch, self._key_of)
            return self._new_delivery(batch.by_time(), None)
        return None

    def _new_delivery(self, batch: Batch, spill_ids: list[int] | None) -> Delivery:
        d = Delivery(batch, spill_ids=spill_ids, cutoff_ms=self.cutoff_ms)
        for reason, n in d.dropped.items():
            self.count_drop(reason, n)
        return d

    def _start(self, part: Batch, now: float) -> None:
        d = self._delivery
        urgent = (bool(d and d.spill_ids) or bool(self._parked) or self._spill.has_rows(self.name)
                  or len(self.buffer) >= self.settings.batch)
        req = _Request(part, self.settings, self._labels, self._transport, self._wake, now,
                       urgent=urgent)
        self._req = req
        self.requests += 1
        self._launcher.launch(req.run)

    def _finish(self, req: _Request, now: float) -> None:
        d = self._delivery
        verdict = req.verdict()
        n = len(req.part)
        if verdict is Verdict.OK:
            self.sent += n
            self.last_success = self._clock.wall()
            self._backoff.reset()
            if self.up is False and self._down_since is not None:
                log.info("uplink_recovered", receiver=self.name,
                         down_seconds=round(now - self._down_since, 1), failures=self.failures)
            self.up = True
            self._down_since = None
        elif verdict is Verdict.RETRY:
            self.retried += n
            self.failures += 1
            err = req.error or f"HTTP {req.status}: {req.body[:200]}"
            self.last_error = err
            delay = self._backoff.next_delay(req.retry_after)
            self._next_attempt = now + delay
            if self.up is not False:
                self._down_since = now
            self.up = False
            self._warn("retry", "uplink_retry", url=self.settings.safe_url, error=err,
                       retry_in=round(delay, 2), failures=self.failures)
        elif req.encode_error is not None:
            self.last_error = req.encode_error
            log.error("uplink_encode_failed", receiver=self.name, error=req.encode_error,
                      samples=n)
        else:
            self.last_error = f"HTTP {req.status}: {req.body[:200]}"
            event = "uplink_batch_dropped" if verdict is Verdict.DROP else "uplink_rejected"
            self._warn(event, event, url=self.settings.safe_url, status=req.status,
                       body=req.body[:512], samples=n)
        if d is None:
            return
        reason = "encode_error" if req.encode_error is not None else reject_reason(
            verdict, req.body)
        for r, k in d.result(verdict, reason).items():
            self.count_drop(r, k)
        if d.cutoff_ms is not None and (self.cutoff_ms is None or d.cutoff_ms > self.cutoff_ms):
            self.cutoff_ms = d.cutoff_ms
        if verdict is Verdict.RETRY:
            self._persist(d)
            self._delivery = None
        elif d.done:
            self._complete(d)
            self._delivery = None

    def _complete(self, d: Delivery) -> None:
        # A failed delete is logged; the rows stay and are sent again (duplicates, no loss).
        if d.spill_ids:
            with contextlib.suppress(UplinkError):
                self._spill.delete(d.spill_ids)

    def _persist(self, d: Delivery) -> None:
        """Keep what a delivery has left: a live one goes to the spill, a spilled
        one is rewritten if part of it was acknowledged or dropped."""
        rest = d.remaining()
        try:
            if not d.spill_ids:
                self._spill.put(self.name, rest)
            elif len(rest) != len(d.batch):
                self._spill.replace(d.spill_ids, rest)
        except UplinkError:
            if not d.spill_ids:
                self._park(rest)

    def _park(self, batch: Batch) -> None:
        self._parked.append(batch)
        limit = max(self.settings.batch * 4, 1)
        while sum(len(b) for b in self._parked) > limit and len(self._parked) > 1:
            self.count_drop("spill_failed", len(self._parked.pop(0)))

    def _spill_hot(self, now: float, keep: int, force: bool = False) -> None:
        """Move hot samples beyond ``keep`` to the spill, at most once per ``flush``
        unless ``force``; stops at the first spill failure."""
        s = self.settings
        if not force and now - self._last_spill < s.flush:
            return
        self._last_spill = now
        while self._parked:
            try:
                self._spill.put(self.name, self._parked[0])
            except UplinkError:
                return
            self._parked.pop(0)
        while len(self.buffer) > keep:
            batch = self.buffer.take(min(s.batch, len(self.buffer) - keep), self._key_of)
            try:
                self._spill.put(self.name, batch.by_time())
            except UplinkError:
                self._park(batch)
                return

    def flush_to_spill(self) -> int:
        """On close: spill the unfinished delivery, parked batches and the hot buffer."""
        n = 0
        d, self._delivery = self._delivery, None
        if d is not None and not d.done:
            rest = d.remaining()
            n += len(rest)
            self._persist(d)
        for b in self._parked:
            n += len(b)
        self._last_spill = -1e18
        before = len(self.buffer)
        self._spill_hot(self._clock.monotonic(), keep=0, force=True)
        n += before - len(self.buffer)
        lost = len(self.buffer) + sum(len(b) for b in self._parked)
        if lost:
            log.error("spill_on_close_failed", receiver=self.name, lost_samples=lost)
            self.count_drop("spill_failed", lost)
        self._transport.close()
        return n

    # -- reporting ---------------------------------------------------------------------

    def _warn(self, kind: str, event: str, **kw: Any) -> None:
        """A warning, at most once per minute per kind (the count says how many)."""
        now = self._clock.monotonic()
        if now - self._last_log.get(kind, -1e18) >= _LOG_EVERY:
            self._last_log[kind] = now
            log.warning(event, receiver=self.name, **kw)

    def status(self) -> dict[str, Any]:
        now_wall = self._clock.wall()
        sp = self._spill.stats(self.name)
        req = self._req
        return {
            "name": self.name,
            "url": self.settings.safe_url,
            "up": self.up,
            "last_success": self.last_success,
            "seconds_since_success": round(now_wall - (self.last_success or self.started_wall),
                                           3),
            "last_error": self.last_error,
            "backoff_seconds": round(max(0.0, self._next_attempt - self._clock.monotonic()), 3),
            "in_flight": req is not None and not req.done.is_set(),
            "buffer_samples": len(self.buffer),
            "buffer_capacity": self.buffer.capacity,
            "spill_rows": sp.rows,
            "spill_samples": sp.samples,
            "spill_bytes": sp.bytes,
            "spill_oldest_age_seconds": (round(max(0.0, now_wall - sp.oldest_ts / 1000.0), 3)
                                         if sp.oldest_ts is not None else 0.0),
            "sent": self.sent,
            "retried": self.retried,
            "dropped": dict(self.dropped),
            "requests": self.requests,
            "failures": self.failures,
        }


def replay_size(batch: int) -> int:
    """Samples in one replay request: larger than live ones, to drain a spill fast."""
    return max(batch, min(batch * REPLAY_FACTOR, REPLAY_MAX))
