"""The alert state machine of one alert instance (one threshold, one label set).

Pure: ``AlertMachine(soak, cool).step(state, observation, now, wall)`` returns
the next ``AlertState`` and the ``Transition``\\ s it emits; ``now`` is the
monotonic clock (durations), ``wall`` only stamps ``started_at``. No threads,
no logging, no I/O. docs/alerting.md draws the machine; in short::

    OK --breach--> PENDING --soak elapsed--> FIRING --recover--> RESOLVING
    PENDING --recover--> OK (no event)       RESOLVING --cool elapsed--> OK (resolved)
                                             RESOLVING --breach--> FIRING (no event)

* The soak is measured from the first breaching observation; ``soak == 0``
  fires on the first breaching observation.
* The cool is measured from the first recovered observation; ``cool == 0``
  resolves on the first recovered observation.
* Levels: while FIRING, a breach at a higher level escalates at once (a
  ``firing`` transition with ``previous_level`` set); a breach at a lower
  level de-escalates once it has lasted ``cool`` (the same hysteresis as a
  recovery), to the level observed at that moment.
* ``observation=None`` is a timer tick: timers advance using the last known
  observation.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Literal

from pharosd.model import Level

LEVEL_RANK: dict[str, int] = {"info": 0, "warning": 1, "critical": 2}
"""Severity order of the levels: info < warning < critical."""


class Phase(StrEnum):
    """Where an alert instance is in its life."""

    OK = "ok"
    PENDING = "pending"
    FIRING = "firing"
    RESOLVING = "resolving"


@dataclass(frozen=True, slots=True)
class Observation:
    """What one evaluation of a threshold says about one instance.

    ``level`` is the breached level, None when the value does not breach.
    ``limit`` is the limit of the breached level; when not breaching, the
    limit the value would have to cross to breach (for ``above``, the lowest
    limit), so a resolved alert can say "back below 90%".
    """

    level: Level | None
    value: float
    limit: float | None

    @property
    def breaching(self) -> bool:
        return self.level is not None


@dataclass(frozen=True, slots=True)
class AlertState:
    """The state of one alert instance; monotonic times unless said otherwise.

    ``level`` is the alert's level while FIRING or RESOLVING, the observed
    level while PENDING, None while OK. ``started_at`` is the wall time the
    alert fired; ``breach_wall`` the wall time the current breach began.
    ``last`` is the last observation (timers run on it at a tick); an OK
    state remembers nothing, so every OK state is ``OK_STATE``.
    """

    phase: Phase = Phase.OK
    level: Level | None = None
    last: Observation | None = None
    breach_since: float | None = None
    breach_wall: float | None = None
    fired_at: float | None = None
    started_at: float | None = None
    recover_since: float | None = None
    lower_since: float | None = None

    @property
    def open(self) -> bool:
        """True from ``firing`` until ``resolved`` (FIRING or RESOLVING)."""
        return self.phase in (Phase.FIRING, Phase.RESOLVING)

    @property
    def value(self) -> float | None:
        return None if self.last is None else self.last.value

    @property
    def limit(self) -> float | None:
        return None if self.last is None else self.last.limit


OK_STATE = AlertState()


@dataclass(frozen=True, slots=True)
class Transition:
    """An event of the machine, before the evaluator dresses it as an AlertEvent.

    ``status == "firing"`` with ``previous_level`` set is an escalation or a
    de-escalation of an alert that is already open. ``duration`` is how long
    the breach has lasted (firing) or how long the alert was open (resolved).
    """

    status: Literal["firing", "resolved"]
    level: Level
    previous_level: Level | None
    value: float | None
    limit: float | None
    started_at: float
    duration: float


@dataclass(frozen=True, slots=True)
class AlertMachine:
    """The timing policy of one threshold: ``soak`` and ``cool`` in seconds."""

    soak: float
    cool: float

    def step(
        self,
        state: AlertState,
        observation: Observation | None,
        now: float,
        wall: float | None = None,
    ) -> tuple[AlertState, tuple[Transition, ...]]:
        """Advance ``state`` by one observation (or a tick when None) at ``now``.

        ``wall`` (defaults to ``now``) is the wall-clock time used to stamp
        ``started_at`` and ``breach_wall``.
        """
        fresh = observation is not None
        obs = observation if observation is not None else state.last
        if obs is None:
            return state, ()
        wall_now = now if wall is None else wall
        if state.phase is Phase.OK:
            if not fresh:
                return state, ()
            if not obs.breaching:
                return state, ()                    # the hot path: OK stays OK
            state = AlertState(Phase.PENDING, level=obs.level, last=obs,
                               breach_since=now, breach_wall=wall_now)
            return self._pending(state, now, wall_now)
        if fresh:
            state = replace(state, last=obs)
        if state.phase is Phase.PENDING:
            if not obs.breaching:
                return OK_STATE, ()
            return self._pending(replace(state, level=obs.level), now, wall_now)
        if state.phase is Phase.RESOLVING:
            if fresh and obs.breaching:
                # Back to FIRING without an event; a level change is handled there.
                state = replace(state, phase=Phase.FIRING, recover_since=None)
                return self._firing(state, obs, now)
            return self._resolving(state, obs, now)
        return self._firing(state, obs, now)

    # -- one method per phase ------------------------------------------------

    def _pending(self, state: AlertState, now: float,
                 wall: float) -> tuple[AlertState, tuple[Transition, ...]]:
        obs, level, since = state.last, state.level, state.breach_since
        assert obs is not None and level is not None and since is not None
        held = now - since
        if held < self.soak:
            return state, ()
        state = replace(state, phase=Phase.FIRING, fired_at=now, started_at=wall)
        return state, (Transition("firing", level, None, obs.value, obs.limit,
                                  wall, max(0.0, held)),)

    def _firing(self, state: AlertState, obs: Observation,
                now: float) -> tuple[AlertState, tuple[Transition, ...]]:
        level = state.level
        assert level is not None
        if obs.level is None:
            state = replace(state, phase=Phase.RESOLVING, recover_since=now, lower_since=None)
            return self._resolving(state, obs, now)
        seen, current = LEVEL_RANK[obs.level], LEVEL_RANK[level]
        if seen == current:
            return replace(state, lower_since=None), ()
        if seen > current:
            return self._change_level(replace(state, lower_since=None), obs, now)
        lower_since = now if state.lower_since is None else state.lower_since
        state = replace(state, lower_since=lower_since)
        if now - lower_since < self.cool:
            return state, ()
        return self._change_level(replace(state, lower_since=None), obs, now)

    def _change_level(self, state: AlertState, obs: Observation,
                      now: float) -> tuple[AlertState, tuple[Transition, ...]]:
        assert state.level is not None and obs.level is not None
        assert state.started_at is not None and state.breach_since is not None
        event = Transition("firing", obs.level, state.level, obs.value, obs.limit,
                           state.started_at, max(0.0, now - state.breach_since))
        return replace(state, level=obs.level), (event,)

    def _resolving(self, state: AlertState, obs: Observation,
                   now: float) -> tuple[AlertState, tuple[Transition, ...]]:
        assert state.recover_since is not None and state.level is not None
        assert state.started_at is not None and state.fired_at is not None
        if now - state.recover_since < self.cool:
            return state, ()
        event = Transition("resolved", state.level, None, obs.value, obs.limit,
                           state.started_at, max(0.0, now - state.fired_at))
        return OK_STATE, (event,)


def level_rank(level: Level) -> int:
    """The severity rank of ``level`` (0 info, 1 warning, 2 critical)."""
    return LEVEL_RANK[level]
