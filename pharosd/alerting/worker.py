"""The evaluator worker: feeds samples to the pure ``Evaluator`` and publishes its events.

It owns the alert state (the alert managers of every threshold and label
set live inside the one ``Evaluator``, stepped on this thread only). The
collector hands it samples through a bounded queue; when the queue is
full the newest batch is dropped and counted (``dropped_batches``), so a
stalled evaluator never stalls sampling. Once a second it ticks the
evaluator so soak and cool elapse even when no sample arrives.
Reconfiguration is posted to the same thread, so state is never shared.

With a ``state_path``, open and pending alerts are saved there (atomically
and durably: the file and its directory are fsynced; mode 0640) after every
batch of events, every ``SAVE_EVERY`` seconds, and on stop, and restored
when the worker first runs, so a restart neither re-fires an alert that is
already firing nor forgets one: soak and cool go on from where they were,
not counting the time the daemon was down.
"""

from __future__ import annotations

import json
import os
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
from pharosd.worker import WorkerContext

log = structlog.get_logger(__name__)

STATE_MODE = 0o640          # state files: alert texts and values are not for everyone

TICK = 1.0
SAVE_EVERY = 10.0


class EvaluatorWorker:
    name = "evaluator"
    heartbeat_timeout = 15.0

    def __init__(self, evaluator: Evaluator, bus: Bus, clock: Clock | None = None,
                 queue_size: int = 1024, state_path: str | None = None) -> None:
        self._evaluator = evaluator
        self._state_path = state_path
        self._restored = False
        self._saved: dict[str, Any] | None = None
        self._bus = bus
        self._clock = clock or SystemClock()
        self._queue: queue.Queue[list[Sample] | Callable[[], list[AlertEvent]]] = (
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
        events = self._evaluator.import_state(data, self._clock.monotonic(), self._clock.wall())
        self._saved = data
        log.info("alert_state_restored", path=self._state_path,
                 rules=len(data.get("rules", {})), resolved=len(events))
        return events

    def _save(self) -> None:
        if not self._state_path:
            return
        data = self._evaluator.export_state(self._clock.monotonic())
        if data == self._saved and not data["rules"]:
            return
        try:
            write_atomically(self._state_path, json.dumps(data).encode())
        except OSError as exc:
            log.warning("alert_state_save_failed", path=self._state_path, error=str(exc))
            return
        self._saved = data

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
            self._publish(events)
        next_tick = self._clock.monotonic() + TICK
        next_save = self._clock.monotonic() + SAVE_EVERY
        try:
            self._loop(ctx, next_tick, next_save)
        finally:
            with self._lock:
                self._save()

    def _loop(self, ctx: WorkerContext, next_tick: float, next_save: float) -> None:
        while not ctx.stopping:
            ctx.beat()
            timeout = max(0.0, next_tick - self._clock.monotonic())
            try:
                item = self._queue.get(timeout=min(timeout, TICK))
            except queue.Empty:
                item = None
            now, wall = self._clock.monotonic(), self._clock.wall()
            with self._lock:
                if callable(item):
                    events = item()
                elif item is not None:
                    events = self._evaluator.observe(item, now, wall)
                else:
                    events = []
                if now >= next_tick:
                    events += self._evaluator.tick(now, wall)
                    next_tick = now + TICK
                failures = self._evaluator.drain_errors()
            for rule, error in failures:
                log.error("rule_failed", rule=rule, error=error)
            # Events reach the sinks' outboxes first, then the state is saved: a
            # crash in between re-fires (at least once), never loses an alert.
            self._publish(events)
            if events or now >= next_save:
                with self._lock:
                    self._save()
                next_save = now + SAVE_EVERY


def write_atomically(path: str, data: bytes, mode: int = STATE_MODE) -> None:
    """Replace ``path`` with ``data`` so that a crash or power cut leaves the old file or
    the new one: write a temporary file (``mode``), fsync it, rename it over ``path``,
    fsync the directory. Raises ``OSError``."""
    tmp = f"{path}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        os.fchmod(fd, mode)          # an old file of another mode, or the umask
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
