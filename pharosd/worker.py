"""The contract between the supervisor and the threads it runs.

A worker is an object with a ``name`` and a ``run(ctx)`` method that loops
until ``ctx.stopping`` and calls ``ctx.beat()`` at least once per
``heartbeat_timeout`` (it blocks only with timeouts: ``ctx.wait(s)``,
``queue.get(timeout=...)``). An idle worker blocks for up to ``IDLE_WAIT`` between
beats, not less: every wakeup of a sleeping thread costs CPU (about 0.1 ms here), and
at a 1 s interval a dozen needless wakeups a second cost more than the polling. A
worker that blocks on something of its own (a queue, an event, a selector) registers
``ctx.on_stop(wake)`` so that a stop ends that wait at once. If ``run``
raises, the supervisor logs the traceback and calls ``run`` again on a fresh
thread after a backoff; the worker object, and so any state it holds,
survives the restart. If ``run`` returns while the daemon is not stopping,
that counts as a crash.

``ctx.checkpoint(name)`` marks a point in a worker's loop where a crash matters (between
two durable writes); it does nothing unless the end-to-end tests' fault injection
(``pharosd.faults``) hooked it to kill the process exactly there.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol

from pharosd.clock import Clock, SystemClock

# The longest an idle worker blocks between two heartbeats; every heartbeat_timeout is
# longer (the shortest, 10 s, is the control socket's and the HTTP listener's).
IDLE_WAIT = 3.0


class WorkerContext:
    """What a running worker gets: a stop signal and a heartbeat."""

    def __init__(self, stop: threading.Event | None = None, clock: Clock | None = None) -> None:
        self._stop = stop or threading.Event()
        self._clock: Clock = clock or SystemClock()
        self.last_beat = self._clock.monotonic()
        self.on_checkpoint: Callable[[str], None] | None = None
        self._wakers: list[Callable[[], None]] = []

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

    def on_stop(self, wake: Callable[[], None]) -> None:
        """Call ``wake`` (from the stopping thread) when the worker is told to stop, so
        that a wait on the worker's own queue, event or selector ends at once."""
        self._wakers.append(wake)
        if self._stop.is_set():
            wake()

    def stop(self) -> None:
        self._stop.set()
        for wake in list(self._wakers):
            wake()


class Worker(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def heartbeat_timeout(self) -> float:
        """Seconds without a beat after which the worker counts as hung."""
        ...

    def run(self, ctx: WorkerContext) -> None: ...
