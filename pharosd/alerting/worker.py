"""The evaluator worker: feeds samples to the pure ``Evaluator`` and publishes its events.

It owns the alert state (the alert managers of every threshold and label
set live inside the one ``Evaluator``, stepped on this thread only). The
collector hands it samples through a bounded queue; when the queue is
full the newest batch is dropped and counted (``dropped_batches``), so a
stalled evaluator never stalls sampling. Once a second it ticks the
evaluator so soak and cool elapse even when no sample arrives; while no alert
is pending or open and no rule watches for absent data, a tick could only
forget stale series, so it ticks every ``IDLE_WAIT`` and otherwise wakes for
samples alone.
Reconfiguration is posted to the same thread, so state is never shared.

With a ``state_path``, open and pending alerts are saved there (atomically,
after every batch of events, every ``SAVE_EVERY`` seconds, and on stop) and
restored when the worker first runs, so a restart neither re-fires an alert
that is already firing nor forgets one: soak and cool go on from where they
were, not counting the time the daemon was down.

Events and state are ordered so that a crash at any point loses no event and,
where it can be avoided, repeats none: a batch of events is first saved *with*
the state that produced it (the file's ``events``, a journal), then published
(the notifier writes it to the sinks' outboxes), then the state is saved again
without it. A restart publishes a journal it finds again, first; the notifier
drops an event whose ``id`` it already routed, so a crash after the outboxes
took the batch delivers nothing twice. The only repeat left is a crash between a
sink's outbox commit and the notifier's own state file: the same event, same
``id``, is queued again (see docs/alerting.md, *Restarts*).

After the restore and after every reload, ``reconcile`` (the notifier's) gets the
fingerprints of the alerts open here, so the notifier closes what it still tracks
and this evaluator no longer has (a lost state file, a threshold removed while down).
"""

from __future__ import annotations

import contextlib
import json
import queue
import threading
from collections.abc import Callable, Sequence
from typing import Any

import structlog

from pharosd.alerting.config import AlertDefaults, ThresholdConfig
from pharosd.alerting.evaluator import Evaluator
from pharosd.bus import Bus
from pharosd.clock import Clock, SystemClock
from pharosd.model import AlertEvent, Sample
from pharosd.statefile import write_json
from pharosd.worker import IDLE_WAIT, WorkerContext

log = structlog.get_logger(__name__)

TICK = 1.0
SAVE_EVERY = 10.0
JOURNAL = "events"          # key of the state file: events saved, not yet published


class EvaluatorWorker:
    name = "evaluator"
    heartbeat_timeout = 15.0

    def __init__(self, evaluator: Evaluator, bus: Bus, clock: Clock | None = None,
                 queue_size: int = 1024, state_path: str | None = None,
                 reconcile: Callable[[frozenset[str]], None] | None = None) -> None:
        self._evaluator = evaluator
        self._reconcile = reconcile
        self._synced = False
        self._state_path = state_path
        self._restored = False
        self._saved: dict[str, Any] | None = None
        self._bus = bus
        self._clock = clock or SystemClock()
        self._queue: queue.Queue[list[Sample] | Callable[[], list[AlertEvent]] | None] = (
            queue.Queue(maxsize=queue_size))
        self._lock = threading.Lock()   # guards the evaluator against status readers
        self.dropped_batches = 0
        self.events_published = 0

    def submit(self, samples: list[Sample]) -> None:
        """Collector consumer: enqueue a batch, never block."""
        try:
            self._queue.put_nowait(samples)
        except queue.Full:
            self.dropped_batches += 1
            if self.dropped_batches in (1, 10, 100) or self.dropped_batches % 1000 == 0:
                log.warning("evaluator_queue_full", dropped_batches=self.dropped_batches)

    def reconfigure(self, thresholds: Sequence[ThresholdConfig], defaults: AlertDefaults) -> None:
        """Apply new thresholds on the worker thread (state kept for unchanged ones)."""
        ths = list(thresholds)

        def apply() -> list[AlertEvent]:
            return self._evaluator.reconfigure(ths, defaults)

        self._queue.put(apply, timeout=5.0)

    def open_alerts(self) -> list[dict[str, Any]]:
        with self._lock:
            return self._evaluator.open_alerts()

    def _restore(self) -> list[AlertEvent]:
        self._restored = True
        if not self._state_path:
            return []
        try:
            with open(self._state_path, encoding="utf-8") as f:
                data = json.load(f)
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            log.warning("alert_state_unreadable", path=self._state_path, error=str(exc))
            return []
        if not isinstance(data, dict):
            log.warning("alert_state_unreadable", path=self._state_path,
                        error="not a JSON object")
            return []
        journal = _read_journal(data.get(JOURNAL))
        events = self._evaluator.import_state(data, self._clock.monotonic(), self._clock.wall())
        self._saved = data
        log.info("alert_state_restored", path=self._state_path,
                 rules=len(data.get("rules") or {}), resolved=len(events),
                 republished=len(journal))
        return journal + events

    def _save(self, journal: Sequence[AlertEvent] = ()) -> None:
        """Save the alert state, with ``journal``: the events it produced that are
        not yet published (see the module docstring)."""
        if not self._state_path:
            return
        data = self._evaluator.export_state(self._clock.monotonic())
        if journal:
            data[JOURNAL] = [e.to_dict() for e in journal]
        elif data == self._saved and not data["rules"]:
            return
        try:
            write_json(self._state_path, data)
        except OSError as exc:
            log.warning("alert_state_save_failed", path=self._state_path, error=str(exc))
            return
        self._saved = data

    def _sync(self) -> None:
        """Tell the notifier which alerts are open, once the events that opened and
        closed them are published (after the restore and after a reload)."""
        self._synced = True
        if self._reconcile is None:
            return
        with self._lock:
            open_now = frozenset(a["fingerprint"] for a in self._evaluator.open_alerts()
                                 if a["status"] in ("firing", "resolving"))
        self._reconcile(open_now)

    def _publish(self, events: list[AlertEvent]) -> None:
        for event in events:
            log.debug("alert_event", status=event.status, rule=event.rule,
                      level=event.level, labels=dict(event.labels), id=event.id)
            self._bus.publish(event)
            self.events_published += 1

    def run(self, ctx: WorkerContext) -> None:
        if not self._restored:
            with self._lock:
                events = self._restore()
                if events:
                    self._save(events)
            self._publish(events)
            if events:
                with self._lock:
                    self._save()
        if not self._synced:
            self._sync()
        next_tick = self._clock.monotonic() + TICK
        next_save = self._clock.monotonic() + SAVE_EVERY
        try:
            self._loop(ctx, next_tick, next_save)
        finally:
            with self._lock:
                self._save()

    def _wake(self) -> None:
        with contextlib.suppress(queue.Full):       # a full queue wakes it anyway
            self._queue.put_nowait(None)

    def _loop(self, ctx: WorkerContext, next_tick: float, next_save: float) -> None:
        ctx.on_stop(self._wake)
        while not ctx.stopping:
            ctx.beat()
            timeout = max(0.0, next_tick - self._clock.monotonic())
            try:
                item = self._queue.get(timeout=min(timeout, IDLE_WAIT))
            except queue.Empty:
                item = None
            now, wall = self._clock.monotonic(), self._clock.wall()
            with self._lock:
                reconfigured = callable(item)
                if callable(item):
                    events = item()
                elif item is not None:
                    events = self._evaluator.observe(item, now, wall)
                else:
                    events = []
                if now >= next_tick:
                    events += self._evaluator.tick(now, wall)
                    next_tick = now + TICK
                # Nothing pending, open or watched for absence: tick only to forget
                # stale series, so an idle evaluator wakes for samples alone.
                if not self._evaluator.needs_tick():
                    next_tick = max(next_tick, now + IDLE_WAIT)
                else:       # an alert just went pending or open: tick within a second
                    next_tick = min(next_tick, now + TICK)
                failures = self._evaluator.drain_errors()
                if events:
                    # state and its events together, before anyone hears of them
                    self._save(events)
            for rule, error in failures:
                log.error("rule_failed", rule=rule, error=error)
            if events:
                ctx.checkpoint("journaled")
            self._publish(events)
            if events:
                ctx.checkpoint("published")
            if reconfigured:
                self._sync()
            if events or now >= next_save:
                with self._lock:
                    self._save()
                next_save = now + SAVE_EVERY


def _read_journal(raw: Any) -> list[AlertEvent]:
    """The events a crash left saved but maybe unpublished; unreadable ones are logged."""
    events: list[AlertEvent] = []
    for item in raw if isinstance(raw, list) else ():
        try:
            events.append(AlertEvent.from_dict(item))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            log.warning("alert_journal_entry_unreadable", error=str(exc))
    return events
