"""The Pipeline facade and its lanes: what the uplink sends, how often, and when.

Most tests run the uplink's logic on a ``FakeClock`` with a scripted
``Transport`` and the ``InlineLauncher``: each step of the worker is called
by hand (``Drive``), a request completes within the step that starts it and
its answer is applied on the next, so retries, backoff, splits, spills and
replays are checked to the step in milliseconds. ``Held`` keeps requests
outstanding (a slow receiver) until released.

A few tests keep the real parts: the worker on its own thread, requests on
daemon threads, HTTP to a scripted receiver on 127.0.0.1 (peers.receiver).
The real receivers (Prometheus, VictoriaMetrics) are in test_remote_write_*.py,
the HTTP transport alone in test_pipeline_transport.py.
"""

from __future__ import annotations

import base64
import itertools
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import structlog
from peers import free_port, wait_for
from peers.receiver import HANG, Receiver
from peers.remote_write import decode_request, flat

from pharosd import __version__
from pharosd.backoff import Backoff
from pharosd.clock import FakeClock
from pharosd.config.schema import Config
from pharosd.model import Sample
from pharosd.pipeline.config import (
    BasicAuthConfig,
    BufferConfig,
    RemoteWriteConfig,
    SpillConfig,
    UplinkConfig,
)
from pharosd.pipeline.receiver import ReceiverSettings
from pharosd.pipeline.remote_write import STALE_NAN_BITS
from pharosd.pipeline.telemetry import TelemetrySource
from pharosd.pipeline.transport import InlineLauncher, Reply
from pharosd.pipeline.uplink import FLUSH_SLACK, replay_size
from pharosd.pipeline.worker import Pipeline
from pharosd.types import Duration
from pharosd.worker import WorkerContext

pytestmark = pytest.mark.timeout(120)

T0 = 1_800_000_000.0
Row = tuple[str, dict[str, str], int, float]


def config(*receivers: RemoteWriteConfig, capacity: int = 100_000,
           stale_floor: float = 5.0, spill: SpillConfig | None = None,
           stale_markers: bool = True) -> Config:
    return Config(uplink=UplinkConfig(remote_write=tuple(receivers),
                                      stale_floor=Duration(stale_floor),
                                      stale_markers=stale_markers),
                  buffer=BufferConfig(capacity=capacity), spill=spill or SpillConfig())


def rw(url: str = "http://central.example", **kw: Any) -> RemoteWriteConfig:
    return RemoteWriteConfig(url=url + "/api/v1/write", **kw)


def samples(tick: int, n: int = 3, t0: float | None = None, metric: str = "test.value",
            **labels: str) -> list[Sample]:
    t = (t0 if t0 is not None else T0) + tick
    return [Sample(metric, tuple(sorted({"series": str(i), **labels}.items())), float(tick), t)
            for i in range(n)]


# -- the fakes --------------------------------------------------------------------------


@dataclass
class Post:
    at: float                   # the fake clock's monotonic time
    receiver: str
    rows: list[Row]
    reply: Reply | None         # None: no answer (an exception)


Answer = Callable[[str, list[Row]], "Reply | Exception"]


class Scripted:
    """A ``Transport`` that decodes every request and answers ``answer(receiver, rows)``
    (default 204); an exception answer is raised (no answer)."""

    def __init__(self, clock: FakeClock, answer: Answer | None = None) -> None:
        self.clock = clock
        self.answer = answer or (lambda name, rows: Reply(204))
        self.posts: list[Post] = []
        self._lock = threading.Lock()

    def post(self, settings: ReceiverSettings, body: bytes) -> Reply:
        rows = flat(decode_request(body))
        got = self.answer(settings.name, rows)
        with self._lock:
            self.posts.append(Post(self.clock.monotonic(), settings.name, rows,
                                   got if isinstance(got, Reply) else None))
        if isinstance(got, Exception):
            raise got
        return got

    def close(self) -> None:
        pass

    def rows(self, status: int | None = 204, receiver: str | None = None) -> list[Row]:
        return [r for p in self.posts
                if (receiver is None or p.receiver == receiver)
                and (status is None or (p.reply is not None and p.reply.status == status))
                for r in p.rows]


class Held:
    """A ``Launcher`` that keeps every request outstanding until ``release()``
    (with ``auto`` set, later requests run at once)."""

    def __init__(self) -> None:
        self.jobs: list[Callable[[], None]] = []
        self.auto = False

    def launch(self, job: Callable[[], None]) -> None:
        if self.auto:
            job()
        else:
            self.jobs.append(job)

    def release(self) -> None:
        jobs, self.jobs = self.jobs, []
        for job in jobs:
            job()


class Drive:
    """A pipeline on a fake clock, stepped by hand as the uplink worker would step it
    (every 0.25 s at most; a finished request is looked at on the next step)."""

    def __init__(self, tmp_path: Path, cfg: Config, answer: Answer | None = None, *,
                 launcher: Any = None, clock: FakeClock | None = None,
                 host: str = "h") -> None:
        self.clock = clock or FakeClock(wall=T0)
        self.transport = Scripted(self.clock, answer)
        self.p = Pipeline(cfg, state_dir=str(tmp_path), host=host, clock=self.clock,
                          transport=self.transport, launcher=launcher or InlineLauncher())

    def run(self, seconds: float, tick: float = 0.05) -> None:
        end = self.clock.monotonic() + seconds
        while self.clock.monotonic() < end:
            self.p._step()
            self.clock.advance(tick)

    def until(self, cond: Callable[[], Any], limit: float = 600.0, tick: float = 0.05) -> float:
        """Step until ``cond()``; return the fake seconds it took (fails past ``limit``)."""
        start = self.clock.monotonic()
        while not cond():
            assert self.clock.monotonic() - start < limit, "condition not reached"
            self.p._step()
            self.clock.advance(tick)
        return self.clock.monotonic() - start

    def receiver(self, name: str | None = None) -> dict[str, Any]:
        rs = self.p.status()["receivers"]
        return rs[0] if name is None else next(r for r in rs if r["name"] == name)


@pytest.fixture
def drives():
    made: list[Drive] = []

    def make(*args: Any, **kw: Any) -> Drive:
        d = Drive(*args, **kw)
        made.append(d)
        return d

    yield make
    for d in made:
        d.p.close()


# -- the logic, on a fake clock ---------------------------------------------------------


def test_without_receivers_the_pipeline_does_nothing(tmp_path) -> None:
    p = Pipeline(Config(), state_dir=str(tmp_path), host="h")
    assert not p.enabled and p.workers() == []
    p.offer(samples(0))
    assert p.status()["enabled"] is False
    p.close()
    assert list(tmp_path.iterdir()) == []


def test_a_full_batch_goes_at_once_and_a_partial_one_after_flush(tmp_path, drives) -> None:
    d = drives(tmp_path, config(rw(batch=6, flush=Duration(2.0))))
    d.p.offer(samples(0) + samples(1))               # 6 samples: a full batch
    d.run(0.1)
    assert [len(p.rows) for p in d.transport.posts] == [6]
    d.p.offer(samples(2))
    took = d.until(lambda: len(d.transport.posts) == 2) + 0.1    # since the first request
    assert 2.0 - FLUSH_SLACK - 1e-6 <= took <= 2.15, took     # never early by more than the slack
    d.run(0.1)                                         # the answer is applied next step
    st = d.receiver()
    assert st["sent"] == 9 and st["up"] is True
    assert st["last_success"] == pytest.approx(T0 + 2.2, abs=0.2)


def test_a_worker_that_sleeps_what_step_asks_sends_each_collection_on_one_wakeup(
        tmp_path, drives) -> None:
    """The uplink worker sleeps until ``_step`` says, or until an offer wakes it: driven
    that way, every second's samples still go within ``flush``, on about one step per
    collection (it used to poll four times a second)."""
    d = drives(tmp_path, config(rw(batch=2000, flush=Duration(1.0))))
    steps = 0
    offered_at: list[float] = []
    sent_at: list[float] = []
    woken = True
    next_offer = d.clock.monotonic()
    end = next_offer + 30.0
    wait = 0.0
    while d.clock.monotonic() < end:
        if woken or wait <= 0:
            wait = d.p._step()
            steps += 1
            while len(sent_at) < len(d.transport.posts):
                sent_at.append(d.clock.monotonic())
            woken = False
        # sleep until the step is due or the next collection (3 ms late, as in life)
        jitter = 0.003 * (len(offered_at) % 3)
        offer_at = next_offer + jitter
        step_at = d.clock.monotonic() + wait
        if step_at < offer_at:
            d.clock.advance(step_at - d.clock.monotonic())
            wait = 0.0
            continue
        d.clock.advance(max(0.0, offer_at - d.clock.monotonic()))
        wait = step_at - d.clock.monotonic()
        offered_at.append(d.clock.monotonic())
        d.p.offer(samples(len(offered_at)))
        woken = d.p._wake.is_set()
        d.p._wake.clear()
        next_offer += 1.0
    assert len(offered_at) >= 30
    lags: dict[int, float] = {}          # collection number -> seconds until it was sent
    for post, sent in zip(d.transport.posts, sent_at, strict=True):
        for _, labels, _, value in post.rows:
            if labels.get("series") is not None:
                lags[int(value)] = sent - offered_at[int(value) - 1]
    assert sorted(lags) == list(range(1, len(offered_at))), "every collection was sent"
    assert max(lags.values()) <= 1.0 + FLUSH_SLACK + 1e-6, lags
    assert steps <= 1.2 * len(offered_at), (steps, len(offered_at))


def test_each_series_is_in_time_order_within_a_request(tmp_path, drives) -> None:
    d = drives(tmp_path, config(rw()))
    for tick in (5, 3, 4, 1, 2):            # offered out of order, one request
        d.p.offer(samples(tick, n=2))
    d.run(2.0)
    [post] = d.transport.posts
    by_series: dict[str, list[int]] = {}
    for _, labels, ts, _ in post.rows:
        by_series.setdefault(labels["series"], []).append(ts)
    assert len(by_series) == 2
    assert all(tss == sorted(tss) and len(tss) == 5 for tss in by_series.values())


def test_a_400_is_logged_counted_and_dropped_without_retries(tmp_path, drives) -> None:
    d = drives(tmp_path, config(rw(), stale_markers=False),
               lambda n, rows: Reply(400, "invalid label set: bad"))
    with structlog.testing.capture_logs() as logs:
        for tick in range(4):
            d.p.offer(samples(tick))
            d.run(1.5)
        d.run(120.0, tick=0.25)                 # a retry, if any, would come within this
    assert len(d.transport.posts) == 4, "one request per batch, never a retry"
    st = d.p.status()
    assert st["dropped"] == {"rejected": 12}
    assert st["receivers"][0]["retried"] == 0 and st["spill"]["samples"] == 0
    dropped_logs = [e for e in logs if e["event"] == "uplink_batch_dropped"]
    assert dropped_logs and "bad" in dropped_logs[0]["body"]
    assert dropped_logs[0]["status"] == 400


def test_a_500_gets_backoff_growing_from_1s_to_30s_and_loses_nothing(tmp_path, drives) -> None:
    answer = {"status": 500}
    d = drives(tmp_path, config(rw()),
               lambda n, rows: Reply(answer["status"], "internal error"))
    d.p.offer(samples(0))
    d.run(200.0)
    times = [p.at for p in d.transport.posts]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    schedule = Backoff(1.0, 30.0)
    assert len(gaps) >= 8, gaps
    for k, gap in enumerate(gaps):      # each wait is the nominal one, shortened <= 20 %
        assert 0.8 * schedule.nominal(k) - 1e-6 <= gap <= schedule.nominal(k) + 0.1, (k, gaps)
    assert max(gaps) <= 30.1 and gaps[-1] >= 24.0
    st = d.receiver()
    assert st["up"] is False and st["retried"] == 3 * len(times)
    assert st["failures"] == len(times) and 0 < st["backoff_seconds"] <= 30.0
    assert st["spill_samples"] == 3, "the failed batch waits in the spill"
    # Receiver fixed, backoff shortened by a reload: the spilled batch arrives once.
    answer["status"] = 204
    d.p.reconfigure(config(rw(max_backoff=Duration(1.0))))
    took = d.until(lambda: d.receiver()["sent"] == 3 and d.p.status()["spill"]["samples"] == 0)
    assert took <= 1.2
    assert len(d.transport.rows(204)) == 3 and d.receiver()["up"] is True


def test_429_honours_retry_after(tmp_path, drives) -> None:
    calls = Counter[str]()

    def answer(name: str, rows: list[Row]) -> Reply:
        calls["n"] += 1
        return Reply(429, "slow down", retry_after=12.0) if calls["n"] == 1 else Reply(204)

    d = drives(tmp_path, config(rw()), answer)
    d.p.offer(samples(0))
    d.until(lambda: len(d.transport.posts) >= 2)
    first, second = d.transport.posts[:2]
    assert 12.0 <= second.at - first.at <= 12.1
    d.run(0.1)
    assert d.receiver()["sent"] == 3


def prometheus_model(cutoff_ms: int) -> Answer:
    """Prometheus 2.42 with an out-of-order window: one too-old sample fails the request."""
    def answer(name: str, rows: list[Row]) -> Reply:
        if any(ts < cutoff_ms for _, _, ts, _ in rows):
            return Reply(500, "too old sample\n")
        return Reply(204)
    return answer


def test_too_old_samples_are_split_off_and_counted_without_a_storm(tmp_path, drives) -> None:
    now = T0
    d = drives(tmp_path, config(rw()), prometheus_model(int((now - 3600) * 1000)))
    old = [s for k in range(50) for s in samples(k, t0=now - 7200)]
    new = [s for k in range(50) for s in samples(k, t0=now - 600)]
    d.p.offer(old + new)
    d.until(lambda: d.p.status()["dropped"] == {"too_old": 150})
    assert d.receiver()["sent"] == 150
    assert len(d.transport.posts) <= 30
    accepted = d.transport.rows(204)
    assert len(accepted) == 150 and min(r[2] for r in accepted) >= (now - 600) * 1000 - 1
    # What the receiver taught is remembered: more old samples cost no request.
    before = len(d.transport.posts)
    d.p.offer([s for k in range(10) for s in samples(k, t0=now - 7300)] + samples(0, t0=now))
    d.until(lambda: d.receiver()["sent"] == 153)
    assert len(d.transport.posts) == before + 1
    assert d.p.status()["dropped"] == {"too_old": 180}
    assert d.receiver()["retried"] == 0


def test_an_outage_spills_and_every_sample_arrives_once_afterwards(tmp_path, drives) -> None:
    down = {"yes": True}

    def answer(name: str, rows: list[Row]) -> Reply | Exception:
        return ConnectionRefusedError(111, "Connection refused") if down["yes"] else Reply(204)

    d = drives(tmp_path, config(rw(max_backoff=Duration(2.0)), stale_markers=False), answer)
    produced = 0
    for tick in range(40):                  # 4 s with nobody listening
        d.p.offer(samples(tick, n=5))
        produced += 5
        d.run(0.1)
    st = d.receiver()
    assert st["up"] is False and st["spill_samples"] > 0
    assert st["last_error"] == "ConnectionRefusedError: [Errno 111] Connection refused"
    down["yes"] = False
    for tick in range(40, 50):              # live data keeps coming during the replay
        d.p.offer(samples(tick, n=5))
        produced += 5
        d.run(0.1)
    d.until(lambda: len(d.transport.rows()) >= produced and
            d.p.status()["spill"]["samples"] == 0)
    d.run(5.0)
    keys = Counter((r[1]["series"], r[2]) for r in d.transport.rows())
    assert len(keys) == produced and max(keys.values()) == 1


def test_live_data_and_replay_take_turns(tmp_path) -> None:
    cfg = config(rw(batch=10))
    big = replay_size(10)                    # a replay request carries more than a live one
    first = Drive(tmp_path, cfg)
    for k in range(3):
        first.p.offer(samples(k, n=big, t0=T0 - 1000))
    first.p.close()                          # three rows of `big` samples in the spill
    d = Drive(tmp_path, cfg)
    assert d.p.status()["spill"]["samples"] == 3 * big
    for k in range(3):
        d.p.offer(samples(k, n=10))
    d.until(lambda: len(d.transport.posts) == 6)
    d.p.close()
    kinds = ["replay" if p.rows[0][2] < T0 * 1000 else "live" for p in d.transport.posts]
    assert kinds == ["live", "replay"] * 3
    assert [len(p.rows) for p in d.transport.posts] == [10, big] * 3
    assert big == 250


def test_a_slow_receiver_spills_the_hot_buffer_once_per_flush(tmp_path, drives) -> None:
    held = Held()
    d = drives(tmp_path, config(rw(batch=3, flush=Duration(1.0))), launcher=held)
    d.p.offer(samples(0))
    d.run(0.1)
    assert len(held.jobs) == 1 and d.receiver()["in_flight"] is True
    spilled = []
    for tick in range(1, 6):
        d.p.offer(samples(tick))
        d.run(0.5)
        spilled.append(d.receiver()["spill_samples"])
    assert len(held.jobs) == 1, "one request at a time"
    assert spilled[-1] >= 9 and len(set(spilled)) >= 3, spilled   # spilled as it came
    assert d.receiver()["buffer_samples"] <= 3
    held.auto = True
    held.release()
    d.until(lambda: d.receiver()["sent"] == 18)
    assert d.p.status()["spill"]["samples"] == 0 and d.receiver()["buffer_samples"] == 0
    assert sorted(r[2] for r in d.transport.rows()) == sorted(
        round(s.ts * 1000) for t in range(6) for s in samples(t))


def test_close_moves_memory_to_the_spill_and_the_next_pipeline_sends_it(tmp_path) -> None:
    cfg = config(rw())
    first = Drive(tmp_path, cfg)
    for tick in range(20):
        first.p.offer(samples(tick, n=5))
    assert first.p.status()["buffer"]["samples"] == 100
    first.p.close()                          # SIGTERM: nothing in memory is lost
    assert first.transport.posts == []
    second = Drive(tmp_path, cfg)
    assert second.p.status()["spill"]["samples"] == 100
    second.until(lambda: len(second.transport.rows()) >= 100)
    second.p.close()
    assert sorted((r[1]["series"], r[2]) for r in second.transport.rows()) == sorted(
        (s.label("series"), round(s.ts * 1000)) for t in range(20) for s in samples(t, n=5))


def test_reconfigure_keeps_buffered_samples_and_applies_new_labels(tmp_path, drives) -> None:
    d = drives(tmp_path, config(rw(name="main")))
    for tick in range(10):
        d.p.offer(samples(tick))
    d.p.reconfigure(config(rw(name="main", batch=7, external_labels={"dc": "x"})))
    assert d.p.status()["buffer"]["samples"] == 30
    d.until(lambda: len(d.transport.rows()) >= 30)
    assert all(r[1]["dc"] == "x" for r in d.transport.rows())
    assert all(len(p.rows) <= 7 for p in d.transport.posts)


def test_a_removed_receiver_drops_its_backlog_counted_and_a_new_one_gets_new_data(
        tmp_path, drives) -> None:
    d = drives(tmp_path, config(rw(name="old")))
    for tick in range(5):
        d.p.offer(samples(tick))
    d.p.reconfigure(config(rw(name="new")))
    assert d.p.status()["dropped"] == {"receiver_removed": 15}
    d.p.offer(samples(9))
    d.run(5.0)
    assert {p.receiver for p in d.transport.posts} == {"new"}
    assert [r[2] for r in d.transport.rows()] == [1_800_000_009_000] * 3


def test_a_series_that_stops_gets_exactly_one_stale_marker(tmp_path, drives) -> None:
    d = drives(tmp_path, config(rw(), stale_floor=0.5))
    for tick in range(60):
        now = d.clock.wall()
        batch = [Sample("net.rx", (("interface", "eth9"),), 1.0, now),
                 Sample("net.rx", (("interface", "lo"),), 1.0, now)]
        d.p.offer(batch if tick < 3 else batch[1:])       # eth9 goes away after tick 2
        d.run(0.2)
    markers = [(labels["interface"], struct.unpack("<Q", struct.pack("<d", value))[0])
               for _, labels, _, value in d.transport.rows()
               if struct.pack("<d", value) == struct.pack("<Q", STALE_NAN_BITS)]
    assert markers == [("eth9", STALE_NAN_BITS)]
    assert d.p.status()["stale_markers"] == 1


def test_a_full_hot_buffer_drops_the_oldest_counted(tmp_path) -> None:
    p = Pipeline(config(rw(), capacity=100), state_dir=str(tmp_path), host="h")
    for tick in range(50):
        p.offer(samples(tick))
    st = p.status()
    assert st["buffer"]["samples"] == 100 and st["dropped"] == {"buffer_full": 50}
    p.close()


def test_offer_never_raises(tmp_path) -> None:
    p = Pipeline(config(rw()), state_dir=str(tmp_path), host="h")
    p.offer([object()])   # type: ignore[list-item]
    p.offer([Sample("m", (), "not a number", 1.0)])   # type: ignore[arg-type]
    assert p.status()["offer_errors"] == 2
    p.close()


def test_status_reports_buffer_spill_receivers_and_counters(tmp_path) -> None:
    p = Pipeline(config(rw(name="central")), state_dir=str(tmp_path), host="h")
    p.offer(samples(0))
    st = p.status()
    assert set(st) >= {"enabled", "buffer", "spill", "receivers", "sent", "retried", "dropped",
                       "series", "stale_markers"}
    assert set(st["spill"]) >= {"path", "bytes", "file_bytes", "rows", "samples",
                                "oldest_age_seconds", "max_size", "max_age"}
    assert st["spill"]["path"] == str(tmp_path / "spill.db")
    r = st["receivers"][0]
    assert set(r) >= {"name", "url", "up", "last_success", "seconds_since_success",
                      "buffer_samples", "spill_samples", "spill_oldest_age_seconds", "sent",
                      "retried", "dropped"}
    assert r["name"] == "central" and r["buffer_samples"] == 3 and st["series"] == 3
    p.close()


def test_telemetry_reports_pharosd_itself_and_is_shippable(tmp_path, drives) -> None:
    d = drives(tmp_path, config(rw(name="central")))
    d.p.offer(samples(0))
    d.until(lambda: d.p.status()["sent"] == 3)
    src = TelemetrySource(d.p, lambda: {"restarts": 2.0}, every=10.0)
    assert (src.name, src.blocking, src.every) == ("self", False, 10.0)
    src.collect(d.clock.wall())
    time.sleep(0.01)                          # cpu_percent needs real time between collects
    got = {(s.metric, s.labels): s.value for s in src.collect(d.clock.wall())}
    central = (("receiver", "central"),)
    assert got[("pharosd.samples_sent_total", central)] == 3
    assert got[("pharosd.uplink_up", central)] == 1.0
    assert got[("pharosd.buffer_samples", central)] == 0
    assert got[("pharosd.spill_samples", central)] == 0
    assert got[("pharosd.samples_dropped_total", (("reason", "buffer_full"), *central))] == 0
    assert got[("pharosd.worker_restarts", ())] == 2.0
    assert got[("pharosd.rss_bytes", ())] > 1_000_000
    assert ("pharosd.cpu_percent", ()) in got
    assert ("pharosd.uplink_seconds_since_success", central) in got
    assert ("pharosd.spill_oldest_age_seconds", central) in got
    d.p.offer(list(src.collect(d.clock.wall())))
    d.until(lambda: any(r[0] == "pharos_pharosd_samples_sent_total"
                        for r in d.transport.rows()))


def test_the_stale_nan_survives_python_float_handling() -> None:
    from pharosd.pipeline.remote_write import stale_nan

    value = stale_nan()
    assert struct.pack("<d", value) == struct.pack("<Q", STALE_NAN_BITS)


def test_a_spill_path_in_the_config_is_used(tmp_path) -> None:
    path = tmp_path / "elsewhere" / "s.db"
    p = Pipeline(config(rw(), spill=SpillConfig(path=str(path))),
                 state_dir=str(tmp_path / "state"), host="h")
    p.offer(samples(0))
    p.close()
    assert Path(path).exists()


def test_a_broken_spill_never_stops_the_worker_and_memory_stays_bounded(tmp_path,
                                                                        drives) -> None:
    d = drives(tmp_path, config(rw(batch=10, flush=Duration(0.1)), capacity=100),
               lambda n, rows: ConnectionRefusedError(111, "Connection refused"))
    assert d.p._spill is not None
    d.p._spill.close()                         # every spill write now fails
    for tick in range(60):
        d.p.offer(samples(tick, n=5))
        d.run(0.05)                            # raises if a step fails
    # The hot buffer keeps what the spill refuses, up to its bound, then drops the oldest.
    d.until(lambda: d.p.status()["dropped"].get("buffer_full", 0) > 0)
    st = d.p.status()
    assert st["spill"]["errors"] > 0 and st["buffer"]["samples"] <= 100
    assert st["buffer"]["samples"] + sum(st["dropped"].values()) <= 300


def test_series_past_the_bounds_are_not_shipped_but_counted_and_logged(tmp_path,
                                                                         drives) -> None:
    # perfdata names that keep changing (a new series every run) must not grow
    # the registry without end: 20 series of that probe at most; the other
    # sources go on.
    cfg = Config(uplink=UplinkConfig(remote_write=(rw(flush=Duration(0.2)),),
                                     max_series=1000, max_series_per_source=20))
    with structlog.testing.capture_logs() as logs:
        d = drives(tmp_path, cfg)
        for k in range(100):
            d.p.offer([Sample(f"probe.flappy.label{k}", (), 1.0, T0 + k),
                       Sample(f"cpu.core{k % 5}", (), 2.0, T0 + k)])
        d.until(lambda: d.receiver()["sent"] >= 20 + 100)
        d.until(lambda: any(e["event"] == "series_limit_reached" for e in logs))
    names = Counter(name for name, _, _, _ in d.transport.rows())
    assert sum(1 for n in names if n.startswith("pharos_probe_flappy_")) == 20
    assert sum(v for n, v in names.items() if n.startswith("pharos_cpu_core")) == 100
    st = d.p.status()
    assert st["series"] == 25
    assert st["dropped"]["series_limit"] == 80
    [warning] = [e for e in logs if e["event"] == "series_limit_reached"]
    assert warning["refused_samples"] == {"probe.flappy": 80}


# -- the real parts: threads, HTTP, a scripted receiver on 127.0.0.1 -----------------------


class Running:
    """The pipeline's worker on a thread, as the supervisor would run it."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.beats: list[float] = []
        self.ctx = WorkerContext()
        original = self.ctx.beat

        def beat() -> None:
            self.beats.append(time.monotonic())
            original()

        self.ctx.beat = beat  # type: ignore[method-assign]
        [self.worker] = pipeline.workers()
        self.thread = threading.Thread(target=self.worker.run, args=(self.ctx,), daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.ctx.stop()
        self.thread.join(10)
        assert not self.thread.is_alive(), "the worker did not stop"


@pytest.fixture
def run():
    started: list[Running] = []

    def start(p: Pipeline) -> Running:
        r = Running(p)
        started.append(r)
        return r

    yield start
    for r in started:
        if r.thread.is_alive():
            r.stop()
        r.pipeline.close()


@pytest.fixture
def receivers():
    made: list[Receiver] = []

    def make(respond=None, port: int | None = None) -> Receiver:
        r = Receiver(respond, port=port) if respond else Receiver(port=port)
        made.append(r.start())
        return r

    yield make
    for r in made:
        r.stop()


def received(rec: Receiver, status: int | None = None) -> list[Row]:
    rows = []
    for r in rec.received(status):
        rows.extend(flat(decode_request(r.body)))
    return rows


def test_samples_arrive_with_wire_names_labels_values_and_protocol_headers(
        tmp_path, run, receivers) -> None:
    rec = receivers()
    p = Pipeline(config(rw(rec.url, headers={"X-Scope-OrgID": "t1"},
                           external_labels={"dc": "fra1"})),
                 state_dir=str(tmp_path), host="web1")
    run(p)
    for tick in range(3):
        p.offer(samples(tick, metric="disk.used_percent", mount="/"))
    assert wait_for(lambda: len(received(rec)) >= 9, 10)
    rows = received(rec)
    assert len(rows) == 9
    for name, labels, ts, value in rows:
        assert name == "pharos_disk_used_percent"
        assert labels["host"] == "web1" and labels["job"] == "pharosd"
        assert labels["dc"] == "fra1" and labels["mount"] == "/"
        assert value == (ts - 1_800_000_000_000) / 1000
    assert {r[1]["series"] for r in rows} == {"0", "1", "2"}
    req = rec.received()[0]
    assert req.path == "/api/v1/write" and req.method == "POST"
    h = req.headers
    assert h["content-encoding"] == "snappy"
    assert h["content-type"] == "application/x-protobuf"
    assert h["x-prometheus-remote-write-version"] == "0.1.0"
    assert h["user-agent"] == f"pharosd/{__version__}"
    assert h["x-scope-orgid"] == "t1"
    assert wait_for(lambda: p.status()["receivers"][0]["sent"] == 9, 5)
    st = p.status()["receivers"][0]
    assert st["up"] is True and st["last_success"] is not None


def test_basic_auth_from_a_password_file_is_sent_and_never_logged(tmp_path, run,
                                                                  receivers) -> None:
    rec = receivers()
    pw = tmp_path / "pw"
    pw.write_text("s3cret\n")
    with structlog.testing.capture_logs() as logs:
        p = Pipeline(config(rw(rec.url, basic_auth=BasicAuthConfig(username="u",
                                                                   password_file=str(pw)))),
                     state_dir=str(tmp_path / "state"), host="h")
        run(p)
        p.offer(samples(0))
        assert wait_for(lambda: rec.received(), 10)
    auth = rec.received()[0].headers["authorization"]
    assert auth == "Basic " + base64.b64encode(b"u:s3cret").decode()
    assert "s3cret" not in repr(logs) and "s3cret" not in repr(p.status())


def test_a_hung_receiver_does_not_hold_up_another_and_its_data_spills(tmp_path, run,
                                                                      receivers) -> None:
    good = receivers()
    hung = receivers(lambda r: HANG)
    p = Pipeline(config(rw(good.url, name="good"), rw(hung.url, name="hung", timeout=60.0,
                                                      flush=0.2)),
                 state_dir=str(tmp_path), host="h")
    run(p)
    for tick in range(10):
        p.offer(samples(tick))
    assert hung.wait_for(lambda reqs: reqs, 10)
    for tick in range(10, 30):               # while the first request hangs
        p.offer(samples(tick))

    def by_name() -> dict[str, dict[str, Any]]:
        return {r["name"]: r for r in p.status()["receivers"]}

    assert wait_for(lambda: by_name()["good"]["sent"] == 90, 10), by_name()
    assert len(received(good)) == 90
    assert wait_for(lambda: by_name()["hung"]["spill_samples"] > 0, 5)
    assert by_name()["hung"]["in_flight"] is True


def test_the_worker_beats_while_a_request_hangs_and_stops_promptly(tmp_path, run,
                                                                   receivers) -> None:
    rec = receivers(lambda r: HANG)
    p = Pipeline(config(rw(rec.url, timeout=60.0)), state_dir=str(tmp_path), host="h")
    r = run(p)
    p.offer(samples(0))
    assert wait_for(lambda: rec.received(), 5)
    mark = time.monotonic()
    assert wait_for(lambda: len([b for b in r.beats if b >= mark]) >= 3, 5)
    assert p.status()["receivers"][0]["in_flight"] is True
    r.stop()                                  # asserts the thread ended


def test_a_refused_connection_is_retried_and_the_data_arrives_once_it_listens(
        tmp_path, run, receivers) -> None:
    port = free_port()
    p = Pipeline(config(rw(f"http://127.0.0.1:{port}", max_backoff=Duration(1.0))),
                 state_dir=str(tmp_path), host="h")
    run(p)
    p.offer(samples(0))
    assert wait_for(lambda: p.status()["receivers"][0]["failures"] >= 1, 10)
    assert "Connection refused" in (p.status()["receivers"][0]["last_error"] or "")
    rec = receivers(port=port)
    assert wait_for(lambda: len(received(rec)) >= 3, 10)
    assert wait_for(lambda: p.status()["spill"]["samples"] == 0, 5)
    assert len(received(rec)) == 3
