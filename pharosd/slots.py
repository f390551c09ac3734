"""The supervisor's per-worker slot: an explicit restart state machine (pure).

```
            start                      exited (crash)                   backoff due
 STARTING ────────► RUNNING ───────────────────────────► BACKOFF ───────────────► RUNNING
                      │  ▲  heartbeat older than its timeout: hung (logged once),
                      │  └─ fresh again: resumed          (a flag, not a state)
                      ▼
 any state ── stop ─► STOPPED (final)
```

After supervisord's ``states.py``: every transition is a method here and
checks that it is allowed, so the supervisor cannot put a slot in a state it
should not be in. Time is passed in (monotonic seconds); the slot owns no
thread and logs nothing: it returns what happened and the supervisor logs.
Only the supervisor's thread (the daemon's main thread) calls these methods.

The backoff (a ``pharosd.backoff.Backoff`` the supervisor passes in: no
jitter, doubling from its ``initial`` up to its ``maximum``) grows with each
crash in a row and resets once a worker has run for a whole ``period``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from pharosd.backoff import Backoff


class SlotState(enum.Enum):
    STARTING = "starting"   # supervised, thread not started yet
    RUNNING = "running"     # its thread runs the worker's loop
    BACKOFF = "backoff"     # it crashed; restarts at ``restart_at``
    STOPPED = "stopped"     # asked to stop; final


_ALLOWED: dict[SlotState, frozenset[SlotState]] = {
    SlotState.STARTING: frozenset({SlotState.RUNNING, SlotState.STOPPED}),
    SlotState.RUNNING: frozenset({SlotState.BACKOFF, SlotState.STOPPED}),
    SlotState.BACKOFF: frozenset({SlotState.RUNNING, SlotState.STOPPED}),
    SlotState.STOPPED: frozenset(),
}


class HeartbeatChange(enum.Enum):
    HUNG = "hung"           # the heartbeat just went stale
    RESUMED = "resumed"     # a stale heartbeat is fresh again


class TransitionError(RuntimeError):
    """A transition the state machine does not allow (a bug in the caller)."""


@dataclass
class Slot:
    """One supervised worker's restart state."""

    name: str
    heartbeat_timeout: float
    state: SlotState = SlotState.STARTING
    restarts: int = 0
    backoff: float = 0.0
    crashes_in_row: int = 0         # since the backoff was last reset
    restart_at: float = 0.0
    started_at: float = 0.0
    last_error: str | None = None
    hung_since: float | None = None

    def _go(self, to: SlotState) -> None:
        if to not in _ALLOWED[self.state]:
            raise TransitionError(f"worker {self.name}: {self.state.value} -> {to.value}")
        self.state = to

    def started(self, now: float) -> None:
        """Its thread was started (first start or a restart)."""
        if self.state is SlotState.BACKOFF:
            self.restarts += 1
        self._go(SlotState.RUNNING)
        self.started_at = now
        self.hung_since = None

    def crashed(self, error: str, now: float, backoff: Backoff) -> float:
        """Its ``run`` raised or returned while not stopping; returns the backoff."""
        self._go(SlotState.BACKOFF)
        self.last_error = error
        self.backoff = backoff.delay(self.crashes_in_row, 0.0)
        self.crashes_in_row += 1
        self.restart_at = now + self.backoff
        self.hung_since = None
        return self.backoff

    def restart_due(self, now: float) -> bool:
        return self.state is SlotState.BACKOFF and now >= self.restart_at

    def ran_well(self, now: float, period: float) -> None:
        """Forget the backoff once it has run for a whole ``period``."""
        if self.state is SlotState.RUNNING and self.backoff and now - self.started_at >= period:
            self.backoff = 0.0
            self.crashes_in_row = 0

    def stopped(self) -> None:
        if self.state is not SlotState.STOPPED:
            self._go(SlotState.STOPPED)

    def heartbeat(self, last_beat: float, now: float) -> HeartbeatChange | None:
        """Compare its last beat with its timeout; say when it turns hung or resumes."""
        if self.state is not SlotState.RUNNING:
            return None
        stale = now - last_beat > self.heartbeat_timeout
        if stale and self.hung_since is None:
            self.hung_since = now
            return HeartbeatChange.HUNG
        if not stale and self.hung_since is not None:
            self.hung_since = None
            return HeartbeatChange.RESUMED
        return None

    def is_hung(self, last_beat: float, now: float) -> bool:
        return self.state is SlotState.RUNNING and now - last_beat > self.heartbeat_timeout
