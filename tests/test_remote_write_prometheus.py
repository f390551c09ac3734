"""The uplink against a real Prometheus 2.42 (--web.enable-remote-write-receiver).

* what is shipped is queryable with the right names, labels and values, and a
  series that stops is marked stale;
* samples older than Prometheus takes (500 "too old sample", 400 "out of
  bounds") are split off and counted, the rest of their batch is stored;
* a 60 s outage with a pipeline restart (close, then a new Pipeline on the same
  state_dir) in the middle: afterwards every sample produced is there, once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from peers import wait_for
from peers.prometheus import Prometheus

from pharosd.config.schema import Config
from pharosd.model import Sample
from pharosd.pipeline.config import RemoteWriteConfig, UplinkConfig
from pharosd.pipeline.worker import Pipeline
from pharosd.types import Duration
from pharosd.worker import WorkerContext

pytestmark = [pytest.mark.peer("prometheus"), pytest.mark.timeout(300)]


def config(url: str, **rw: object) -> Config:
    return Config(uplink=UplinkConfig(remote_write=(RemoteWriteConfig(url=url, **rw),),  # type: ignore[arg-type]
                                      stale_floor=Duration(0.5)))


class Running:
    def __init__(self, p: Pipeline) -> None:
        self.p = p
        self.ctx = WorkerContext()
        [w] = p.workers()
        self.t = threading.Thread(target=w.run, args=(self.ctx,), daemon=True)
        self.t.start()

    def stop(self) -> None:
        self.ctx.stop()
        self.t.join(10)
        assert not self.t.is_alive()


@pytest.fixture
def prom(tmp_path: Path) -> Iterator[Prometheus]:
    p = Prometheus(tmp_path / "prom")
    p.start()
    try:
        yield p
    finally:
        p.stop()


@pytest.fixture
def pipelines(tmp_path: Path):
    made: list[tuple[Pipeline, Running]] = []

    def start(url: str, **rw: object) -> tuple[Pipeline, Running]:
        p = Pipeline(config(url, **rw), state_dir=str(tmp_path / "state"), host="web1")
        r = Running(p)
        made.append((p, r))
        return p, r

    yield start
    for p, r in made:
        if r.t.is_alive():
            r.stop()
        p.close()


def test_shipped_samples_are_queryable_and_a_stopped_series_goes_stale(prom, pipelines) -> None:
    p, _ = pipelines(prom.write_url)
    t0 = time.time()
    for k in range(8):
        now = t0 + 0.2 * k
        batch = [Sample("memory.used_percent", (), 40.0 + k, now),
                 Sample("net.rx_bytes_per_second", (("interface", "eth0"),), 1e6, now)]
        if k < 3:
            batch.append(Sample("disk.used_percent", (("mount", "/mnt/usb"),), 12.5, now))
        p.offer(batch)
        time.sleep(0.2)
    end = t0 + 1.4
    def newest() -> float | None:
        q = prom.query("pharos_memory_used_percent", at=end)
        return float(q[0]["value"][1]) if q else None

    assert wait_for(lambda: newest() == 47.0, 20), newest()
    [mem] = prom.query("pharos_memory_used_percent", at=end)
    assert mem["metric"] == {"__name__": "pharos_memory_used_percent", "host": "web1",
                             "job": "pharosd"}
    [net] = prom.query("pharos_net_rx_bytes_per_second", at=end)
    assert net["metric"]["interface"] == "eth0" and float(net["value"][1]) == 1e6
    raw = prom.samples("pharos_memory_used_percent", t0 - 1, end)
    assert [v for _, v in next(iter(raw.values()))] == [40.0 + k for k in range(8)]
    # /mnt/usb went away after 0.4 s: its stale marker hides it from later queries.
    assert wait_for(lambda: p.status()["stale_markers"] >= 1, 10)
    assert prom.query("pharos_disk_used_percent", at=t0 + 0.45)
    assert wait_for(lambda: prom.query("pharos_disk_used_percent", at=time.time()) == [], 10)


def test_too_old_samples_are_split_off_and_the_rest_is_stored(tmp_path) -> None:
    with Prometheus(tmp_path / "prom", ooo_window="10m") as prom:
        p = Pipeline(config(prom.write_url), state_dir=str(tmp_path / "state"), host="web1")
        r = Running(p)
        try:
            now = time.time()
            p.offer([Sample("head.value", (), 1.0, now)])     # the head is now
            assert wait_for(lambda: p.status()["sent"] == 1, 20)
            old = [Sample("mixed.value", (("i", str(i)),), float(i), now - 7200 + i)
                   for i in range(100)]
            recent = [Sample("mixed.value", (("i", str(i)),), float(i), now - 300 + i)
                      for i in range(100)]
            p.offer(old + recent)
            assert wait_for(lambda: p.status()["dropped"].get("too_old") == 100, 30), \
                p.status()
            assert wait_for(lambda: p.status()["sent"] == 101, 10)
            st = p.status()["receivers"][0]
            assert st["requests"] <= 30 and st["retried"] == 0
        finally:
            r.stop()
            p.close()
        got = prom.samples("pharos_mixed_value", now - 8000, now)
        assert sorted(v for vals in got.values() for _, v in vals) == [float(i) for i in range(100)]
        assert all(t >= now - 301 for vals in got.values() for t, _ in vals)


def test_without_an_out_of_order_window_out_of_bounds_is_split_off_too(tmp_path) -> None:
    with Prometheus(tmp_path / "prom", ooo_window=None) as prom:
        p = Pipeline(config(prom.write_url), state_dir=str(tmp_path / "state"), host="web1")
        r = Running(p)
        try:
            now = time.time()
            p.offer([Sample("a.value", (), 1.0, now)])
            assert wait_for(lambda: p.status()["sent"] == 1, 20)
            p.offer([Sample("b.value", (), 2.0, now - 7200), Sample("b.value", (), 3.0, now)])
            assert wait_for(lambda: p.status()["dropped"] == {"too_old": 1}, 20), p.status()
            assert p.status()["sent"] == 2
        finally:
            r.stop()
            p.close()
        [b] = prom.query("pharos_b_value", at=now)
        assert float(b["value"][1]) == 3.0


@pytest.mark.slow
def test_a_60s_outage_with_a_restart_loses_no_sample(tmp_path, prom) -> None:
    series = 10
    state = str(tmp_path / "state")
    cfg = config(prom.write_url, max_backoff=5.0)
    produced: list[tuple[str, int]] = []
    lock = threading.Lock()
    current: list[Pipeline] = [Pipeline(cfg, state_dir=state, host="web1")]
    running = Running(current[0])
    stop = threading.Event()

    def produce() -> None:
        while not stop.is_set():
            now = time.time()
            with lock:
                current[0].offer([Sample("outage.value", (("series", str(i)),), now, now)
                                  for i in range(series)])
                produced.extend((str(i), int(now * 1000 + 0.5)) for i in range(series))
            stop.wait(0.25)

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    t_start = time.time()
    try:
        assert wait_for(lambda: current[0].status()["sent"] > 0, 20)
        prom.stop()                                            # the outage begins
        time.sleep(30)
        assert current[0].status()["receivers"][0]["up"] is False
        with lock:                                             # restart mid-outage
            running.stop()
            current[0].close()
            current[0] = Pipeline(cfg, state_dir=state, host="web1")
            assert current[0].status()["spill"]["samples"] > 0
            running = Running(current[0])
        time.sleep(30)
        prom.start()                                           # the outage ends
        assert wait_for(lambda: current[0].status()["spill"]["samples"] == 0
                        and current[0].status()["receivers"][0]["up"], 90)
        time.sleep(2)
        stop.set()
        producer.join(5)
        assert wait_for(lambda: current[0].status()["buffer"]["samples"] == 0
                        and current[0].status()["spill"]["samples"] == 0, 30)
        time.sleep(1)
    finally:
        stop.set()
        running.stop()
        current[0].close()
    t_end = time.time() + 1
    got = prom.samples("pharos_outage_value", t_start - 5, t_end)
    have = sorted((dict(k)["series"], round(t * 1000)) for k, vals in got.items()
                  for t, _ in vals)
    assert len(have) == len(produced) and sorted(produced) == have
    counts = {dict(k)["series"]: len(v) for k, v in got.items()}
    assert counts == {str(i): len(produced) // series for i in range(series)}
