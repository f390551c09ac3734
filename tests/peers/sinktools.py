"""Helpers for the sink tests: events, a scripted sink, a worker on a thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from pharosd.model import AlertEvent, Level, Status, fingerprint, labels_of
from pharosd.sinks.worker import SinkWorker
from pharosd.worker import WorkerContext


def event(rule: str = "disk-full", status: Status = "firing", *, level: Level = "warning",
          labels: dict[str, str] | None = None, value: float | None = 93.5,
          limit: float | None = 90.0, at: float | None = None, host: str = "web1",
          summary: str | None = None) -> AlertEvent:
    lab = labels_of(labels if labels is not None else {"mount": "/"})
    now = time.time() if at is None else at
    return AlertEvent(status=status, rule=rule, level=level, metric="disk.used_percent",
                      labels=lab, value=value, limit=limit, op="above", host=host,
                      started_at=now - 60, at=now,
                      summary=summary or f"disk.used_percent is {value}, above {limit}",
                      fingerprint=fingerprint(rule, lab))


Outcome = Exception | None


class ScriptedSink:
    """Records every attempt; ``script(event, attempt_no)`` may return an exception to raise."""

    def __init__(self, name: str = "scripted",
                 script: Callable[[AlertEvent, int], Outcome] | None = None) -> None:
        self.name = name
        self.script = script or (lambda ev, n: None)
        self.attempts: list[AlertEvent] = []
        self.delivered: list[AlertEvent] = []
        self.reopened = 0
        self.closed = False
        self.periodic_calls: list[float] = []

    def deliver(self, ev: AlertEvent) -> None:
        self.attempts.append(ev)
        n = sum(1 for a in self.attempts if a.id == ev.id)
        outcome = self.script(ev, n)
        if outcome is not None:
            raise outcome
        self.delivered.append(ev)

    def reopen(self) -> None:
        self.reopened += 1

    def close(self) -> None:
        self.closed = True


class PeriodicSink(ScriptedSink):
    def periodic(self, now_wall: float) -> None:
        self.periodic_calls.append(now_wall)


@contextmanager
def running(worker: SinkWorker) -> Iterator[WorkerContext]:
    """Run ``worker`` on its own thread; stop and join it on exit (not close)."""
    ctx = WorkerContext()
    errors: list[BaseException] = []

    def target() -> None:
        try:
            worker.run(ctx)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    t = threading.Thread(target=target, name=f"sink-{worker.name}", daemon=True)
    t.start()
    try:
        yield ctx
    finally:
        ctx.stop()
        t.join(60)
        assert not t.is_alive(), "sink worker did not stop"
        assert not errors, f"sink worker crashed: {errors!r}"


def ids(events: list[Any]) -> list[str]:
    return [e.id for e in events]
