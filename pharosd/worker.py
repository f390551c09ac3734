"""The contract between the supervisor and the threads it runs.

A worker is an object with a ``name`` and a ``run(ctx)`` method that loops
until ``ctx.stopping`` and calls ``ctx.beat()`` at least once per
``heartbeat_timeout`` (it blocks only with timeouts: ``ctx.wait(s)``,
``queue.get(timeout=...)``). If ``run`` raises, the supervisor logs the
traceback and calls ``run`` again on a fresh thread after a backoff; the
worker object, and so any state it holds, survives the restart. If
``run`` returns while the daemon is not stopping, that counts as a crash.

``ctx.checkpoint(name)`` marks a point in a worker's loop where a crash matters (between
two durable writes); it does nothing unless the end-to-end tests' fault injection
(``pharosd.faults``) hooked it to kill the process exactly there.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol

from pharosd.clock import Clock, SystemClock


class WorkerContext:
    """What a running worker gets: a stop signal and a heartbeat."""

    def __init__(self, stop: threading.Event | None = None, clock: Clock | None = None) -> None:
        self._stop = stop or threading.Event()
        self._clock: Clock = clock or SystemClock()
        self.last_beat = self._clock.monotonic()
        self.on_checkpoint: Callable[[str], None] | None = None

    def checkpoint(self, name: str) -> None:
        """A named point in the worker's loop (see the module docstring)."""
        hook = self.on_checkpoint
        if hook is not None:
            hook(name)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def beat(self) -> None:
        self.last_beat = self._clock.monotonic()

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True if the daemon is stopping."""
        return self._stop.wait(max(0.0, seconds))

    def stop(self) -> None:
        self._stop.set()


class Worker(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def heartbeat_timeout(self) -> float:
        """Seconds without a beat after which the worker counts as hung."""
        ...

    def run(self, ctx: WorkerContext) -> None: ...
