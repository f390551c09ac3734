"""The supervisor's slot state machine (pure, fake time) and hung-worker logging."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from structlog.testing import capture_logs

from pharosd.backoff import Backoff
from pharosd.clock import FakeClock
from pharosd.slots import HeartbeatChange, Slot, SlotState, TransitionError
from pharosd.supervisor import Supervisor
from pharosd.worker import WorkerContext

BACKOFF = Backoff(0.5, 2.0, jitter=0.0)


def test_slot_walks_start_crash_backoff_restart():
    slot = Slot("w", heartbeat_timeout=5.0)
    assert slot.state is SlotState.STARTING
    slot.started(now=10.0)
    assert slot.state is SlotState.RUNNING and slot.started_at == 10.0
    assert slot.crashed("RuntimeError: boom", now=11.0, backoff=BACKOFF) == 0.5
    assert slot.state is SlotState.BACKOFF and slot.last_error == "RuntimeError: boom"
    assert not slot.restart_due(11.4)
    assert slot.restart_due(11.5)
    slot.started(now=11.5)
    assert slot.state is SlotState.RUNNING and slot.restarts == 1


def test_backoff_doubles_to_its_cap_and_resets_after_a_good_period():
    slot = Slot("w", heartbeat_timeout=5.0)
    slot.started(0.0)
    delays = []
    for i in range(4):
        delays.append(slot.crashed("boom", now=float(i), backoff=BACKOFF))
        slot.started(slot.restart_at)
    assert delays == [0.5, 1.0, 2.0, 2.0]
    slot.ran_well(now=slot.started_at + 59.0, period=60.0)
    assert slot.backoff == 2.0
    slot.ran_well(now=slot.started_at + 60.0, period=60.0)
    assert slot.backoff == 0.0
    assert slot.crashed("boom", now=100.0, backoff=BACKOFF) == 0.5


@pytest.mark.parametrize("walk", [
    lambda s: s.crashed("boom", 0.0, BACKOFF),                  # starting -> backoff
    lambda s: (s.started(0.0), s.started(1.0)),                 # running -> running
    lambda s: (s.stopped(), s.started(0.0)),                    # stopped is final
])
def test_transitions_outside_the_machine_are_refused(walk: Callable[[Slot], object]):
    with pytest.raises(TransitionError):
        walk(Slot("w", heartbeat_timeout=5.0))


def test_stop_is_allowed_from_every_state_and_idempotent():
    for prepare in (lambda s: None, lambda s: s.started(0.0),
                    lambda s: (s.started(0.0), s.crashed("boom", 0.0, BACKOFF))):
        slot = Slot("w", heartbeat_timeout=5.0)
        prepare(slot)
        slot.stopped()
        slot.stopped()
        assert slot.state is SlotState.STOPPED
        assert not slot.restart_due(1e9)


def test_heartbeat_reports_a_hang_once_and_its_end():
    slot = Slot("w", heartbeat_timeout=5.0)
    slot.started(0.0)
    assert slot.heartbeat(last_beat=0.0, now=5.0) is None          # at the limit: fresh
    assert slot.heartbeat(last_beat=0.0, now=5.1) is HeartbeatChange.HUNG
    assert slot.heartbeat(last_beat=0.0, now=60.0) is None         # still hung: said once
    assert slot.is_hung(last_beat=0.0, now=60.0)
    assert slot.heartbeat(last_beat=60.0, now=61.0) is HeartbeatChange.RESUMED
    assert slot.heartbeat(last_beat=60.0, now=70.0) is HeartbeatChange.HUNG   # a new hang
    slot.crashed("boom", 70.0, BACKOFF)
    assert slot.heartbeat(last_beat=0.0, now=100.0) is None        # only running slots hang
    assert not slot.is_hung(last_beat=0.0, now=100.0)


class Parked:
    """Waits for the stop signal; beats only when the test says so."""

    name = "parked"
    heartbeat_timeout = 5.0

    def __init__(self) -> None:
        self.ctx: WorkerContext | None = None
        self.started = threading.Event()

    def run(self, ctx: WorkerContext) -> None:
        self.ctx = ctx
        self.started.set()
        ctx.wait(60.0)


def test_supervisor_logs_a_hung_worker_once_per_hang_on_a_fake_clock():
    clock = FakeClock()
    sup = Supervisor(clock=clock)
    worker = Parked()
    sup.start(worker)
    try:
        assert worker.started.wait(10)
        assert worker.ctx is not None
        with capture_logs() as logs:
            clock.advance(4.0)
            sup.check()
            clock.advance(2.0)           # 6 s since the last beat, timeout 5 s
            sup.check()
            clock.advance(30.0)
            sup.check()
            assert sup.hung() == ["parked"] and not sup.healthy()
            worker.ctx.beat()
            sup.check()
            assert sup.hung() == []
            clock.advance(5.5)
            sup.check()
        events = [(e["event"], e.get("worker")) for e in logs]
        assert events == [("worker_hung", "parked"), ("worker_resumed", "parked"),
                          ("worker_hung", "parked")]
        hung = logs[0]
        assert hung["log_level"] == "error" and hung["heartbeat_age"] == 6.0
        assert hung["heartbeat_timeout"] == 5.0
        assert sup.status()[0]["state"] == "running"
    finally:
        assert sup.stop_all(timeout=5)


def test_supervisor_restarts_on_the_fake_clock_after_the_backoff():
    class CrashOnce:
        name = "once"
        heartbeat_timeout = 5.0

        def __init__(self) -> None:
            self.runs = 0
            self.running = threading.Event()

        def run(self, ctx: WorkerContext) -> None:
            self.runs += 1
            if self.runs == 1:
                raise RuntimeError("first run fails")
            self.running.set()
            ctx.wait(60.0)

    clock = FakeClock()
    sup = Supervisor(backoff_initial=1.0, clock=clock)
    worker = CrashOnce()
    sup.start(worker)
    try:
        slot = sup._slots["once"]
        run = sup._runs["once"]
        assert run.done.wait(10)
        sup.check()
        assert slot.state is SlotState.BACKOFF and slot.restart_at == clock.monotonic() + 1.0
        clock.advance(0.9)
        sup.check()
        assert slot.state is SlotState.BACKOFF and worker.runs == 1
        clock.advance(0.1)
        sup.check()
        assert worker.running.wait(10)
        assert worker.runs == 2 and slot.state is SlotState.RUNNING
        assert sup.total_restarts == 1
        assert sup.status()[0]["last_error"] == "RuntimeError: first run fails"
    finally:
        assert sup.stop_all(timeout=5)
