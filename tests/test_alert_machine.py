"""The alert state machine: every documented transition, and its properties (Hypothesis)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pharosd.alerting.machine import (
    LEVEL_RANK,
    OK_STATE,
    AlertMachine,
    AlertState,
    Observation,
    Phase,
    Transition,
)

T0 = 1000.0
WALL = 1_700_000_000.0


def br(level: str = "warning", value: float = 95.0, limit: float = 90.0) -> Observation:
    return Observation(level, value, limit)  # type: ignore[arg-type]


def ok(value: float = 50.0, limit: float = 90.0) -> Observation:
    return Observation(None, value, limit)


class Driver:
    """Steps one machine, with the wall clock at a fixed offset from monotonic."""

    def __init__(self, soak: float, cool: float) -> None:
        self.machine = AlertMachine(soak=soak, cool=cool)
        self.state = AlertState()
        self.now = T0

    def at(self, now: float, obs: Observation | None) -> tuple[Transition, ...]:
        self.now = now
        self.state, events = self.machine.step(self.state, obs, now, now - T0 + WALL)
        return events

    @property
    def phase(self) -> Phase:
        return self.state.phase


# -- examples: one per documented transition -------------------------------------


def test_ok_stays_ok_without_breach() -> None:
    d = Driver(soak=30, cool=60)
    assert d.at(T0, ok()) == ()
    assert d.state == OK_STATE


def test_breach_enters_pending_then_fires_after_soak() -> None:
    d = Driver(soak=30, cool=60)
    assert d.at(T0, br(value=91)) == ()
    assert d.phase is Phase.PENDING
    assert d.state.breach_wall == WALL
    assert d.at(T0 + 29.9, br(value=92)) == ()
    assert d.phase is Phase.PENDING
    (event,) = d.at(T0 + 30, br(value=93))
    assert event == Transition("firing", "warning", None, 93, 90, WALL + 30, 30)
    assert d.phase is Phase.FIRING
    assert d.state.started_at == WALL + 30
    assert (d.state.value, d.state.limit) == (93, 90)


def test_soak_zero_fires_on_first_breaching_sample() -> None:
    d = Driver(soak=0, cool=60)
    (event,) = d.at(T0, br())
    assert event.status == "firing" and event.duration == 0
    assert d.phase is Phase.FIRING


def test_recovery_while_pending_returns_to_ok_without_event() -> None:
    d = Driver(soak=30, cool=60)
    d.at(T0, br())
    assert d.at(T0 + 10, ok()) == ()
    assert d.phase is Phase.OK
    # The soak restarts from the next breach.
    d.at(T0 + 20, br())
    assert d.at(T0 + 45, br()) == ()
    assert len(d.at(T0 + 50, br())) == 1


def test_tick_fires_pending_alert_with_last_observation() -> None:
    d = Driver(soak=30, cool=60)
    d.at(T0, br(value=97))
    assert d.at(T0 + 29, None) == ()
    (event,) = d.at(T0 + 30, None)
    assert event.status == "firing" and event.value == 97


def test_tick_without_any_observation_does_nothing() -> None:
    d = Driver(soak=0, cool=0)
    assert d.at(T0, None) == ()
    assert d.state == AlertState()


def test_tick_in_ok_does_not_start_a_breach() -> None:
    d = Driver(soak=0, cool=0)
    d.at(T0, ok())
    assert d.at(T0 + 100, None) == ()
    assert d.phase is Phase.OK


def test_recovery_enters_resolving_then_resolves_after_cool() -> None:
    d = Driver(soak=0, cool=60)
    d.at(T0, br())
    assert d.at(T0 + 10, ok(value=70)) == ()
    assert d.phase is Phase.RESOLVING
    assert d.at(T0 + 69.9, ok(value=71)) == ()
    (event,) = d.at(T0 + 70, ok(value=72))
    assert event == Transition("resolved", "warning", None, 72, 90, WALL, 70)
    assert d.state == OK_STATE


def test_cool_zero_resolves_on_first_recovered_sample() -> None:
    d = Driver(soak=0, cool=0)
    d.at(T0, br())
    (event,) = d.at(T0 + 5, ok())
    assert event.status == "resolved"


def test_tick_resolves_after_cool() -> None:
    d = Driver(soak=0, cool=60)
    d.at(T0, br())
    d.at(T0 + 1, ok(value=70))
    assert d.at(T0 + 60, None) == ()
    (event,) = d.at(T0 + 61, None)
    assert event.status == "resolved" and event.value == 70


def test_breach_while_resolving_returns_to_firing_without_event() -> None:
    d = Driver(soak=0, cool=60)
    d.at(T0, br())
    d.at(T0 + 10, ok())
    assert d.at(T0 + 20, br()) == ()
    assert d.phase is Phase.FIRING
    # The cool restarts from the next recovery.
    d.at(T0 + 30, ok())
    assert d.at(T0 + 80, None) == ()
    assert len(d.at(T0 + 90, None)) == 1


def test_escalation_is_immediate_and_keeps_started_at() -> None:
    d = Driver(soak=10, cool=60)
    d.at(T0, br("warning", 85, 80))
    d.at(T0 + 10, br("warning", 85, 80))
    (event,) = d.at(T0 + 11, br("critical", 96, 95))
    assert event == Transition("firing", "critical", "warning", 96, 95, WALL + 10, 11)
    assert d.state.level == "critical" and d.phase is Phase.FIRING


def test_escalation_from_info_straight_to_critical() -> None:
    d = Driver(soak=0, cool=60)
    d.at(T0, br("info"))
    (event,) = d.at(T0 + 1, br("critical"))
    assert (event.level, event.previous_level) == ("critical", "info")


def test_deescalation_waits_for_cool() -> None:
    d = Driver(soak=0, cool=60)
    d.at(T0, br("critical", 96, 95))
    assert d.at(T0 + 10, br("warning", 85, 80)) == ()
    assert d.state.level == "critical"
    assert d.at(T0 + 69, br("warning", 86, 80)) == ()
    (event,) = d.at(T0 + 70, br("warning", 87, 80))
    assert event == Transition("firing", "warning", "critical", 87, 80, WALL, 70)
    assert d.state.level == "warning"


def test_deescalation_is_cancelled_by_a_breach_at_the_current_level() -> None:
    d = Driver(soak=0, cool=60)
    d.at(T0, br("critical"))
    d.at(T0 + 10, br("warning"))
    d.at(T0 + 30, br("critical"))
    assert d.at(T0 + 75, br("warning")) == ()
    assert d.state.level == "critical"
    (event,) = d.at(T0 + 135, br("warning"))
    assert event.previous_level == "critical"


def test_deescalation_goes_to_the_level_seen_when_cool_elapses() -> None:
    d = Driver(soak=0, cool=60)
    d.at(T0, br("critical"))
    d.at(T0 + 10, br("warning"))
    d.at(T0 + 40, br("info"))
    (event,) = d.at(T0 + 70, None)
    assert (event.level, event.previous_level) == ("info", "critical")


def test_deescalation_with_cool_zero_is_immediate() -> None:
    d = Driver(soak=0, cool=0)
    d.at(T0, br("critical"))
    (event,) = d.at(T0 + 1, br("warning"))
    assert (event.level, event.previous_level) == ("warning", "critical")


def test_breach_at_a_higher_level_while_resolving_escalates() -> None:
    d = Driver(soak=0, cool=60)
    d.at(T0, br("warning"))
    d.at(T0 + 5, ok())
    (event,) = d.at(T0 + 10, br("critical"))
    assert (event.level, event.previous_level) == ("critical", "warning")
    assert d.phase is Phase.FIRING


def test_resolved_carries_the_last_level() -> None:
    d = Driver(soak=0, cool=0)
    d.at(T0, br("warning"))
    d.at(T0 + 1, br("critical"))
    (event,) = d.at(T0 + 2, ok())
    assert event.status == "resolved" and event.level == "critical"


def test_pending_fires_at_the_level_observed_when_soak_elapses() -> None:
    d = Driver(soak=30, cool=60)
    d.at(T0, br("warning"))
    d.at(T0 + 10, br("critical"))
    (event,) = d.at(T0 + 30, br("info"))
    assert event.level == "info" and event.previous_level is None


def test_observation_breaching_flag() -> None:
    assert br().breaching and not ok().breaching


# -- properties -------------------------------------------------------------------

LEVELS = ("info", "warning", "critical")
TICK = "tick"

steps = st.lists(
    st.tuples(
        st.integers(0, 40).map(lambda n: n / 2),           # seconds since the last step
        st.sampled_from([TICK, None, *LEVELS]),             # tick, recovered, or a level
    ),
    max_size=60,
)
periods = st.sampled_from([0.0, 0.5, 1.0, 5.0, 10.0, 30.0])


@dataclass
class Oracle:
    """What the history says, independent of the machine's bookkeeping."""

    breach_start: float | None = None   # start of the current run of breaching observations
    recover_start: float | None = None  # start of the current run of recovered observations
    lower_start: float | None = None    # start of the current run below the alert's level
    open: bool = False
    level: str | None = None
    started_at: float | None = None


def observation_of(kind: str | None) -> Observation | None:
    if kind == TICK:
        return None
    if kind is None:
        return ok()
    return br(kind)


def run_properties(soak: float, cool: float, history: list[tuple[float, str | None]]) -> None:
    d = Driver(soak, cool)
    o = Oracle()
    now = T0
    for dt, kind in history:
        now += dt
        obs = observation_of(kind)
        # Update the history runs from fresh observations.
        if obs is not None:
            if obs.breaching:
                o.recover_start = None
                if o.breach_start is None:
                    o.breach_start = now
            else:
                o.breach_start = None
                if o.recover_start is None:
                    o.recover_start = now
        if obs is not None and o.open:
            assert o.level is not None
            if obs.level is not None and LEVEL_RANK[obs.level] < LEVEL_RANK[o.level]:
                if o.lower_start is None:
                    o.lower_start = now
            else:
                o.lower_start = None
        level_before = d.state.level
        events = d.at(now, obs)
        assert len(events) <= 1
        for e in events:
            if e.status == "firing" and e.previous_level is None:
                # A new alert: never while one is open, only after the soak.
                assert not o.open
                assert o.breach_start is not None
                assert now - o.breach_start >= soak
                assert e.started_at == now - T0 + WALL
                o.open, o.level, o.started_at = True, e.level, e.started_at
            elif e.status == "firing":
                # An escalation or de-escalation of the open alert, nothing else.
                assert o.open and e.previous_level == o.level and e.level != o.level
                assert e.previous_level is not None
                assert e.started_at == o.started_at
                if LEVEL_RANK[e.level] < LEVEL_RANK[e.previous_level]:
                    assert o.lower_start is not None and now - o.lower_start >= cool
                else:
                    assert obs is not None and obs.level == e.level
                o.level = e.level
                o.lower_start = None
            else:
                # Never resolved without an open firing; only after the cool.
                assert o.open and e.level == o.level
                assert o.recover_start is not None and now - o.recover_start >= cool
                assert e.started_at == o.started_at
                o.open, o.level, o.started_at, o.lower_start = False, None, None, None
        # The machine agrees with the oracle about what is open and at which level.
        assert d.state.open == o.open
        if o.open:
            assert d.state.level is not None and d.state.level == o.level
            # Escalation is immediate.
            if obs is not None and obs.level is not None and level_before is not None:
                assert LEVEL_RANK[d.state.level] >= LEVEL_RANK[obs.level]
        # Liveness: a breach that has lasted the soak is open; a recovery that has
        # lasted the cool is closed; a lower level that has lasted the cool is taken.
        if o.breach_start is not None and now - o.breach_start >= soak:
            assert d.state.open
        if o.recover_start is not None and now - o.recover_start >= cool:
            assert not d.state.open
        if o.open and o.lower_start is not None and now - o.lower_start >= cool:
            assert d.state.last is not None and d.state.last.level is not None
            assert d.state.level == d.state.last.level


@settings(max_examples=400, deadline=None)
@given(soak=periods, cool=periods, history=steps)
def test_machine_properties(soak: float, cool: float,
                            history: list[tuple[float, str | None]]) -> None:
    run_properties(soak, cool, history)


@settings(max_examples=200, deadline=None)
@given(
    soak=st.integers(0, 120),
    interval=st.integers(1, 30),
    lead=st.integers(0, 10),
)
def test_fires_within_one_interval_after_breach_plus_soak(
        soak: int, interval: int, lead: int) -> None:
    d = Driver(soak=soak, cool=60)
    now = T0
    for _ in range(lead):                      # some healthy samples first
        d.at(now, ok())
        now += interval
    first_breach = now
    fired_at = None
    while fired_at is None:
        if d.at(now, br()):
            fired_at = now
        now += interval
        assert now <= first_breach + soak + 2 * interval + 1, "never fired"
    assert first_breach + soak <= fired_at < first_breach + soak + interval


@settings(max_examples=200, deadline=None)
@given(soak=st.integers(1, 120), short=st.integers(0, 119), interval=st.integers(1, 30))
def test_breach_shorter_than_soak_never_fires(soak: int, short: int, interval: int) -> None:
    short = min(short, soak - 1)                 # the breach lasts `short` < soak
    d = Driver(soak=soak, cool=0)
    now = T0
    t = 0
    while t <= short:
        assert d.at(now + t, br()) == ()
        t += interval
    assert d.at(now + short + 0.5, ok()) == ()
    assert d.phase is Phase.OK


@settings(max_examples=200, deadline=None)
@given(cool=st.integers(1, 120), short=st.integers(0, 119), interval=st.integers(1, 30))
def test_recovery_shorter_than_cool_never_resolves(cool: int, short: int,
                                                   interval: int) -> None:
    short = min(short, cool - 1)
    d = Driver(soak=0, cool=cool)
    assert len(d.at(T0, br())) == 1
    start = T0 + 1
    t = 0
    while t <= short:
        assert d.at(start + t, ok()) == ()
        assert d.at(start + t + 0.25, None) == ()       # ticks don't shorten the cool
        t += interval
    assert d.at(start + short + 0.5, br()) == ()
    assert d.phase is Phase.FIRING


@pytest.mark.parametrize("soak", [0.0, 30.0])
def test_step_is_pure(soak: float) -> None:
    machine = AlertMachine(soak=soak, cool=10)
    state = AlertState()
    a = machine.step(state, br(), T0, WALL)
    b = machine.step(state, br(), T0, WALL)
    assert a == b
    assert state == AlertState()
