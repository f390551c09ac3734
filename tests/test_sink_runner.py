"""SinkWorker: durable submit, retries with backoff, give-up rules, order per alert.

The first part drives ``run_once`` with a FakeClock and a scripted sink; the
second runs real worker threads against a real HTTP receiver on 127.0.0.1
(outage with a worker restart, 400, a receiver that never answers) and a
worker process killed with SIGKILL.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import structlog
from peers import free_port, wait_for
from peers.receiver import HANG, Receiver, Request
from peers.sinktools import PeriodicSink, ScriptedSink, event, ids, running

from pharosd.clock import FakeClock
from pharosd.errors import DeliveryError, PermanentDeliveryError
from pharosd.sinks.config import LogSinkConfig, RetryConfig
from pharosd.sinks.file import FileSink
from pharosd.sinks.outbox import Outbox
from pharosd.sinks.webhook import WebhookSink
from pharosd.sinks.worker import RETRY_AFTER_CAP, SinkWorker


def make_worker(tmp_path: Path, sink: ScriptedSink, clock: FakeClock, **kw: object) -> SinkWorker:
    return SinkWorker(sink, None, str(tmp_path / "outbox" / f"{sink.name}.db"), clock=clock,
                      rng=random.Random(7), **kw)  # type: ignore[arg-type]


def fail(times: int, error: Exception | None = None):  # type: ignore[no-untyped-def]
    """A script failing each event's first ``times`` attempts."""
    def script(ev: object, n: int) -> Exception | None:
        return (error or DeliveryError("receiver down")) if n <= times else None
    return script


# -- the sink's backoff (the rule itself is tested in test_backoff.py) -------------


def test_backoff_defaults_go_from_one_second_to_five_minutes(tmp_path: Path) -> None:
    w = make_worker(tmp_path, ScriptedSink(), FakeClock())
    delays = [w._backoff.delay(n, 0.0) for n in range(11)]
    assert delays[:4] == [1.0, 2.0, 4.0, 8.0]
    assert delays[-1] == 300.0
    assert w._backoff.delay(0, 0.0, retry_after=2 * 3600.0) == RETRY_AFTER_CAP


# -- FakeClock-driven worker -----------------------------------------------------


def test_submit_writes_the_outbox_before_any_delivery(tmp_path: Path) -> None:
    sink = ScriptedSink()
    w = make_worker(tmp_path, sink, FakeClock())
    ev = event()
    w.submit(ev)
    assert sink.attempts == []
    rows = Outbox(w._outbox_path).all()
    assert [r.id for r in rows] == [ev.id]
    w.run_once()
    assert ids(sink.delivered) == [ev.id]
    assert Outbox(w._outbox_path).all() == []
    st_ = w.status()
    assert (st_["delivered"], st_["backlog"], st_["dropped"]) == (1, 0, {})
    assert st_["last_success"] == FakeClock().wall()


def test_retry_waits_for_the_backoff_and_keeps_the_event_id(tmp_path: Path) -> None:
    clock = FakeClock()
    sink = ScriptedSink(script=fail(3))
    w = make_worker(tmp_path, sink, clock, backoff_initial=1.0, backoff_max=300.0)
    ev = event()
    w.submit(ev)
    w.run_once()
    for attempt in (1, 2, 3):
        assert len(sink.attempts) == attempt
        base = 2.0 ** (attempt - 1)
        clock.advance(0.79 * base)         # below the smallest jittered delay
        w.run_once()
        assert len(sink.attempts) == attempt
        clock.advance(0.21 * base + 0.001)  # past the largest
        w.run_once()
    assert ids(sink.delivered) == [ev.id]
    assert {a.id for a in sink.attempts} == {ev.id}
    assert w.status()["retried"] == 3
    assert w.status()["last_error"] == "receiver down"


def test_retry_after_from_the_receiver_is_honoured(tmp_path: Path) -> None:
    clock = FakeClock()
    sink = ScriptedSink(script=fail(1, DeliveryError("429", retry_after=42.0)))
    w = make_worker(tmp_path, sink, clock)
    w.submit(event())
    w.run_once()
    clock.advance(41.9)
    w.run_once()
    assert len(sink.attempts) == 1
    clock.advance(0.2)
    w.run_once()
    assert len(sink.delivered) == 1


def test_permanent_failure_drops_at_once_and_the_next_event_goes(tmp_path: Path) -> None:
    bad = event("r", "firing")
    good = event("r", "resolved")
    sink = ScriptedSink(script=lambda ev, n: PermanentDeliveryError("HTTP 400: nope")
                        if ev.id == bad.id else None)
    w = make_worker(tmp_path, sink, FakeClock())
    w.submit(bad)
    w.submit(good)
    with structlog.testing.capture_logs() as logs:
        for _ in range(3):
            w.run_once()
    assert ids(sink.attempts) == [bad.id, good.id]
    assert w.status()["dropped"] == {"permanent": 1}
    err = [x for x in logs if x["event"] == "alert_delivery_failed_permanently"]
    assert err and err[0]["log_level"] == "error" and err[0]["event_id"] == bad.id
    assert "HTTP 400: nope" in err[0]["error"]


def test_an_event_older_than_max_age_is_given_up(tmp_path: Path) -> None:
    clock = FakeClock()
    sink = ScriptedSink(script=lambda ev, n: DeliveryError("down"))
    w = make_worker(tmp_path, sink, clock, max_age=3600.0, backoff_max=60.0)
    w.submit(event())
    with structlog.testing.capture_logs() as logs:
        for _ in range(70):
            w.run_once()
            clock.advance(60.0)
    assert w.status()["dropped"] == {"max_age": 1}
    assert w.status()["backlog"] == 0
    assert any(x["event"] == "alert_delivery_given_up" and x["log_level"] == "error"
               for x in logs)
    # it stopped trying after max_age (plus at most one backoff)
    assert len(sink.attempts) <= 3600 / 60 + 2


def test_a_failing_alert_does_not_block_other_alerts(tmp_path: Path) -> None:
    """Order is per fingerprint only: a stuck alert waits, others flow, in order."""
    clock = FakeClock()
    stuck1, stuck2 = event("stuck"), event("stuck", "resolved")
    others = [event("b"), event("c"), event("b", "resolved"), event("c", "resolved")]
    sink = ScriptedSink(script=lambda ev, n: DeliveryError("no")
                        if ev.rule == "stuck" and n <= 5 else None)
    w = make_worker(tmp_path, sink, clock, backoff_initial=1.0, backoff_max=2.0)
    for e in (stuck1, *others[:2], stuck2, *others[2:]):
        w.submit(e)
    for _ in range(4):
        w.run_once()
    assert ids(sink.delivered) == ids(others)
    assert stuck2.id not in ids(sink.attempts)      # never before stuck1 is done
    for _ in range(20):
        clock.advance(2.0)
        w.run_once()
    assert ids(sink.delivered)[-2:] == [stuck1.id, stuck2.id]


def test_pending_events_are_delivered_by_a_new_worker(tmp_path: Path) -> None:
    clock = FakeClock()
    down = ScriptedSink(script=lambda ev, n: DeliveryError("down"))
    w1 = make_worker(tmp_path, down, clock)
    evs = [event("a"), event("b"), event("a", "resolved")]
    for e in evs:
        w1.submit(e)
    w1.run_once()
    w1.close()
    assert down.closed
    up = ScriptedSink()
    w2 = make_worker(tmp_path, up, clock)
    assert w2.status()["backlog"] == 3
    for _ in range(3):
        w2.run_once()
    assert ids(up.delivered) == [evs[0].id, evs[1].id, evs[2].id]
    assert [e.to_dict() for e in up.delivered] == [e.to_dict() for e in evs]


def test_outbox_write_failure_falls_back_to_memory_in_order(tmp_path: Path) -> None:
    """A real SQLITE_FULL (the database may not grow): submit still works."""
    clock = FakeClock()
    sink = ScriptedSink(script=lambda ev, n: DeliveryError("later") if n == 1 else None)
    w = make_worker(tmp_path, sink, clock, backoff_initial=1.0, backoff_max=1.0)
    first = event("a")
    w.submit(first)                                  # goes to the outbox
    conn = w._outbox._conn  # type: ignore[union-attr]
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")
    big = [event("a", "resolved", summary="x" * 20000), event("b", summary="y" * 20000)]
    with structlog.testing.capture_logs() as logs:
        for e in big:
            w.submit(e)                              # must not raise
    assert [x["event"] for x in logs].count("outbox_write_failed") == 2
    assert w.status()["outbox_write_failed"] == 2
    assert w.status()["outbox"] == "memory"
    assert w.status()["backlog"] == 3
    w.run_once()                                     # b delivers from memory
    assert ids(sink.attempts) == [first.id, big[1].id]
    conn.execute("PRAGMA max_page_count = 1073741823")
    later = event("a", "firing")
    w.submit(later)                                  # memory is written back first
    assert [r.id for r in w._outbox.all()] == [  # type: ignore[union-attr]
        first.id, big[0].id, big[1].id, later.id]
    for _ in range(6):
        clock.advance(1.0)
        w.run_once()
    a_order = [e.id for e in sink.delivered if e.rule == "a"]
    assert a_order == [first.id, big[0].id, later.id]
    assert w.status()["backlog"] == 0
    assert w.status()["outbox"] == "ok"


def test_an_unusable_outbox_path_still_delivers_from_memory(tmp_path: Path) -> None:
    (tmp_path / "outbox").write_text("a file where the directory should be")
    sink = ScriptedSink()
    with structlog.testing.capture_logs() as logs:
        w = make_worker(tmp_path, sink, FakeClock())
        w.submit(event())
        w.run_once()
    assert len(sink.delivered) == 1
    assert any(x["event"] == "outbox_failed" for x in logs)
    assert w.status()["outbox_write_failed"] == 1


def test_a_full_backlog_drops_the_oldest_and_counts_it(tmp_path: Path) -> None:
    sink = ScriptedSink()
    cfg = LogSinkConfig(name="scripted", kind="log", max_backlog=2)
    w = SinkWorker(sink, cfg, str(tmp_path / "o.db"), clock=FakeClock())
    evs = [event(f"r{i}") for i in range(4)]
    for e in evs:
        w.submit(e)
    assert w.status()["dropped"] == {"overflow": 2}
    w.run_once()
    assert ids(sink.delivered) == ids(evs[2:])


def test_a_crashing_sink_is_retried_not_fatal(tmp_path: Path) -> None:
    clock = FakeClock()
    sink = ScriptedSink(script=lambda ev, n: RuntimeError("bug") if n == 1 else None)
    w = make_worker(tmp_path, sink, clock)
    w.submit(event())
    w.run_once()
    clock.advance(1.0)
    w.run_once()
    assert len(sink.delivered) == 1
    assert w.status()["retried"] == 1


def test_retry_settings_come_from_the_sink_config(tmp_path: Path) -> None:
    cfg = LogSinkConfig(name="x", kind="log",
                        retry=RetryConfig(initial=2.0, max=30.0, max_age=600.0))  # type: ignore[arg-type]
    w = SinkWorker(ScriptedSink(), cfg, str(tmp_path / "o.db"))
    assert (w.backoff_initial, w.backoff_max, w.max_age) == (2.0, 30.0, 600.0)
    w2 = SinkWorker(ScriptedSink(), cfg, str(tmp_path / "o2.db"), backoff_initial=0.5)
    assert w2.backoff_initial == 0.5
    assert SinkWorker(ScriptedSink(), None, str(tmp_path / "o3.db")).max_age == 86400.0


def test_periodic_hook_is_called_about_every_second(tmp_path: Path) -> None:
    clock = FakeClock()
    sink = PeriodicSink()
    w = make_worker(tmp_path, sink, clock)
    w.run_once()
    w.run_once()
    assert len(sink.periodic_calls) == 1
    clock.advance(1.0)
    assert w.run_once() <= 1.0
    assert sink.periodic_calls == [FakeClock().wall(), FakeClock().wall() + 1.0]


def test_reopen_close_and_heartbeat(tmp_path: Path) -> None:
    sink = ScriptedSink()
    w = make_worker(tmp_path, sink, FakeClock())
    assert w.name == "sink:scripted"   # the supervisor name, never a bare user name
    assert w.sink_name == "scripted"
    w.reopen()
    assert sink.reopened == 1
    sink.blocking_timeout = 100.0  # type: ignore[attr-defined]
    assert w.heartbeat_timeout > 100.0
    w.close()
    w.submit(event())                                # after close: counted, no raise
    assert w.status()["dropped"] == {"closed": 1}


# -- real threads, a real receiver -------------------------------------------------


def _webhook_worker(tmp_path: Path, url: str, *, timeout: float = 5.0,
                    name: str = "hook") -> SinkWorker:
    sink = WebhookSink(name, url + "/alerts", timeout=timeout)
    return SinkWorker(sink, None, str(tmp_path / "outbox" / f"{name}.db"),
                      backoff_initial=0.5, backoff_max=2.0)


@pytest.mark.slow
def test_outage_restart_and_500s_lose_nothing_and_keep_order_and_ids(tmp_path: Path) -> None:
    """Receiver down (the worker is replaced meanwhile), then 500 twice, then 200.

    The spec's 30 s outage runs against the real daemon in test_daemon_sinks.py; here
    the outage lasts long enough for the backoff to reach its 2 s cap a few times."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    alerts = ["cpu", "mem", "disk"]
    submitted = []
    for status in ("firing", "resolved", "firing"):
        for rule in alerts:
            submitted.append(event(rule, status))  # type: ignore[arg-type]
    t0 = time.monotonic()

    w1 = _webhook_worker(tmp_path, url)
    with running(w1):
        for e in submitted[:5]:
            w1.submit(e)
        assert wait_for(lambda: w1.status()["retried"] >= 2, 20), w1.status()
    assert w1.status()["delivered"] == 0 and w1.status()["retried"] > 0
    w1.close()

    w2 = _webhook_worker(tmp_path, url)
    assert w2.status()["backlog"] == 5
    calls = {"n": 0}

    def respond(req: Request) -> tuple[int, dict[str, str], bytes]:
        calls["n"] += 1
        return (500, {}, b"busy") if calls["n"] <= 2 else (200, {}, b"")

    with running(w2):
        for e in submitted[5:]:
            w2.submit(e)
        time.sleep(max(0.0, 8.0 - (time.monotonic() - t0)))     # the outage: 8 s
        with Receiver(respond, port=port) as rx:
            ok = rx.wait_for(lambda reqs: len([r for r in reqs if r.status == 200])
                             >= len(submitted), timeout=60)
            reqs = rx.received()
    w2.close()
    print(f"outage test: all events delivered {time.monotonic() - t0:.1f}s after the start")
    assert ok, f"only {len(reqs)} requests"
    assert [r.status for r in reqs[:2]] == [500, 500]
    acked = [r.json() for r in reqs if r.status == 200]
    assert sorted(a["id"] for a in acked) == sorted(e.id for e in submitted)  # once each
    for r in reqs:
        assert r.headers["x-pharos-event-id"] == r.json()["id"]
    failed_ids = {r.json()["id"] for r in reqs[:2]}
    assert failed_ids <= {a["id"] for a in acked}   # the same ids came again
    for rule in alerts:
        assert [a["id"] for a in acked if a["rule"] == rule] == \
               [e.id for e in submitted if e.rule == rule]
    assert {a["id"]: a for a in acked}[submitted[0].id] == submitted[0].to_dict()


def test_a_400_is_not_retried(tmp_path: Path) -> None:
    bad, after = event("r"), event("r", "resolved")

    def respond(req: Request) -> tuple[int, dict[str, str], bytes]:
        if req.json()["id"] == bad.id:
            return 400, {}, b"bad request: " + b"z" * 500
        return 200, {}, b""

    with Receiver(respond) as rx:
        w = _webhook_worker(tmp_path, rx.url)
        with structlog.testing.capture_logs() as logs, running(w):
            w.submit(bad)
            w.submit(after)
            assert rx.wait_for(lambda reqs: any(r.status == 200 for r in reqs))
        w.close()
    assert [r.json()["id"] for r in rx.received()] == [bad.id, after.id]
    assert w.status()["dropped"] == {"permanent": 1}
    err = next(x for x in logs if x["event"] == "alert_delivery_failed_permanently")
    assert "HTTP 400" in err["error"] and "bad request: zzz" in err["error"]
    assert "z" * 200 not in err["error"]              # only the first 200 bytes


def test_429_and_503_are_retried(tmp_path: Path) -> None:
    statuses = [429, 503, 408, 200]

    def respond(req: Request) -> tuple[int, dict[str, str], bytes]:
        s = statuses.pop(0)
        return s, ({"Retry-After": "0"} if s == 429 else {}), b""

    with Receiver(respond) as rx:
        w = _webhook_worker(tmp_path, rx.url)
        with running(w):
            w.submit(event())
            assert rx.wait_for(lambda reqs: any(r.status == 200 for r in reqs))
        w.close()
    assert [r.status for r in rx.received()] == [429, 503, 408, 200]


def test_a_receiver_that_never_answers_does_not_delay_the_file_sink(tmp_path: Path) -> None:
    hook_timeout = 30.0
    with Receiver(lambda req: HANG) as rx:
        hook = _webhook_worker(tmp_path, rx.url, timeout=hook_timeout)
        path = tmp_path / "alerts.jsonl"
        file_w = SinkWorker(FileSink("file", str(path)), None, str(tmp_path / "file.db"))
        with running(hook), running(file_w):
            first = event("first")
            hook.submit(first)
            file_w.submit(first)
            assert rx.wait_for(lambda reqs: len(reqs) >= 1, timeout=10)  # hook is now stuck
            delays = []
            for i in range(5):
                ev = event(f"rule{i}")
                t = time.monotonic()
                hook.submit(ev)                      # the bus calls both, in this order
                file_w.submit(ev)
                arrived = wait_for(lambda ev=ev: ev.id in path.read_text(),  # type: ignore[misc]
                                   timeout=10)
                delays.append(time.monotonic() - t)
                assert arrived, f"file event {i} did not arrive within its window"
            print("file sink delays while the webhook hangs:",
                  ", ".join(f"{d * 1000:.0f}ms" for d in delays))
            assert hook.status()["delivered"] == 0
            assert len(rx.received()) == 1           # still stuck on the first request
            rx.stop()                                # hang up, so the hook worker can stop
        hook.close()
        file_w.close()


_KILL_SCRIPT = r"""
import json, sys, threading, time
from pharosd.model import AlertEvent, fingerprint, labels_of
from pharosd.sinks.worker import SinkWorker
from pharosd.sinks.webhook import WebhookSink
from pharosd.worker import WorkerContext

url, outbox, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
worker = SinkWorker(WebhookSink("hook", url, timeout=5), None, outbox,
                    backoff_initial=0.2, backoff_max=0.5)
threading.Thread(target=worker.run, args=(WorkerContext(),), daemon=True).start()
out = []
for i in range(n):
    rule = "r%d" % (i % 3)
    labels = labels_of({"i": str(i % 3)})
    now = time.time()
    ev = AlertEvent(status="firing" if i < 3 else "resolved", rule=rule, level="critical",
                    metric="m", labels=labels, value=1.0, limit=0.5, op="above", host="h",
                    started_at=now, at=now, summary="s", fingerprint=fingerprint(rule, labels))
    worker.submit(ev)
    out.append({"id": ev.id, "fingerprint": ev.fingerprint})
print(json.dumps(out), flush=True)
time.sleep(600)
"""


def test_kill_9_with_events_in_the_outbox_then_a_new_worker_delivers_them(
        tmp_path: Path) -> None:
    script = tmp_path / "submitter.py"
    script.write_text(_KILL_SCRIPT)
    outbox = str(tmp_path / "outbox" / "hook.db")
    state = {"up": False}

    def respond(req: Request) -> tuple[int, dict[str, str], bytes]:
        return (200, {}, b"") if state["up"] else (503, {}, b"not yet")

    with Receiver(respond) as rx:
        env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
        proc = subprocess.Popen([sys.executable, str(script), rx.url, outbox, "6"],
                                stdout=subprocess.PIPE, env=env)
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            sent = json.loads(line)
            # the doomed worker is retrying: the events are in flight, not delivered
            assert rx.wait_for(lambda reqs: len(reqs) >= 3, timeout=20)
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
            if proc.stdout is not None:
                proc.stdout.close()
        assert proc.returncode == -signal.SIGKILL
        rows = sqlite3.connect(outbox).execute("SELECT id FROM events ORDER BY seq").fetchall()
        assert [r[0] for r in rows] == [s["id"] for s in sent]
        state["up"] = True
        w = SinkWorker(WebhookSink("hook", rx.url, timeout=5), None, outbox,
                       backoff_initial=0.2, backoff_max=0.5)
        with running(w):
            assert rx.wait_for(lambda reqs: {r.json()["id"] for r in reqs if r.status == 200}
                               >= {s["id"] for s in sent}, timeout=30)
        w.close()
    acked = [r.json() for r in rx.received() if r.status == 200]
    for fp in {s["fingerprint"] for s in sent}:
        assert [a["id"] for a in acked if a["fingerprint"] == fp] == \
               [s["id"] for s in sent if s["fingerprint"] == fp]


@pytest.mark.parametrize("n", [50])
def test_many_alerts_through_a_live_worker_arrive_once_in_order(tmp_path: Path, n: int) -> None:
    with Receiver() as rx:
        w = _webhook_worker(tmp_path, rx.url)
        evs = []
        with running(w):
            for i in range(n):
                e = event(f"r{i % 5}", "firing" if i % 2 == 0 else "resolved")
                evs.append(e)
                w.submit(e)
            assert rx.wait_for(lambda reqs: len(reqs) >= n)
        w.close()
    got = [r.json()["id"] for r in rx.received()]
    assert sorted(got) == sorted(ids(evs))
    for i in range(5):
        assert [x for x in got if x in {e.id for e in evs if e.rule == f"r{i}"}] == \
               [e.id for e in evs if e.rule == f"r{i}"]
