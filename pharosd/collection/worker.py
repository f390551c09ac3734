"""The collector worker: polls every source on its own schedule and hands samples on.

One thread (``run``) owns the schedule. Each source is due on its own
``every`` by the monotonic clock, without drift: the next due time is the
previous due time plus ``every``; if the loop fell behind, the slots that
passed are skipped (and counted as ``missed``) instead of run in a burst.
A source's first run is as soon as it is added.

* Non-blocking sources (the statistics) run inline on the collector thread.
* Blocking sources (``blocking = True``: probes with their own timeouts) run
  on a ``ThreadPoolExecutor`` of up to ``max_blocking`` threads (started as
  needed), at most one run in flight per source; when a run is still in
  flight at the source's next due time, that slot is skipped and counted
  (``skipped``). Their results are delivered from the pool thread when they
  finish. A run is never queued behind another source's: when every thread
  is busy the slot is skipped too (counted ``skipped``, logged once as
  ``source_skipped`` with ``reason="every pool thread busy"``). So a hung
  probe holds one thread, its own, until its timeout ends the run, and the
  other probes keep their schedule as long as fewer than ``max_blocking``
  (64) probes hang at once. A source that found every thread busy is first
  in line for the next free one.

``collect(now)`` gets the wall-clock time to stamp samples with. The samples
of the non-blocking sources that ran in one pass of the loop go on together,
in the order the sources ran, and each blocking source's samples go on when
its run finishes: every non-empty list goes to every consumer, each getting
its own list (one wakeup of the evaluator a pass, not one per statistic). A
consumer must not block (it puts into a bounded queue); one that raises is
logged (once per distinct error) and counted, and the others still get the
samples.

A source that raises is logged once per distinct error message
(``source_failed``; ``source_recovered`` when a run succeeds again), counted,
and polled again at its next due time. ``first_collection`` is set once
every non-blocking source has run (succeeded or failed) once: the daemon
sends ``READY=1`` on it.

``reconfigure(sources)`` may be called from any thread. Sources are matched
by ``key`` (``source_key``): a source whose key is unchanged keeps its
running instance, schedule, counters and state (a statistic's rate
baselines); new keys are added and run at once; removed ones are dropped
(a run of theirs still in flight is discarded) and closed, like every source
when ``run`` ends, if they have a ``close()``. A source without a ``key``
attribute only matches itself. A source's ``counters()``, if it has one, are
shown in ``status()`` beside the collector's own.

``run(ctx)`` beats the heartbeat at least every ``IDLE_WAIT`` seconds and
returns promptly once ``ctx.stopping`` (a stop or a ``reconfigure`` ends its
sleep); it shuts the pool down without waiting for runs in flight (queued
runs are cancelled; one already running finishes on its own and is
delivered like any other, unless its source was removed).
The schedule and counters live in the object, so a restarted ``run`` goes
on where the last one stopped.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import structlog

from pharosd.clock import Clock, SystemClock
from pharosd.errors import ProbeError, describe_error
from pharosd.model import Sample
from pharosd.source import Source
from pharosd.worker import IDLE_WAIT, WorkerContext

log = structlog.get_logger(__name__)

Consumer = Callable[[list[Sample]], None]

MAX_BLOCKING = 64       # pool threads for blocking sources (one run in flight per source)
MIN_EVERY = 0.01        # a source's `every` is never taken as less than this


def source_key(source: Source) -> Hashable:
    """What identifies a source across ``reconfigure``: its ``key`` attribute,
    else the object itself."""
    key = getattr(source, "key", None)
    if key is None:
        return ("object", id(source))
    return key


def _collect(source: Source, now: float) -> list[Sample]:
    return list(source.collect(now))


def _consumer_name(c: Consumer) -> str:
    name = getattr(c, "__qualname__", None) or getattr(c, "__name__", None)
    if name is None:
        name = type(c).__qualname__
    return str(name)


def next_due(due: float, every: float, now: float) -> tuple[float, int]:
    """The slot after ``due`` that is still ahead of ``now``, and how many
    slots were passed over to get there."""
    nxt = due + every
    if nxt > now:
        return nxt, 0
    missed = math.floor((now - nxt) / every) + 1
    nxt += missed * every
    if nxt <= now:          # float rounding
        nxt += every
        missed += 1
    return nxt, missed


@dataclass(eq=False)
class _Entry:
    source: Source
    key: Hashable
    due: float | None = None          # None: run at the next loop pass
    runs: int = 0
    failures: int = 0
    skipped: int = 0
    missed: int = 0
    last_run: float | None = None     # wall time of the last finished run's start
    last_error: str | None = None
    failing: bool = False
    logged_error: str | None = None
    ran_once: bool = False
    active: bool = True
    skipping: bool = False
    starved: int = 0                  # slots skipped in a row with every pool thread busy
    in_flight: Future[list[Sample]] | None = None

    @property
    def every(self) -> float:
        return max(MIN_EVERY, float(self.source.every))


class Collector:
    """The worker that polls sources; see the module docstring."""

    name = "collector"
    heartbeat_timeout = 30.0

    def __init__(self, sources: Sequence[Source], consumers: Sequence[Consumer],
                 clock: Clock | None = None, max_blocking: int = MAX_BLOCKING,
                 on_first_collection: Callable[[], None] | None = None) -> None:
        if max_blocking < 1:
            raise ValueError(f"max_blocking must be at least 1, got {max_blocking}")
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._max_blocking = max_blocking
        self._consumers = tuple(consumers)
        self._lock = threading.Lock()
        self._entries: list[_Entry] = [_Entry(s, source_key(s)) for s in sources]
        self._consumer_errors: dict[int, str] = {}
        self._consumer_failures = 0
        self._running = 0          # blocking runs in flight, removed sources' included
        self._stopped = False      # run() ended: a run finishing now publishes nothing
        self.first_collection = threading.Event()
        self._on_first_collection = on_first_collection
        self._wake = threading.Event()     # a reconfigure or a stop ends the loop's sleep

    # -- other threads -----------------------------------------------------

    def reconfigure(self, sources: Sequence[Source]) -> None:
        """Swap the set of sources, keeping the instances whose key is unchanged."""
        with self._lock:
            old: dict[Hashable, _Entry] = {}
            for e in self._entries:
                old.setdefault(e.key, e)
            entries: list[_Entry] = []
            kept = added = 0
            for s in sources:
                key = source_key(s)
                entry = old.pop(key, None)
                if entry is None:
                    entry = _Entry(s, key)
                    added += 1
                else:
                    kept += 1
                entries.append(entry)
            gone = [e for e in self._entries if e not in entries]
            for e in gone:
                e.active = False
            self._entries = entries
        self._wake.set()                   # new sources run at once
        self._close([e.source for e in gone])
        log.info("collector_reconfigured", kept=kept, added=added, removed=len(gone))

    def status(self) -> dict[str, dict[str, Any]]:
        """Per source (by name; a repeated name gets ``#2``...): last run (wall
        seconds), last error, runs, failures, skipped, missed and more."""
        out: dict[str, dict[str, Any]] = {}
        with self._lock:
            for e in self._entries:
                name = e.source.name
                n = 2
                while name in out:
                    name = f"{e.source.name}#{n}"
                    n += 1
                out[name] = {
                    "blocking": bool(e.source.blocking),
                    "every": e.every,
                    "last_run": e.last_run,
                    "last_error": e.last_error,
                    "failing": e.failing,
                    "runs": e.runs,
                    "failures": e.failures,
                    "skipped": e.skipped,
                    "missed": e.missed,
                    "in_flight": e.in_flight is not None,
                }
                counters = getattr(e.source, "counters", None)
                if callable(counters):
                    out[name].update(counters())
        return out

    @property
    def consumer_failures(self) -> int:
        """How many deliveries to a consumer raised."""
        with self._lock:
            return self._consumer_failures

    # -- the worker thread -------------------------------------------------

    def run(self, ctx: WorkerContext) -> None:
        pool = ThreadPoolExecutor(max_workers=self._max_blocking,
                                  thread_name_prefix="pharos-source")
        with self._lock:
            self._stopped = False
        ctx.on_stop(self._wake.set)
        try:
            while not ctx.stopping:
                ctx.beat()
                self._wake.clear()
                self._pass(ctx, pool)
                self._check_first_collection()
                self._wake.wait(self._sleep_for())
        finally:
            # A run that ends after this (a plugin killed by close(), a hung run
            # that returns) is not a result: it would report the stop as a failure.
            with self._lock:
                self._stopped = True
            pool.shutdown(wait=False, cancel_futures=True)
            self._close_sources()

    def _pass(self, ctx: WorkerContext, pool: ThreadPoolExecutor) -> None:
        """Start the due sources; hand on the inline ones' samples together."""
        now = self._clock.monotonic()
        with self._lock:
            entries = list(self._entries)
        # Sources that found every pool thread busy get the next free one.
        entries.sort(key=lambda x: -x.starved)
        batch: list[Sample] = []
        for e in entries:
            if ctx.stopping:
                break
            if e.due is not None and e.due > now:
                continue
            self._advance(e, now)
            if e.source.blocking:
                self._submit(e, pool)
            else:
                batch += self._run_inline(e)
                ctx.beat()
        if batch:
            self._deliver(batch)

    def _close_sources(self) -> None:
        """Let sources with a ``close()`` (plugins in flight) clean up on stop."""
        with self._lock:
            sources = [e.source for e in self._entries]
        self._close(sources)

    @staticmethod
    def _close(sources: Sequence[Source]) -> None:
        for source in sources:
            close = getattr(source, "close", None)
            if callable(close):
                try:
                    close()
                except Exception as exc:
                    log.warning("source_close_failed", source=source.name, error=repr(exc))

    def _advance(self, e: _Entry, now: float) -> None:
        with self._lock:
            if e.due is None:
                e.due = now + e.every
            else:
                e.due, missed = next_due(e.due, e.every, now)
                e.missed += missed

    def _sleep_for(self) -> float:
        now = self._clock.monotonic()
        with self._lock:
            wait = IDLE_WAIT
            for e in self._entries:
                if e.due is None:
                    return 0.0
                wait = min(wait, e.due - now)
        return max(0.0, wait)

    def _run_inline(self, e: _Entry) -> list[Sample]:
        """Run ``e`` now; the samples to hand on (none when it failed or was removed)."""
        wall = self._clock.wall()
        try:
            samples = _collect(e.source, wall)
        except Exception as ex:
            return self._finish(e, wall, [], ex)
        return self._finish(e, wall, samples, None)

    def _submit(self, e: _Entry, pool: ThreadPoolExecutor) -> None:
        reason = ""
        first_skip = False
        with self._lock:
            if e.in_flight is not None:
                reason = "previous run still in flight"
            elif self._running >= self._max_blocking:
                reason = "every pool thread busy"     # never queue behind a hung run
            if reason:
                e.skipped += 1
                e.starved = e.starved + 1 if e.in_flight is None else 0
                first_skip = not e.skipping
                e.skipping = True
            skipped = e.skipped
        if reason:
            if first_skip:
                log.warning("source_skipped", source=e.source.name, reason=reason,
                            skipped=skipped)
            return
        wall = self._clock.wall()
        with self._lock:
            try:
                fut = pool.submit(_collect, e.source, wall)
            except RuntimeError:        # the pool is shutting down
                return
            self._running += 1
            e.in_flight = fut
            e.skipping = False
            e.starved = 0
        fut.add_done_callback(lambda f: self._on_done(e, wall, f))

    def _on_done(self, e: _Entry, wall: float, fut: Future[list[Sample]]) -> None:
        try:
            with self._lock:
                stopped = self._stopped
            if fut.cancelled() or stopped:
                return
            exc = fut.exception()
            samples = self._finish(e, wall, [], exc) if exc is not None else (
                self._finish(e, wall, fut.result(), None))
            if samples:
                self._deliver(samples)
        finally:
            with self._lock:
                self._running -= 1
                if e.in_flight is fut:
                    e.in_flight = None

    def _finish(self, e: _Entry, wall: float, samples: list[Sample],
                err: BaseException | None) -> list[Sample]:
        """Count and log a finished run; returns the samples to hand on."""
        name = e.source.name
        message = ""
        announce = recovered = False
        with self._lock:
            e.runs += 1
            e.last_run = wall
            e.ran_once = True
            active = e.active
            if err is not None:
                message = describe_error(err)
                e.failures += 1
                e.failing = True
                e.last_error = message
                announce = message != e.logged_error
                e.logged_error = message
            else:
                recovered = e.logged_error is not None
                e.logged_error = None
                e.failing = False
        if err is not None:
            if announce:
                kw: dict[str, Any] = {}
                if not isinstance(err, ProbeError | OSError):
                    kw["exc_info"] = err        # unexpected: keep the traceback
                log.warning("source_failed", source=name, error=message, **kw)
        elif recovered:
            log.info("source_recovered", source=name)
        return samples if active else []

    def _deliver(self, samples: list[Sample]) -> None:
        for i, consumer in enumerate(self._consumers):
            try:
                consumer(list(samples))
            except Exception as ex:
                message = describe_error(ex)
                with self._lock:
                    self._consumer_failures += 1
                    announce = self._consumer_errors.get(i) != message
                    self._consumer_errors[i] = message
                if announce:
                    log.error("consumer_failed", consumer=_consumer_name(consumer),
                              error=message, exc_info=ex)
            else:
                if i in self._consumer_errors:
                    with self._lock:
                        gone = self._consumer_errors.pop(i, None)
                    if gone is not None:
                        log.info("consumer_recovered", consumer=_consumer_name(consumer))

    def _check_first_collection(self) -> None:
        if self.first_collection.is_set():
            return
        with self._lock:
            ready = all(e.ran_once for e in self._entries if not e.source.blocking)
        if ready:
            self.first_collection.set()
            if self._on_first_collection is not None:
                self._on_first_collection()
