"""The Pipeline facade against a scripted HTTP receiver on 127.0.0.1 (peers.receiver).

The receiver records every request, so these tests see what the uplink sends,
how often, and when: retries, backoff, splits, replays. The real receivers
(Prometheus, VictoriaMetrics) are in test_remote_write_*.py.
"""

from __future__ import annotations

import base64
import itertools
import struct
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import structlog
from peers import free_port, wait_for
from peers.receiver import HANG, Receiver, Request
from peers.remote_write import decode_request, flat

from pharosd import __version__
from pharosd.config.schema import Config
from pharosd.model import Sample
from pharosd.pipeline.config import (
    BasicAuthConfig,
    BufferConfig,
    RemoteWriteConfig,
    SpillConfig,
    UplinkConfig,
)
from pharosd.pipeline.delivery import Backoff
from pharosd.pipeline.remote_write import STALE_NAN_BITS
from pharosd.pipeline.telemetry import TelemetrySource
from pharosd.pipeline.worker import Pipeline
from pharosd.types import Duration
from pharosd.worker import WorkerContext

pytestmark = pytest.mark.timeout(180)


def config(*receivers: RemoteWriteConfig, capacity: int = 100_000,
           stale_floor: float = 5.0, spill: SpillConfig | None = None) -> Config:
    return Config(uplink=UplinkConfig(remote_write=tuple(receivers),
                                      stale_floor=Duration(stale_floor)),
                  buffer=BufferConfig(capacity=capacity), spill=spill or SpillConfig())


def rw(url: str, **kw: Any) -> RemoteWriteConfig:
    return RemoteWriteConfig(url=url + "/api/v1/write", **kw)


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
    pipelines: list[Pipeline] = []

    def start(p: Pipeline) -> Running:
        r = Running(p)
        started.append(r)
        pipelines.append(p)
        return r

    yield start
    for r in started:
        if r.thread.is_alive():
            r.stop()
    for p in pipelines:
        p.close()


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


def samples(tick: int, n: int = 3, t0: float | None = None, metric: str = "test.value",
            **labels: str) -> list[Sample]:
    t = (t0 if t0 is not None else 1_800_000_000.0) + tick
    return [Sample(metric, tuple(sorted({"series": str(i), **labels}.items())), float(tick), t)
            for i in range(n)]


def received(rec: Receiver, status: int | None = None) -> list[tuple[str, dict, int, float]]:
    rows = []
    for r in rec.received(status):
        rows.extend(flat(decode_request(r.body)))
    return rows


def test_without_receivers_the_pipeline_does_nothing(tmp_path) -> None:
    p = Pipeline(Config(), state_dir=str(tmp_path), host="h")
    assert not p.enabled and p.workers() == []
    p.offer(samples(0))
    assert p.status()["enabled"] is False
    p.close()
    assert list(tmp_path.iterdir()) == []


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


def test_each_series_is_in_time_order_within_a_request(tmp_path, run, receivers) -> None:
    rec = receivers()
    p = Pipeline(config(rw(rec.url)), state_dir=str(tmp_path), host="h")
    for tick in (5, 3, 4, 1, 2):            # offered out of order, one request
        p.offer(samples(tick, n=2))
    run(p)
    assert wait_for(lambda: len(received(rec)) >= 10, 10)
    [req] = rec.received()
    for _, series_samples in decode_request(req.body):
        tss = [t for t, _, _ in series_samples]
        assert tss == sorted(tss) and len(tss) == 5


def test_a_400_is_logged_counted_and_dropped_without_retries(tmp_path, run,
                                                             receivers) -> None:
    rec = receivers(lambda r: (400, {}, b"invalid label set: bad things"))
    p = Pipeline(config(rw(rec.url)), state_dir=str(tmp_path), host="h")
    with structlog.testing.capture_logs() as logs:
        run(p)
        for tick in range(4):
            p.offer(samples(tick))
            assert wait_for(lambda: len(rec.received()) >= tick + 1, 10)  # noqa: B023
        time.sleep(3.0)                     # a retry, if any, would come within this
    assert len(rec.received()) == 4, "one request per batch, never a retry"
    st = p.status()
    assert st["dropped"] == {"rejected": 12}
    assert st["receivers"][0]["retried"] == 0 and st["spill"]["samples"] == 0
    dropped_logs = [e for e in logs if e["event"] == "uplink_batch_dropped"]
    assert dropped_logs and "bad things" in dropped_logs[0]["body"]
    assert dropped_logs[0]["status"] == 400


def test_a_500_gets_backoff_growing_from_1s_toward_30s_and_loses_nothing(
        tmp_path, run, receivers) -> None:
    answer = {"status": 500}
    rec = receivers(lambda r: (answer["status"], {}, b"internal error"))
    p = Pipeline(config(rw(rec.url)), state_dir=str(tmp_path), host="h")
    run(p)
    p.offer(samples(0))
    time.sleep(33.0)        # 1 + 2 + 4 + 8 + 16 (each +-20 %) fits; the next does not
    times = [r.at for r in rec.received()]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    nominal = Backoff(1.0, 30.0)
    assert 4 <= len(times) <= 7, gaps
    for k, gap in enumerate(gaps):          # lower bounds only: never faster than the schedule
        assert gap >= max(1.0, 0.8 * nominal.nominal(k)) - 0.05, (k, gaps)
    assert gaps[-1] > 4 * gaps[0]
    st = p.status()["receivers"][0]
    assert st["up"] is False and st["retried"] >= 3 * len(times) - 3
    assert st["spill_samples"] == 3, "the failed batch waits in the spill"
    # Receiver fixed, backoff shortened by a reload: the spilled batch arrives once.
    answer["status"] = 204
    p.reconfigure(config(rw(rec.url, max_backoff=1.0)))
    assert wait_for(lambda: p.status()["receivers"][0]["sent"] == 3
                    and p.status()["spill"]["samples"] == 0, 10), p.status()
    history = [(r.status, round(r.at, 2), len(flat(decode_request(r.body))))
               for r in rec.received()]
    assert len(received(rec, 204)) == 3, history


def test_429_honours_retry_after(tmp_path, run, receivers) -> None:
    calls = Counter[str]()

    def respond(r: Request) -> tuple[int, dict[str, str], bytes]:
        calls["n"] += 1
        return (429, {"Retry-After": "3"}, b"slow down") if calls["n"] == 1 else (204, {}, b"")

    rec = receivers(respond)
    p = Pipeline(config(rw(rec.url)), state_dir=str(tmp_path), host="h")
    run(p)
    p.offer(samples(0))
    assert wait_for(lambda: len(rec.received()) >= 2, 15)
    first, second = rec.received()[:2]
    assert second.at - first.at >= 2.9


def prometheus_model(cutoff_ms: int):
    """Prometheus 2.42 with an out-of-order window: one too-old sample fails the request."""
    def respond(r: Request) -> tuple[int, dict[str, str], bytes]:
        rows = flat(decode_request(r.body))
        if any(ts < cutoff_ms for _, _, ts, _ in rows):
            return 500, {}, b"too old sample\n"
        return 204, {}, b""
    return respond


def test_too_old_samples_are_split_off_and_counted_without_a_storm(tmp_path, run,
                                                                   receivers) -> None:
    now = time.time()
    rec = receivers(prometheus_model(int((now - 3600) * 1000)))
    p = Pipeline(config(rw(rec.url)), state_dir=str(tmp_path), host="h")
    old = [s for k in range(50) for s in samples(k, t0=now - 7200)]
    new = [s for k in range(50) for s in samples(k, t0=now - 600)]
    p.offer(old + new)
    run(p)
    assert wait_for(lambda: p.status()["dropped"] == {"too_old": 150}, 20)
    assert p.status()["receivers"][0]["sent"] == 150
    assert len(rec.received()) <= 30
    accepted = received(rec, 204)
    assert len(accepted) == 150 and min(r[2] for r in accepted) >= (now - 600) * 1000 - 1
    # What the receiver taught is remembered: more old samples cost no request.
    before = len(rec.received())
    p.offer([s for k in range(10) for s in samples(k, t0=now - 7300)] + samples(0, t0=now))
    assert wait_for(lambda: p.status()["receivers"][0]["sent"] == 153, 10)
    assert len(rec.received()) == before + 1
    assert p.status()["dropped"] == {"too_old": 180}
    assert p.status()["receivers"][0]["retried"] == 0


def test_an_outage_spills_and_every_sample_arrives_once_afterwards(tmp_path, run,
                                                                   receivers) -> None:
    port = free_port()
    p = Pipeline(config(rw(f"http://127.0.0.1:{port}", max_backoff=2.0)),
                 state_dir=str(tmp_path), host="h")
    run(p)
    produced = 0
    for tick in range(40):                  # 4 s with nobody listening
        p.offer(samples(tick, n=5))
        produced += 5
        time.sleep(0.1)
    st = p.status()["receivers"][0]
    assert st["up"] is False and st["spill_samples"] > 0
    rec = receivers(port=port)
    for tick in range(40, 50):              # live data keeps coming during the replay
        p.offer(samples(tick, n=5))
        produced += 5
        time.sleep(0.1)
    assert wait_for(lambda: len(received(rec)) >= produced, 30)
    assert wait_for(lambda: p.status()["spill"]["samples"] == 0, 10)
    time.sleep(1.0)
    rows = received(rec)
    keys = Counter((r[1]["series"], r[2]) for r in rows)
    assert len(keys) == produced and max(keys.values()) == 1


def test_close_moves_memory_to_the_spill_and_the_next_pipeline_sends_it(
        tmp_path, run, receivers) -> None:
    port = free_port()
    cfg = config(rw(f"http://127.0.0.1:{port}"))
    first = Pipeline(cfg, state_dir=str(tmp_path), host="h")
    for tick in range(20):
        first.offer(samples(tick, n=5))
    assert first.status()["buffer"]["samples"] == 100
    first.close()                            # SIGTERM: nothing in memory is lost
    rec = receivers(port=port)
    second = Pipeline(cfg, state_dir=str(tmp_path), host="h")
    assert second.status()["spill"]["samples"] == 100
    run(second)
    assert wait_for(lambda: len(received(rec)) >= 100, 15)
    assert sorted((r[1]["series"], r[2]) for r in received(rec)) == sorted(
        (s.label("series"), round(s.ts * 1000)) for t in range(20) for s in samples(t, n=5))


def test_reconfigure_keeps_buffered_samples_and_applies_new_labels(tmp_path, run,
                                                                   receivers) -> None:
    rec = receivers()
    p = Pipeline(config(rw(rec.url, name="main")), state_dir=str(tmp_path), host="h")
    for tick in range(10):
        p.offer(samples(tick))
    p.reconfigure(config(rw(rec.url, name="main", batch=7, external_labels={"dc": "x"})))
    assert p.status()["buffer"]["samples"] == 30
    run(p)
    assert wait_for(lambda: len(received(rec)) >= 30, 10)
    assert all(r[1]["dc"] == "x" for r in received(rec))
    assert all(len(flat(decode_request(r.body))) <= 7 for r in rec.received())


def test_a_removed_receiver_drops_its_backlog_counted_and_a_new_one_gets_new_data(
        tmp_path, run, receivers) -> None:
    rec = receivers()
    p = Pipeline(config(rw(rec.url, name="old")), state_dir=str(tmp_path), host="h")
    for tick in range(5):
        p.offer(samples(tick))
    p.reconfigure(config(rw(rec.url, name="new")))
    assert p.status()["dropped"] == {"receiver_removed": 15}
    p.offer(samples(9))
    run(p)
    assert wait_for(lambda: len(received(rec)) >= 3, 10)
    time.sleep(0.5)
    assert [r[2] for r in received(rec)] == [1_800_000_009_000] * 3


def test_a_hung_receiver_does_not_hold_up_another_and_its_data_spills(tmp_path, run,
                                                                      receivers) -> None:
    good = receivers()
    hung = receivers(lambda r: HANG)
    p = Pipeline(config(rw(good.url, name="good"), rw(hung.url, name="hung", timeout=60.0,
                                                      flush=0.2)),
                 state_dir=str(tmp_path), host="h")
    run(p)
    for tick in range(30):
        p.offer(samples(tick))
        time.sleep(0.05)
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
    time.sleep(3.0)
    assert len([b for b in r.beats if b >= mark]) >= 3
    r.stop()                                  # asserts the thread ended


def test_a_series_that_stops_gets_exactly_one_stale_marker(tmp_path, run, receivers) -> None:
    rec = receivers()
    p = Pipeline(config(rw(rec.url), stale_floor=0.5), state_dir=str(tmp_path), host="h")
    run(p)
    now = time.time()
    for tick in range(6):
        batch = [Sample("net.rx", (("interface", "eth9"),), 1.0, now + tick * 0.2),
                 Sample("net.rx", (("interface", "lo"),), 1.0, now + tick * 0.2)]
        p.offer(batch if tick < 3 else batch[1:])       # eth9 goes away after tick 2
        time.sleep(0.2)
    for tick in range(6, 16):
        p.offer([Sample("net.rx", (("interface", "lo"),), 1.0, now + tick * 0.2)])
        time.sleep(0.2)
    markers = [(labels["interface"], bits) for r in rec.received()
               for labels_list, ss in decode_request(r.body)
               for labels in [dict(labels_list)] for _, bits, _ in ss
               if bits == STALE_NAN_BITS]
    assert markers == [("eth9", STALE_NAN_BITS)]
    assert p.status()["stale_markers"] == 1


def test_a_full_hot_buffer_drops_the_oldest_counted(tmp_path) -> None:
    p = Pipeline(config(rw("http://127.0.0.1:9"), capacity=100), state_dir=str(tmp_path),
                 host="h")
    for tick in range(50):
        p.offer(samples(tick))
    st = p.status()
    assert st["buffer"]["samples"] == 100 and st["dropped"] == {"buffer_full": 50}
    p.close()


def test_offer_never_raises(tmp_path) -> None:
    p = Pipeline(config(rw("http://127.0.0.1:9")), state_dir=str(tmp_path), host="h")
    p.offer([object()])   # type: ignore[list-item]
    p.offer([Sample("m", (), "not a number", 1.0)])   # type: ignore[arg-type]
    assert p.status()["offer_errors"] == 2
    p.close()


def test_status_reports_buffer_spill_receivers_and_counters(tmp_path) -> None:
    p = Pipeline(config(rw("http://127.0.0.1:9", name="central")), state_dir=str(tmp_path),
                 host="h")
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


def test_telemetry_reports_pharosd_itself_and_is_shippable(tmp_path, run, receivers) -> None:
    rec = receivers()
    p = Pipeline(config(rw(rec.url, name="central")), state_dir=str(tmp_path), host="h")
    run(p)
    p.offer(samples(0))
    assert wait_for(lambda: p.status()["sent"] == 3, 10)
    src = TelemetrySource(p, lambda: {"restarts": 2.0}, every=10.0)
    assert (src.name, src.blocking, src.every) == ("self", False, 10.0)
    src.collect(time.time())
    got = {(s.metric, s.labels): s.value for s in src.collect(time.time())}
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
    p.offer(list(src.collect(time.time())))
    assert wait_for(lambda: any(r[0] == "pharos_pharosd_samples_sent_total"
                                for r in received(rec)), 10)


def test_the_stale_nan_survives_python_float_handling() -> None:
    from pharosd.pipeline.remote_write import stale_nan

    value = stale_nan()
    assert struct.pack("<d", value) == struct.pack("<Q", STALE_NAN_BITS)


def test_a_spill_path_in_the_config_is_used(tmp_path) -> None:
    path = tmp_path / "elsewhere" / "s.db"
    p = Pipeline(config(rw("http://127.0.0.1:9"), spill=SpillConfig(path=str(path))),
                 state_dir=str(tmp_path / "state"), host="h")
    p.offer(samples(0))
    p.close()
    assert Path(path).exists()


def test_a_broken_spill_never_stops_the_worker_and_memory_stays_bounded(tmp_path, run) -> None:
    p = Pipeline(config(rw(f"http://127.0.0.1:{free_port()}", batch=10, flush=0.1),
                        capacity=100), state_dir=str(tmp_path), host="h")
    assert p._spill is not None
    p._spill.close()                           # every spill write now fails
    r = run(p)
    for tick in range(60):
        p.offer(samples(tick, n=5))
        time.sleep(0.05)
    # The hot buffer keeps what the spill refuses, up to its bound, then drops the oldest.
    assert wait_for(lambda: p.status()["dropped"].get("buffer_full", 0) > 0, 10), p.status()
    st = p.status()
    assert r.thread.is_alive()
    assert st["spill"]["errors"] > 0 and st["buffer"]["samples"] <= 100
    assert st["buffer"]["samples"] + sum(st["dropped"].values()) <= 300


def test_series_past_the_bounds_are_not_shipped_but_counted_and_logged(
        tmp_path, run, receivers) -> None:
    # perfdata names that keep changing (a new series every run) must not grow
    # the registry without end: 20 series of that probe at most; the other
    # sources go on.
    rx = receivers()
    cfg = Config(uplink=UplinkConfig(remote_write=(rw(rx.url, flush=Duration(0.2)),),
                                     max_series=1000, max_series_per_source=20))
    p = Pipeline(cfg, state_dir=str(tmp_path), host="h")
    with structlog.testing.capture_logs() as logs:
        for k in range(100):
            p.offer([Sample(f"probe.flappy.label{k}", (), 1.0, 1_800_000_000.0 + k),
                     Sample(f"cpu.core{k % 5}", (), 2.0, 1_800_000_000.0 + k)])
        run(p)
        assert wait_for(lambda: p.status()["receivers"][0]["sent"] >= 20 + 100, 20)
        assert wait_for(lambda: any(e["event"] == "series_limit_reached" for e in logs), 10)
    names = Counter(name for name, _, _, _ in received(rx))
    assert sum(1 for n in names if n.startswith("pharos_probe_flappy_")) == 20
    assert sum(v for n, v in names.items() if n.startswith("pharos_cpu_core")) == 100
    st = p.status()
    assert st["series"] == 25
    assert st["dropped"]["series_limit"] == 80
    [warning] = [e for e in logs if e["event"] == "series_limit_reached"]
    assert warning["refused_samples"] == {"probe.flappy": 80}
