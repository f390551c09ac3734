"""The collector worker with real threads and short intervals.

Assertions are on ordering and counts, never on how long something took;
``wait_until`` only bounds how long a test may hang.
"""

from __future__ import annotations

import threading
import time
from collections import namedtuple
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from structlog.testing import capture_logs

from pharosd.collection.worker import Collector, next_due, source_key
from pharosd.errors import ProbeError
from pharosd.model import NO_LABELS, Sample
from pharosd.statistics.config import StatisticConfig
from pharosd.statistics.factory import build_statistic
from pharosd.statistics.network import NetworkStatistic
from pharosd.worker import WorkerContext

EVERY = 0.05
NetIO = namedtuple("NetIO", "bytes_sent bytes_recv packets_sent packets_recv "
                            "errin errout dropin dropout")


def wait_until(pred: Callable[[], bool], what: str, limit: float = 20.0) -> None:
    deadline = time.monotonic() + limit
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.005)


class FakeSource:
    """Counts its runs and emits one sample per run with the run number."""

    def __init__(self, name: str, every: float = EVERY, *, blocking: bool = False,
                 key: object = None, fail: Callable[[int], str | None] | None = None,
                 gate: threading.Event | None = None, sleep: float = 0.0,
                 samples: int = 1) -> None:
        self.name = name
        self.every = every
        self.blocking = blocking
        if key is not None:
            self.key = key
        self.fail = fail
        self.gate = gate
        self.sleep = sleep
        self.samples = samples
        self.calls = 0
        self.finished = 0
        self.concurrent = 0
        self.max_concurrent = 0
        self.nows: list[float] = []
        self._lock = threading.Lock()

    def collect(self, now: float) -> Sequence[Sample]:
        with self._lock:
            self.calls += 1
            n = self.calls
            self.concurrent += 1
            self.max_concurrent = max(self.max_concurrent, self.concurrent)
        try:
            self.nows.append(now)
            if self.gate is not None:
                self.gate.wait(30)
            if self.sleep:
                time.sleep(self.sleep)
            if self.fail is not None:
                message = self.fail(n)
                if message is not None:
                    raise ProbeError(message)
            return [Sample(f"{self.name}.run", NO_LABELS, float(n), now)
                    for _ in range(self.samples)]
        finally:
            with self._lock:
                self.concurrent -= 1
                self.finished += 1


class Recorder:
    def __init__(self) -> None:
        self.batches: list[list[Sample]] = []
        self._lock = threading.Lock()

    def __call__(self, samples: list[Sample]) -> None:
        with self._lock:
            self.batches.append(samples)

    def values(self, metric: str) -> list[float]:
        with self._lock:
            return [s.value for b in self.batches for s in b if s.metric == metric]


class Running:
    def __init__(self, collector: Collector) -> None:
        self.collector = collector
        self.ctx = WorkerContext()
        self.thread = threading.Thread(target=collector.run, args=(self.ctx,), daemon=True)

    def stop(self) -> None:
        self.ctx.stop()
        self.thread.join(10)


@pytest.fixture
def start() -> Iterator[Callable[[Collector], Running]]:
    running: list[Running] = []

    def _start(collector: Collector) -> Running:
        r = Running(collector)
        r.thread.start()
        running.append(r)
        return r

    yield _start
    for r in running:
        r.stop()


def runs(c: Collector, name: str) -> int:
    return int(c.status()[name]["runs"])


# -- pure scheduling -----------------------------------------------------------


def test_next_due_keeps_the_grid_and_skips_missed_slots() -> None:
    assert next_due(10.0, 1.0, 10.2) == (11.0, 0)
    assert next_due(10.0, 1.0, 12.5) == (13.0, 2)        # 11 and 12 passed: skipped
    assert next_due(10.0, 1.0, 11.0) == (12.0, 1)
    due, missed = next_due(0.0, 0.1, 1000.05)
    assert due > 1000.05 and missed > 0


def test_source_key_uses_key_else_identity() -> None:
    a, b = FakeSource("a", key=("x", 1)), FakeSource("b", key=("x", 1))
    assert source_key(a) == source_key(b)
    c, d = FakeSource("c"), FakeSource("c")
    assert source_key(c) != source_key(d)


# -- delivery ------------------------------------------------------------------


def test_samples_go_to_every_consumer_in_order_with_wall_time(start: Any) -> None:
    a, b = FakeSource("a"), FakeSource("b", every=2 * EVERY)
    r1, r2 = Recorder(), Recorder()
    c = Collector([a, b], [r1, r2])
    start(c)
    wait_until(lambda: len(r1.values("a.run")) >= 5 and len(r2.values("b.run")) >= 3,
               "several runs of both sources")
    for rec in (r1, r2):
        for metric in ("a.run", "b.run"):
            vals = rec.values(metric)
            assert vals == [float(i) for i in range(1, len(vals) + 1)]  # each run once, in order
    assert all(b1 is not b2 for b1, b2 in zip(r1.batches, r2.batches, strict=False))
    # samples are stamped with the wall time the collector passed in
    assert all(abs(t - time.time()) < 3600 for t in a.nows)


def test_first_collection_waits_for_every_non_blocking_source(start: Any) -> None:
    gate = threading.Event()
    slow = FakeSource("slow", every=60, gate=gate)
    quick = FakeSource("quick", every=60)
    hung_probe = FakeSource("probe", every=60, blocking=True, gate=threading.Event())
    c = Collector([quick, slow, hung_probe], [Recorder()])
    start(c)
    wait_until(lambda: slow.calls == 1, "slow source started")
    assert not c.first_collection.is_set()
    gate.set()
    assert c.first_collection.wait(20)
    assert hung_probe.finished == 0          # a blocking source never holds READY back
    hung_probe.gate.set()                    # type: ignore[union-attr]


def test_first_collection_counts_a_failed_run() -> None:
    broken = FakeSource("broken", every=60, fail=lambda n: "no such file")
    c = Collector([broken], [])
    ctx = WorkerContext()
    t = threading.Thread(target=c.run, args=(ctx,), daemon=True)
    t.start()
    try:
        assert c.first_collection.wait(20)
    finally:
        ctx.stop()
        t.join(10)
    assert c.status()["broken"]["failures"] == 1


def test_a_consumer_that_raises_does_not_affect_the_others(start: Any) -> None:
    def bad(samples: list[Sample]) -> None:
        raise RuntimeError("queue is broken")

    before, after = Recorder(), Recorder()
    src = FakeSource("a")
    c = Collector([src], [before, bad, after])
    with capture_logs() as logs:
        start(c)
        wait_until(lambda: len(after.values("a.run")) >= 4, "deliveries after the bad consumer")
    assert before.values("a.run")[:4] == after.values("a.run")[:4] == [1.0, 2.0, 3.0, 4.0]
    assert c.consumer_failures >= 4
    assert [e["event"] for e in logs].count("consumer_failed") == 1
    assert runs(c, "a") >= 4


# -- failures ------------------------------------------------------------------


def test_a_failing_source_is_logged_once_per_message_and_recovers(start: Any) -> None:
    def fail(n: int) -> str | None:
        if n <= 3:
            return "disk gone"
        if n <= 5:
            return "permission denied"
        return None

    src = FakeSource("flaky", fail=fail)
    other = FakeSource("steady")
    rec = Recorder()
    c = Collector([src, other], [rec])
    with capture_logs() as logs:
        start(c)
        wait_until(lambda: src.finished >= 7, "recovery")
    events = [(e["event"], e.get("error")) for e in logs if e.get("source") == "flaky"]
    assert events == [("source_failed", "ProbeError: disk gone"),
                      ("source_failed", "ProbeError: permission denied"),
                      ("source_recovered", None)]
    st = c.status()["flaky"]
    assert st["failures"] == 5
    assert st["last_error"] == "ProbeError: permission denied"
    assert st["failing"] is False
    assert rec.values("flaky.run")[0] == 6.0           # nothing delivered from failed runs
    assert len(rec.values("steady.run")) >= 1          # the others went on


def test_an_unexpected_exception_is_logged_with_its_traceback(start: Any) -> None:
    class Boom:
        name = "boom"
        every = EVERY
        blocking = False
        calls = 0

        def collect(self, now: float) -> list[Sample]:
            Boom.calls += 1
            raise KeyError("oops")

    c = Collector([Boom()], [])
    with capture_logs() as logs:
        start(c)
        wait_until(lambda: Boom.calls >= 3, "several failing runs")
    failed = [e for e in logs if e["event"] == "source_failed"]
    assert len(failed) == 1
    assert isinstance(failed[0]["exc_info"], KeyError)


# -- scheduling ----------------------------------------------------------------


def test_a_slow_source_skips_missed_slots_instead_of_bursting(start: Any) -> None:
    slow = FakeSource("slow", every=EVERY, sleep=3 * EVERY)
    c = Collector([slow], [])
    start(c)
    wait_until(lambda: slow.finished >= 4, "four slow runs")
    st = c.status()["slow"]
    # every run takes at least three intervals, so each run after the first
    # passes over at least two slots, and none of them is made up later
    assert st["missed"] >= 2 * (st["runs"] - 1)
    assert st["skipped"] == 0


def test_blocking_source_runs_on_the_pool_and_is_skipped_while_in_flight(start: Any) -> None:
    gate = threading.Event()
    probe = FakeSource("probe", blocking=True, gate=gate)
    stat = FakeSource("stat")
    rec = Recorder()
    c = Collector([probe, stat], [rec])
    with capture_logs() as logs:
        start(c)
        wait_until(lambda: c.status()["probe"]["skipped"] >= 3, "skips while in flight")
        calls_when_hung = stat.calls
        wait_until(lambda: stat.calls >= calls_when_hung + 3, "statistics go on meanwhile")
        assert probe.calls == 1 and probe.finished == 0
        assert c.status()["probe"]["in_flight"] is True
        gate.set()
        wait_until(lambda: len(rec.values("probe.run")) >= 3, "probe results delivered")
    assert probe.max_concurrent == 1
    assert rec.values("probe.run")[:3] == [1.0, 2.0, 3.0]
    assert [e["event"] for e in logs].count("source_skipped") >= 1


def test_four_hung_probes_do_not_starve_the_others(start: Any) -> None:
    # Each hung probe holds one pool thread, its own; the pool is never a queue
    # that a quick probe waits in behind them.
    gate = threading.Event()
    hung = [FakeSource(f"hung{i}", blocking=True, gate=gate) for i in range(4)]
    quick = FakeSource("quick", blocking=True)
    rec = Recorder()
    c = Collector([*hung, quick], [rec])
    try:
        start(c)
        wait_until(lambda: all(p.calls == 1 for p in hung), "four probes hung")
        wait_until(lambda: len(rec.values("quick.run")) >= 5, "the quick probe goes on")
        assert all(p.finished == 0 for p in hung)
        assert c.status()["quick"]["skipped"] == 0
    finally:
        gate.set()


def test_pool_threads_are_bounded_by_max_blocking_and_never_queue(start: Any) -> None:
    gate = threading.Event()
    probes = [FakeSource(f"p{i}", blocking=True, gate=gate) for i in range(4)]
    c = Collector(probes, [], max_blocking=2)
    with capture_logs() as logs:
        start(c)
        wait_until(lambda: sum(p.calls for p in probes) == 2, "two probes started")
        wait_until(lambda: sum(c.status()[p.name]["skipped"] for p in probes) >= 8,
                   "all four skipped: two in flight, two with every thread busy")
    assert sum(p.calls for p in probes) == 2            # the other two were not queued
    assert sum(1 for t in threading.enumerate() if t.name.startswith("pharos-source")) <= 2
    idle = [p.name for p in probes if p.calls == 0]
    assert {e["source"] for e in logs if e.get("reason") == "every pool thread busy"} \
        == set(idle)
    assert all(not c.status()[name]["in_flight"] for name in idle)
    gate.set()
    wait_until(lambda: all(p.finished >= 1 for p in probes), "all four ran")


def test_stop_is_prompt_even_with_a_hung_probe() -> None:
    hung = FakeSource("hung", blocking=True, gate=threading.Event())
    rec = Recorder()
    c = Collector([hung, FakeSource("stat")], [rec])
    ctx = WorkerContext()
    t = threading.Thread(target=c.run, args=(ctx,), daemon=True)
    t.start()
    wait_until(lambda: hung.calls == 1 and rec.values("stat.run"), "probe running")
    ctx.stop()
    t.join(10)
    assert not t.is_alive()                 # did not wait for the hung probe
    assert hung.finished == 0
    hung.gate.set()                         # type: ignore[union-attr]
    wait_until(lambda: not c.status()["hung"]["in_flight"], "the hung run ends after the stop")
    assert rec.values("hung.run") == []     # ... and publishes nothing


def test_run_beats_the_heartbeat_while_idle(start: Any) -> None:
    c = Collector([FakeSource("rare", every=3600)], [])
    r = start(c)
    wait_until(lambda: c.first_collection.is_set(), "first run")
    first = r.ctx.last_beat
    wait_until(lambda: r.ctx.last_beat > first, "a beat while nothing is due")


def test_restarted_run_keeps_state() -> None:
    src = FakeSource("a")
    c = Collector([src], [])
    for _ in range(2):
        ctx = WorkerContext()
        t = threading.Thread(target=c.run, args=(ctx,), daemon=True)
        t.start()
        target = src.finished + 2
        wait_until(lambda target=target: src.finished >= target, "runs")  # type: ignore[misc]
        ctx.stop()
        t.join(10)
    assert runs(c, "a") == src.finished >= 4


# -- reconfigure -----------------------------------------------------------------


def test_reconfigure_keeps_unchanged_adds_new_drops_removed(start: Any) -> None:
    kept = FakeSource("kept", key=("k", 1))
    removed = FakeSource("removed", key=("r", 1))
    rec = Recorder()
    c = Collector([kept, removed], [rec])
    start(c)
    wait_until(lambda: kept.calls >= 3 and removed.calls >= 1, "first runs")

    replacement = FakeSource("kept", key=("k", 1))       # same key: not used
    added = FakeSource("added", key=("a", 1))
    before_kept = runs(c, "kept")
    c.reconfigure([replacement, added])
    removed_calls = removed.calls
    wait_until(lambda: added.calls >= 3 and kept.calls >= before_kept + 3, "new set running")

    assert replacement.calls == 0                        # the running instance stayed
    assert runs(c, "kept") > before_kept                  # and its counters carried on
    assert removed.calls <= removed_calls + 1             # at most a run already started
    assert set(c.status()) == {"kept", "added"}
    vals = rec.values("kept.run")
    assert vals == [float(i) for i in range(1, len(vals) + 1)]


class Closable(FakeSource):
    """A source with close() and counters(), as a Python statistic has."""

    closed = 0

    def close(self) -> None:
        self.closed += 1

    def counters(self) -> dict[str, int]:
        return {"samples_invalid": 7}


def test_removed_sources_are_closed_and_counters_shown(start: Any) -> None:
    kept = Closable("kept", key=("k", 1))
    removed = Closable("removed", key=("r", 1))
    c = Collector([kept, removed], [Recorder()])
    running = start(c)
    wait_until(lambda: kept.calls >= 1 and removed.calls >= 1, "first runs")
    assert c.status()["kept"]["samples_invalid"] == 7
    c.reconfigure([Closable("kept", key=("k", 1))])
    assert (removed.closed, kept.closed) == (1, 0)       # only what the reload removed
    running.stop()
    assert kept.closed == 1                              # and the rest when the run ends


def test_reconfigure_keeps_a_statistic_and_its_rate_state(start: Any) -> None:
    polls = {"old": 0, "new": 0}

    def reader(tag: str) -> Callable[[], dict[str, NetIO]]:
        def read() -> dict[str, NetIO]:
            polls[tag] += 1
            n = polls["old"] + polls["new"]
            return {"eth0": NetIO(*[100 * n] * 8)}
        return read

    cfg = StatisticConfig(name="network")
    old = NetworkStatistic(cfg, EVERY, read=reader("old"))
    new = NetworkStatistic(cfg, EVERY, read=reader("new"))
    assert source_key(old) == source_key(new)
    assert source_key(build_statistic(cfg, EVERY)) == source_key(old)
    rec = Recorder()
    c = Collector([old], [rec])
    r = start(c)
    wait_until(lambda: polls["old"] >= 3, "polled before the reload")
    c.reconfigure([new])
    target = polls["old"] + 3
    wait_until(lambda: polls["old"] >= target, "polled after the reload")
    r.stop()
    assert polls["new"] == 0
    # only the very first poll lacked a baseline: the reload did not reset it
    assert len(rec.batches) == polls["old"] - 1
    assert all(len(b) == 8 for b in rec.batches)


def test_status_fields(start: Any) -> None:
    c = Collector([FakeSource("a"), FakeSource("a", blocking=True)], [])
    start(c)
    wait_until(lambda: all(s["runs"] >= 1 for s in c.status().values()), "both ran")
    st = c.status()
    assert set(st) == {"a", "a#2"}
    assert st["a#2"]["blocking"] is True
    assert set(st["a"]) == {"blocking", "every", "last_run", "last_error", "failing", "runs",
                            "failures", "skipped", "missed", "in_flight"}
    assert isinstance(st["a"]["last_run"], float)


def test_max_blocking_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_blocking"):
        Collector([], [], max_blocking=0)
