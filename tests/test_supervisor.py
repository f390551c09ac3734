"""The supervisor's restart policy, with real threads and small workers."""

from __future__ import annotations

import threading
import time

import pytest

from pharosd.errors import SupervisorGaveUp
from pharosd.supervisor import Supervisor
from pharosd.worker import WorkerContext


class Crasher:
    heartbeat_timeout = 5.0

    def __init__(self, name: str, crashes: int) -> None:
        self.name = name
        self.crashes_left = crashes
        self.runs = 0
        self.running = threading.Event()

    def run(self, ctx: WorkerContext) -> None:
        self.runs += 1
        if self.crashes_left:
            self.crashes_left -= 1
            raise RuntimeError(f"boom {self.runs}")
        self.running.set()
        while not ctx.wait(0.05):
            ctx.beat()


class Sleeper:
    """Beats until told to stop; never crashes."""

    heartbeat_timeout = 5.0

    def __init__(self, name: str = "sleeper", beat: bool = True) -> None:
        self.name = name
        self.beat = beat

    def run(self, ctx: WorkerContext) -> None:
        while not ctx.wait(0.02):
            if self.beat:
                ctx.beat()


def drive(sup: Supervisor, until, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, "condition not reached"
        sup.check()
        time.sleep(0.01)


def test_crashed_worker_restarts_with_growing_backoff():
    sup = Supervisor(max_restarts=5, period=60, backoff_initial=0.05, backoff_max=1)
    w = Crasher("w", crashes=3)
    sup.start(w)
    drive(sup, w.running.is_set)
    assert w.runs == 4
    st = sup.status()[0]
    assert st["restarts"] == 3 and st["state"] == "running" and st["last_error"] == (
        "RuntimeError: boom 3")
    slot = sup._slots["w"]
    assert slot.backoff == pytest.approx(0.2)   # 0.05, 0.1, 0.2: doubled each crash
    assert sup.stop_all(timeout=2)


def test_too_many_crashes_in_period_gives_up():
    sup = Supervisor(max_restarts=2, period=60, backoff_initial=0.01)
    w = Crasher("w", crashes=100)
    sup.start(w)
    with pytest.raises(SupervisorGaveUp, match="3 worker crashes within 60s"):
        drive(sup, lambda: False)
    assert w.runs == 3
    sup.stop_all(timeout=1)


def test_crashes_outside_the_period_do_not_count():
    sup = Supervisor(max_restarts=1, period=60, backoff_initial=0.01)
    w = Crasher("w", crashes=2)
    sup.start(w)
    t = [1000.0]
    # Crashes a minute and more apart never exceed max_restarts within a period.
    deadline = time.monotonic() + 10
    while not w.running.is_set():
        assert time.monotonic() < deadline
        sup.check(now=t[0])
        t[0] += 61
        time.sleep(0.02)
    assert w.runs == 3
    sup.stop_all(timeout=1)


def test_returning_while_not_stopping_counts_as_a_crash():
    class Quitter:
        name = "quitter"
        heartbeat_timeout = 5.0
        runs = 0

        def run(self, ctx: WorkerContext) -> None:
            self.runs += 1

    sup = Supervisor(max_restarts=10, period=60, backoff_initial=0.01)
    q = Quitter()
    sup.start(q)
    drive(sup, lambda: q.runs >= 3)
    assert sup.status()[0]["last_error"] == "run() returned while not stopping"
    sup.stop_all(timeout=1)


def test_hung_worker_is_reported_and_healthy_ones_are_not():
    sup = Supervisor()
    good, stuck = Sleeper("good"), Sleeper("stuck", beat=False)
    good.heartbeat_timeout = stuck.heartbeat_timeout = 0.3
    sup.start(good)
    sup.start(stuck)
    assert sup.healthy()
    time.sleep(0.6)
    assert sup.hung() == ["stuck"]
    assert not sup.healthy()
    assert sup.stop_all(timeout=2)


def test_stop_one_worker_leaves_others_running():
    sup = Supervisor()
    sup.start(Sleeper("a"))
    sup.start(Sleeper("b"))
    assert sup.stop("a", timeout=2)
    assert sup.names() == ["b"]
    assert sup.status()[0]["alive"]
    with pytest.raises(ValueError):
        sup.start(Sleeper("b"))
    sup.stop_all(timeout=2)
