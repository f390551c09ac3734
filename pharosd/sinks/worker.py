"""``SinkWorker``: one sink's worker thread, its outbox and its retry policy.

``submit`` runs on the evaluator thread: it writes the event to the sink's
outbox (SQLite) and returns; it never raises. ``run`` runs on the worker's
own thread: it delivers the oldest pending event of every alert
(fingerprint), one at a time, so events of one alert arrive in order while
a failing alert never blocks the others. A failure is retried after
``pharosd.backoff.Backoff`` (doubling from ``retry.initial`` to ``retry.max``,
shortened by up to 20 % at random, and never sooner than the receiver's
``retry_after``, which counts up to ``RETRY_AFTER_CAP`` or ``retry.max``
if longer); an event older than ``max_age`` is given up;
a ``PermanentDeliveryError`` drops the event at once. Every drop is logged
at error level and counted by reason in ``status()``.

If the outbox cannot be written (disk full, broken file), the event is kept
in a bounded in-memory queue instead (``outbox_write_failed`` is logged and
counted) and still delivered; the memory queue is written back to the
outbox, in order, once the outbox works again (reopened every
``REOPEN_EVERY`` seconds). A damaged database file is set aside as
``<name>.db.corrupt-<time>`` and a fresh outbox started at once.

The worker's supervisor name is ``sink:<name>`` (``WORKER_PREFIX``); logs and
``status()`` use the sink's own name.

A sink that has a ``periodic(now_wall)`` method (Alertmanager's re-send)
gets it called from the worker thread: again after the seconds it returns, or
after ``PERIODIC_EVERY`` when it returns nothing.
"""

from __future__ import annotations

import math
import random
import sqlite3
import threading
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from pharosd.backoff import Backoff
from pharosd.clock import Clock, SystemClock
from pharosd.errors import DeliveryError, PermanentDeliveryError
from pharosd.model import AlertEvent
from pharosd.sinks.base import Sink
from pharosd.sinks.config import RetryConfig
from pharosd.sinks.outbox import Outbox, Pending, is_corrupt, quarantine
from pharosd.worker import IDLE_WAIT, WorkerContext

log = structlog.get_logger(__name__)

WORKER_PREFIX = "sink:"         # supervisor names of sink workers: sink:<name>
MEMORY_CAPACITY = 1000          # events held in memory while the outbox is broken
REOPEN_EVERY = 5.0              # seconds between attempts to reopen a broken outbox
PERIODIC_EVERY = 1.0            # seconds between calls of sink.periodic, unless it says
RETRY_AFTER_CAP = 3600.0        # a receiver's Retry-After is honoured up to this
_DONE_CAPACITY = 10_000


@dataclass
class _RetryState:
    event_id: str
    attempts: int
    due: float                  # monotonic


class SinkWorker:
    """Delivers one sink's events from its outbox; see the module docstring."""

    def __init__(self, sink: Sink, cfg: Any, outbox_path: str, *,
                 clock: Clock | None = None,
                 backoff_initial: float | None = None,
                 backoff_max: float | None = None,
                 max_age: float | None = None,
                 memory_capacity: int = MEMORY_CAPACITY,
                 rng: random.Random | None = None) -> None:
        retry: RetryConfig = getattr(cfg, "retry", None) or RetryConfig()
        self.sink_name: str = sink.name
        # The supervisor's name for this worker: never a user's name alone, so a sink
        # called "collector" or "uplink" cannot clash with a worker of the daemon.
        self.name: str = f"{WORKER_PREFIX}{sink.name}"
        self.backoff_initial = float(retry.initial if backoff_initial is None
                                     else backoff_initial)
        self.backoff_max = float(retry.max if backoff_max is None else backoff_max)
        self.max_age = float(retry.max_age if max_age is None else max_age)
        self._backoff = Backoff(self.backoff_initial, self.backoff_max,
                                retry_after_cap=max(self.backoff_max, RETRY_AFTER_CAP))
        self._sink = sink
        self._clock: Clock = clock or SystemClock()
        self._rng = rng or random.Random()
        self._outbox_path = outbox_path
        self._max_rows = int(getattr(cfg, "max_backlog", 10_000))
        self._memory_capacity = memory_capacity
        self._periodic: Callable[[float], float | None] | None = getattr(sink, "periodic", None)

        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._outbox: Outbox | None = None
        self._outbox_broken = False
        self._outbox_error: str | None = None
        self._next_open = 0.0
        self._memory: deque[Pending] = deque()
        self._done: set[str] = set()     # delivered, but the outbox delete failed
        self._db_fingerprints: set[str] = set()  # alerts with events in the outbox
        self._retry: dict[str, _RetryState] = {}
        self._next_periodic = -math.inf
        self._closed = False

        self.delivered = 0
        self.retried = 0
        self.outbox_write_failed = 0
        self.dropped: Counter[str] = Counter()
        self.last_error: str | None = None
        self.last_success: float | None = None

        with self._lock:
            self._open_outbox()

    # -- the Worker contract ------------------------------------------------

    @property
    def heartbeat_timeout(self) -> float:
        """Longer than the longest a delivery may block, plus margin."""
        blocking = float(getattr(self._sink, "blocking_timeout", 30.0))
        return 2.0 * blocking + 30.0

    def run(self, ctx: WorkerContext) -> None:
        ctx.on_stop(self._wake.set)
        while not ctx.stopping:
            ctx.beat()
            self._wake.clear()
            delay = self.run_once(ctx)
            deadline = self._clock.monotonic() + delay
            while not ctx.stopping and not self._wake.is_set():
                remaining = deadline - self._clock.monotonic()
                if remaining <= 0:
                    break
                self._wake.wait(min(remaining, IDLE_WAIT))
                ctx.beat()

    # -- the bus side -------------------------------------------------------

    def submit(self, event: AlertEvent) -> None:
        """Queue ``event`` durably for delivery; never raises."""
        try:
            pending = Pending.of(event, self._clock.wall())
            with self._lock:
                if self._closed:
                    self.dropped["closed"] += 1
                    log.error("alert_dropped", sink=self.sink_name, reason="sink_closed",
                              event_id=event.id, rule=event.rule)
                    return
                self._enqueue(pending)
        except Exception as e:  # the evaluator must never see a sink's trouble
            self.dropped["submit_failed"] += 1
            log.error("alert_dropped", sink=self.sink_name, reason="submit_failed",
                      event_id=getattr(event, "id", None), error=repr(e))
        finally:
            self._wake.set()

    # -- control from other threads -------------------------------------------

    def reopen(self) -> None:
        """SIGHUP: let the sink reopen its files or sockets (logrotate); a broken outbox
        is retried on the next pass instead of after ``REOPEN_EVERY``."""
        with self._lock:
            self._next_open = 0.0
        self._wake.set()
        try:
            self._sink.reopen()
        except Exception as e:
            log.error("sink_reopen_failed", sink=self.sink_name, error=str(e))

    def status(self) -> dict[str, Any]:
        with self._lock:
            backlog = len(self._memory) + (len(self._outbox) if self._outbox else 0)
            outbox = "ok" if self._outbox is not None and not self._outbox_broken else "memory"
        return {
            "sink": self.sink_name,
            "backlog": backlog,
            "delivered": self.delivered,
            "retried": self.retried,
            "dropped": dict(self.dropped),
            "outbox_write_failed": self.outbox_write_failed,
            "outbox": outbox,
            "last_error": self.last_error,
            "last_success": self.last_success,
        }

    def outbox_state(self) -> str | None:
        """None while the outbox works; else what is wrong with it."""
        with self._lock:
            if self._outbox is not None and not self._outbox_broken:
                return None
            return self._outbox_error or "not open"

    def carry_over(self, old: SinkWorker) -> None:
        """A reload rebuilt this sink: take over the counts of the worker it replaces
        (stopped and closed), so status and /metrics count per sink since the start."""
        with self._lock:
            self.delivered += old.delivered
            self.retried += old.retried
            self.outbox_write_failed += old.outbox_write_failed
            self.dropped.update(old.dropped)
            if self.last_error is None:
                self.last_error = old.last_error
            if self.last_success is None:
                self.last_success = old.last_success

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._memory:
                log.error("alerts_lost_on_close", sink=self.sink_name, count=len(self._memory))
                self.dropped["closed"] += len(self._memory)
                self._memory.clear()
            if self._outbox is not None:
                self._outbox.close()
                self._outbox = None
        try:
            self._sink.close()
        except Exception as e:
            log.warning("sink_close_failed", sink=self.sink_name, error=str(e))
        self._wake.set()

    # -- one pass of the loop (tests drive this with a FakeClock) --------------

    def run_once(self, ctx: WorkerContext | None = None) -> float:
        """Deliver every due head once; return seconds until something is due."""
        next_due = 30.0
        progressed = False
        for pending in self._heads():
            if ctx is not None:
                if ctx.stopping:
                    return 0.0
                ctx.beat()
            now = self._clock.monotonic()
            state = self._retry.get(pending.fingerprint)
            if state is None or state.event_id != pending.id:
                state = _RetryState(pending.id, 0, now)
                self._retry[pending.fingerprint] = state
            age = self._clock.wall() - pending.enqueued
            if age > self.max_age:
                self._give_up(pending, state, age)
                progressed = True
                continue
            if state.due > now:
                next_due = min(next_due, state.due - now)
                continue
            if self._attempt(pending, state):
                progressed = True
            else:
                next_due = min(next_due, max(0.0, state.due - self._clock.monotonic()))
        if self._periodic is not None:
            now = self._clock.monotonic()
            if now >= self._next_periodic:
                after: object = None
                try:
                    after = self._periodic(self._clock.wall())
                except Exception as e:
                    log.error("sink_periodic_failed", sink=self.sink_name, error=repr(e))
                # a sink may say when it next has something to do (float seconds)
                wait = after if isinstance(after, float | int) and after > 0 else PERIODIC_EVERY
                self._next_periodic = now + float(wait)
            next_due = min(next_due, max(0.0, self._next_periodic - now))
        if self._outbox is None and not self._closed:     # come back to reopen it
            next_due = min(next_due, max(0.0, self._next_open - self._clock.monotonic()))
        return 0.0 if progressed else next_due

    # -- internals --------------------------------------------------------------

    def _attempt(self, pending: Pending, state: _RetryState) -> bool:
        """Try one delivery; True when the event left the queue."""
        try:
            event = pending.event()
        except Exception as e:
            self._drop(pending, "corrupt")
            log.error("alert_dropped", sink=self.sink_name, reason="corrupt", event_id=pending.id,
                      error=repr(e))
            return True
        try:
            self._sink.deliver(event)
        except PermanentDeliveryError as e:
            self.last_error = str(e)
            self._drop(pending, "permanent")
            log.error("alert_delivery_failed_permanently", sink=self.sink_name, event_id=event.id,
                      fingerprint=event.fingerprint, rule=event.rule, status=event.status,
                      error=str(e))
            return True
        except DeliveryError as e:
            self._schedule_retry(event, state, str(e), e.retry_after)
            return False
        except Exception as e:  # a sink bug: keep the event and retry, loudly
            log.exception("sink_deliver_crashed", sink=self.sink_name, event_id=event.id)
            self._schedule_retry(event, state, repr(e), None)
            return False
        self.delivered += 1
        self.last_success = self._clock.wall()
        self._remove(pending)
        return True

    def _schedule_retry(self, event: AlertEvent, state: _RetryState, error: str,
                        retry_after: float | None) -> None:
        state.attempts += 1
        self.retried += 1
        self.last_error = error
        delay = self._backoff.delay(state.attempts - 1, self._rng.random(), retry_after)
        state.due = self._clock.monotonic() + delay
        log.warning("alert_delivery_failed", sink=self.sink_name, event_id=event.id,
                    fingerprint=event.fingerprint, rule=event.rule, status=event.status,
                    attempt=state.attempts, retry_in=round(delay, 3), error=error)

    def _give_up(self, pending: Pending, state: _RetryState, age: float) -> None:
        self._drop(pending, "max_age")
        log.error("alert_delivery_given_up", sink=self.sink_name, event_id=pending.id,
                  fingerprint=pending.fingerprint, age=round(age, 1), max_age=self.max_age,
                  attempts=state.attempts, last_error=self.last_error)

    def _drop(self, pending: Pending, reason: str) -> None:
        with self._lock:
            self.dropped[reason] += 1
        self._remove(pending)

    def _remove(self, pending: Pending) -> None:
        self._retry.pop(pending.fingerprint, None)
        with self._lock:
            for i, p in enumerate(self._memory):
                if p.id == pending.id:
                    del self._memory[i]
                    break
            if self._outbox is not None:
                try:
                    self._outbox.delete(pending.id)
                except sqlite3.Error as e:
                    self._outbox_failed("delete", e)
                    if len(self._done) < _DONE_CAPACITY:
                        self._done.add(pending.id)

    def _heads(self) -> list[Pending]:
        with self._lock:
            if self._closed:
                return []
            if self._outbox is None and self._clock.monotonic() >= self._next_open:
                self._open_outbox()
            db_heads: list[Pending] = []
            if self._outbox is not None:
                if self._memory:
                    try:
                        self._flush_memory()
                    except sqlite3.Error as e:
                        self._outbox_failed("write", e)
                try:
                    for done in list(self._done):
                        self._outbox.delete(done)
                        self._done.discard(done)
                    db_heads = [p for p in self._outbox.heads() if p.id not in self._done]
                    self._db_fingerprints = {p.fingerprint for p in db_heads}
                    if not self._memory:
                        self._outbox_ok()
                except sqlite3.Error as e:
                    self._outbox_failed("read", e)
            # memory events are newer than the outbox's: they wait for an alert's
            # outbox events (as last seen, if the outbox cannot be read now)
            seen = {p.fingerprint for p in db_heads} | self._db_fingerprints
            mem_heads: list[Pending] = []
            for p in self._memory:
                if p.fingerprint not in seen:
                    seen.add(p.fingerprint)
                    mem_heads.append(p)
            return db_heads + mem_heads

    def _enqueue(self, pending: Pending) -> None:
        """Under the lock: write to the outbox (after any memory backlog), else memory."""
        if self._outbox is not None:
            try:
                self._flush_memory(pending)
                self._outbox_ok()
                return
            except sqlite3.Error as e:
                self.outbox_write_failed += 1
                log.error("outbox_write_failed", sink=self.sink_name, event_id=pending.id,
                          path=self._outbox_path, error=str(e))
                self._outbox_broken = True
                self._outbox_error = f"write failed: {e}"
                self._quarantine_if_corrupt(e)
        else:
            self.outbox_write_failed += 1
            log.error("outbox_write_failed", sink=self.sink_name, event_id=pending.id,
                      path=self._outbox_path, error="outbox not open")
        if len(self._memory) >= self._memory_capacity:
            old = self._memory.popleft()
            self.dropped["memory_full"] += 1
            log.error("alert_dropped", sink=self.sink_name, reason="memory_full", event_id=old.id,
                      capacity=self._memory_capacity)
        self._memory.append(pending)

    def _flush_memory(self, *newer: Pending) -> None:
        """Write the memory backlog, then ``newer``, to the outbox; count what it drops."""
        assert self._outbox is not None
        dropped = self._outbox.put([*self._memory, *newer])
        self._memory.clear()
        if dropped:
            self.dropped["overflow"] += dropped
            log.error("alert_dropped", sink=self.sink_name, reason="outbox_full", count=dropped,
                      max_backlog=self._max_rows)

    def _open_outbox(self) -> None:
        try:
            self._outbox = Outbox(self._outbox_path, max_rows=self._max_rows)
        except (sqlite3.Error, OSError) as e:
            self._outbox = None
            self._next_open = self._clock.monotonic() + REOPEN_EVERY
            self._outbox_failed("open", e)
            return
        pending = len(self._outbox)
        if pending:
            log.info("outbox_pending", sink=self.sink_name, count=pending)

    def _outbox_ok(self) -> None:
        if self._outbox_broken:
            self._outbox_broken = False
            log.info("outbox_recovered", sink=self.sink_name, path=self._outbox_path)

    def _outbox_failed(self, op: str, e: Exception) -> None:
        self._outbox_error = f"{op} failed: {e}"
        if not self._outbox_broken:
            log.error("outbox_failed", sink=self.sink_name, op=op, path=self._outbox_path,
                      error=str(e))
        self._outbox_broken = True
        self._quarantine_if_corrupt(e)

    def _quarantine_if_corrupt(self, e: Exception) -> None:
        """Under the lock: a damaged database file (not a full disk, not a lock) is set
        aside and a fresh outbox opened at once; the events in memory go into it."""
        if not is_corrupt(e) or self._outbox is None:
            return
        self._outbox.close()
        self._outbox = None
        quarantine(self._outbox_path, self.sink_name)
        self._next_open = self._clock.monotonic()
