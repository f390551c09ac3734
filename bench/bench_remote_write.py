"""Uplink benchmarks: encode + compress, spill write and drain, catch-up after a 1 h outage.

Usage: ``python bench/bench_remote_write.py [--seconds S] [--series N] [--no-receivers]
[--outage SECONDS] [--every SECONDS] [--only victoria-metrics|prometheus] [--skip-micro]``

1. Encode + compress (remote_write WriteRequest, snappy block), one core: samples/s
   for 2000-sample requests of 200 series x 10 samples (a host's backlog) and of
   2000 series x 1 sample (one collection of a big host), with the label cache
   warm, and once cold (the first request after a start).
2. Spill (SQLite WAL, synchronous=FULL): write 2000-sample batches, then drain
   them oldest first (read, merge, delete) as a replay does: samples/s.
3. Catch-up after a one-hour outage at the default config (interval 10 s,
   batch 2000, flush 1 s; ``--series`` series, 200 by default): a spill holding
   one hour as the pipeline writes it during an outage (one row per collection),
   then a Pipeline with live data flowing replays it into a real VictoriaMetrics
   and a real Prometheus (out_of_order_time_window 6h) on 127.0.0.1: seconds until
   the spill is empty. ``--outage 3600 --every 1`` is a one-hour outage at a 1 s
   interval (720,000 samples for 200 series). While it replays, live samples are
   offered every second (the collection interval); the lag from a live sample's
   timestamp to the acknowledgement of the request that carried it is reported
   (max and median), as is the number of samples the receiver holds afterwards.

Run by hand (never in the test suite); figures go in docs/uplink.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from socket import socket
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pharosd.config.schema import Config
from pharosd.model import Sample
from pharosd.pipeline import compression
from pharosd.pipeline.batch import Batch
from pharosd.pipeline.config import RemoteWriteConfig, UplinkConfig
from pharosd.pipeline.remote_write import LabelCache, encode_write_request
from pharosd.pipeline.spill import Spill
from pharosd.pipeline.worker import Pipeline
from pharosd.worker import WorkerContext

NOW = 1_800_000_000.0
EXTERNAL = {"host": "web-01.example", "job": "pharosd"}


def key(i: int) -> tuple[str, tuple[tuple[str, str], ...]]:
    kinds = ("disk.used_percent", "network.rx_bytes_per_second", "cpu.percent",
             "memory.used_percent", "diskio.read_bytes_per_second")
    return (kinds[i % len(kinds)], (("device", f"dev{i}"), ("mount", f"/srv/vol{i}")))


def batch(series: int, per_series: int, t0_ms: int) -> Batch:
    return Batch.of([(key(s), t0_ms + 10_000 * k, 12.5 + s + k * 0.25)
                     for k in range(per_series) for s in range(series)]).by_time()


def rate(fn, samples: int, seconds: float) -> float:
    n = 0
    start = time.process_time()
    while time.process_time() - start < seconds:
        fn()
        n += samples
    return n / (time.process_time() - start)


def bench_encode(seconds: float) -> None:
    codec = compression.codec()
    print(f"## encode + compress (one core, CPU time; snappy via {codec.name})")
    for label, b in (("200 series x 10 samples", batch(200, 10, int(NOW * 1000))),
                     ("2000 series x 1 sample", batch(2000, 1, int(NOW * 1000)))):
        cache = LabelCache(EXTERNAL)
        body = encode_write_request(b, cache)
        packed = codec.compress(body)
        enc = rate(lambda b=b, c=cache: encode_write_request(b, c), len(b), seconds)
        both = rate(lambda b=b, c=cache: codec.compress(encode_write_request(b, c)), len(b),
                    seconds)
        cold = rate(lambda b=b: codec.compress(encode_write_request(b, LabelCache(EXTERNAL))),
                    len(b), seconds)
        print(f"{label:<26} encode {enc:>10,.0f}/s   encode+compress {both:>10,.0f}/s   "
              f"cold label cache {cold:>10,.0f}/s   ({len(body) / len(b):.1f} -> "
              f"{len(packed) / len(b):.1f} bytes/sample)")


def bench_spill(tmp: Path, rows: int) -> None:
    print("## spill (SQLite WAL, synchronous=FULL)")
    sp = Spill(str(tmp / "spill.db"), 4 << 30, 1e9)
    sp.open()
    batches = [batch(200, 10, int(NOW * 1000) + 100_000 * i) for i in range(rows)]
    start = time.perf_counter()
    for b in batches:
        sp.put("bench", b)
    wrote = time.perf_counter() - start
    start = time.perf_counter()
    drained = 0
    while True:
        got = sp.oldest("bench", 2000)
        if got is None:
            break
        ids, b = got
        drained += len(b)
        sp.delete(ids)
    drain = time.perf_counter() - start
    n = rows * 2000
    print(f"write {n / wrote:>10,.0f} samples/s ({rows / wrote:,.0f} batches/s)   "
          f"drain {drained / drain:>10,.0f} samples/s")
    sp.close()


def free_port() -> int:
    with socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"receiver exited: {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"receiver not ready: {url}")


def start_receiver(kind: str, tmp: Path) -> tuple[subprocess.Popen[bytes], str] | None:
    port = free_port()
    log = open(tmp / f"{kind}.log", "wb")  # noqa: SIM115
    if kind == "victoria-metrics":
        if not shutil.which("victoria-metrics"):
            return None
        proc = subprocess.Popen(["victoria-metrics", f"-httpListenAddr=127.0.0.1:{port}",
                                 f"-storageDataPath={tmp / 'vm'}", "-retentionPeriod=100y",
                                 "-search.latencyOffset=0s"], stdout=log, stderr=log)
        wait_ready(f"http://127.0.0.1:{port}/health", proc)
    else:
        if not shutil.which("prometheus"):
            return None
        conf = tmp / "prometheus.yml"
        conf.write_text("scrape_configs: []\nstorage: {tsdb: {out_of_order_time_window: 6h}}\n")
        proc = subprocess.Popen(["prometheus", f"--config.file={conf}",
                                 f"--storage.tsdb.path={tmp / 'prom'}",
                                 f"--web.listen-address=127.0.0.1:{port}",
                                 "--web.enable-remote-write-receiver"], stdout=log, stderr=log)
        wait_ready(f"http://127.0.0.1:{port}/-/ready", proc)
    return proc, f"http://127.0.0.1:{port}/api/v1/write"


def bench_catch_up(kind: str, tmp: Path, series: int, outage: float = 3600.0,
                   every: float = 10.0) -> None:
    started = start_receiver(kind, tmp)
    if started is None:
        print(f"{kind:<17} not installed")
        return
    proc, url = started
    try:
        cfg = Config(uplink=UplinkConfig(remote_write=(RemoteWriteConfig(url=url,
                                                                         name="central"),)))
        state = tmp / f"state-{kind}"
        now = time.time()
        sp = Spill(str(state / "spill.db"), cfg.spill.max_size, cfg.spill.max_age)
        sp.open()
        first = now - outage
        rows = int(outage / every)
        for k in range(rows):             # one row per collection, as an outage spills
            t_ms = int((first + every * k) * 1000)
            sp.put("central", Batch.of([(key(s), t_ms, float(k)) for s in range(series)]))
        sp.close()
        p = Pipeline(cfg, state_dir=str(state), host="bench")
        backlog = p.status()["spill"]["samples"]
        ctx = WorkerContext()
        [w] = p.workers()
        stop = threading.Event()

        live_from_ms = int(now * 1000)
        lags: list[float] = []
        lane = p._lanes["central"]
        finish = lane._finish

        def timed_finish(req: Any, at: float) -> None:    # the lag of live samples
            if req.verdict().name == "OK" and req.part.max_ts >= live_from_ms:
                acked = time.time() * 1000
                lags.extend((acked - t) / 1000 for t in req.part.ts if t >= live_from_ms)
            finish(req, at)

        lane._finish = timed_finish       # type: ignore[method-assign]

        def live() -> None:               # the host keeps collecting meanwhile
            while not stop.is_set():
                t = time.time()
                p.offer([Sample(key(s)[0], key(s)[1], 1.0, t) for s in range(series)])
                stop.wait(min(every, 1.0))

        producer = threading.Thread(target=live, daemon=True)
        start = time.perf_counter()
        cpu0 = time.process_time()
        producer.start()
        worker = threading.Thread(target=w.run, args=(ctx,), daemon=True)
        worker.start()
        while p.status()["spill"]["samples"] > 0:
            time.sleep(0.01)
        took = time.perf_counter() - start
        cpu = time.process_time() - cpu0
        stop.set()
        ctx.stop()
        worker.join(10)
        st = p.status()["receivers"][0]
        p.close()
        lags.sort()
        lag = (f"live lag max {lags[-1]:.2f} s, median {lags[len(lags) // 2]:.2f} s"
               if lags else "no live sample acknowledged during the replay")
        print(f"{kind:<17} {backlog:,} samples ({outage / 3600:g} h x {series} series at "
              f"{every:g} s) replayed in {took:.2f} s ({backlog / took:,.0f} samples/s, "
              f"{st['requests']} requests, {cpu:.2f} s CPU), dropped {st['dropped'] or 0}; "
              f"{lag}")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--series", type=int, default=200)
    ap.add_argument("--no-receivers", action="store_true")
    ap.add_argument("--skip-micro", action="store_true")
    ap.add_argument("--outage", type=float, default=3600.0)
    ap.add_argument("--every", type=float, default=10.0)
    ap.add_argument("--only", choices=("victoria-metrics", "prometheus"))
    args = ap.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus")
    if not args.skip_micro:
        bench_encode(args.seconds)
        with tempfile.TemporaryDirectory() as d:
            bench_spill(Path(d), 200)
    if not args.no_receivers:
        print(f"## catch-up after a {args.outage:g} s outage at {args.every:g} s")
        for kind in ("victoria-metrics", "prometheus"):
            if args.only and kind != args.only:
                continue
            with tempfile.TemporaryDirectory() as d:
                bench_catch_up(kind, Path(d), args.series, args.outage, args.every)
    return 0


if __name__ == "__main__":
    sys.exit(main())
