"""Fault injection for the end-to-end tests, off unless ``PHAROSD_TEST_FAULTS`` is set.

The variable holds ``WORKER:FAULT`` items separated by commas:
``evaluator:crash-once``, ``evaluator:crash-always``, ``collector:hang``,
``evaluator:kill-at-published``. A crash raises inside the worker's thread at the
start of ``run``; a hang blocks the worker without heartbeats, as a deadlock would;
``kill-at-POINT`` sends the process SIGKILL when the worker reaches its checkpoint
``POINT`` (``WorkerContext.checkpoint``), as a power cut at exactly that point would.
Nothing in the config or the CLI reaches this; the variable's name says what it is for.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Mapping
from typing import Any

from pharosd.worker import Worker, WorkerContext

ENV = "PHAROSD_TEST_FAULTS"
KILL_AT = "kill-at-"


class InjectedFault(RuntimeError):
    """Raised by a worker that a test told to crash."""


class _FaultyWorker:
    def __init__(self, inner: Worker, fault: str) -> None:
        self._inner = inner
        self._fault = fault
        self._crashed = False
        self.name = inner.name
        # A hang should be noticed quickly in a test, not after a real timeout.
        self.heartbeat_timeout = 2.0 if fault == "hang" else inner.heartbeat_timeout

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._inner, attr)

    def run(self, ctx: WorkerContext) -> None:
        if self._fault == "crash-always" or (self._fault == "crash-once" and not self._crashed):
            self._crashed = True
            raise InjectedFault(f"{ENV}: {self.name}:{self._fault}")
        if self._fault == "hang":
            threading.Event().wait()
        if self._fault.startswith(KILL_AT):
            ctx.on_checkpoint = self._kill_at
        self._inner.run(ctx)

    def _kill_at(self, point: str) -> None:
        if point == self._fault.removeprefix(KILL_AT):
            os.kill(os.getpid(), signal.SIGKILL)


def parse(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    env = os.environ if environ is None else environ
    spec = env.get(ENV, "")
    faults: dict[str, str] = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        worker, _, fault = item.partition(":")
        faults[worker] = fault
    return faults


def wrap(worker: Worker, faults: Mapping[str, str]) -> Worker:
    fault = faults.get(worker.name)
    return _FaultyWorker(worker, fault) if fault else worker
