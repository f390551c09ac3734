"""Drive a real Pipeline in its own process, for tests that SIGKILL or restart it.

    python tests/pipeline_driver.py --state DIR --url URL --run NAME
        [--series 20] [--hz 10] [--batch 2000] [--flush 1s] [--max-backoff 30s]

Every tick (``hz`` per second) offers one sample per series: metric
``driver.value`` with labels ``{series, run}``, value = the tick number,
timestamp = the tick's wall time. After each offer the tick's timestamp (ms)
is appended to ``DIR/produced-NAME.txt`` and flushed, so a test knows what
was produced even after ``kill -9``. The config goes through the real
loader. Stdout gets JSON lines: ``started`` (after the spill opened, with
its contents) and ``status`` twice a second. SIGTERM stops the worker,
closes the pipeline (memory -> spill) and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pharosd.config.loader import parse_config
from pharosd.logs import configure
from pharosd.model import Sample
from pharosd.pipeline.worker import Pipeline
from pharosd.worker import WorkerContext


def emit(event: str, **kw: object) -> None:
    sys.stdout.write(json.dumps({"event": event, "t": time.time(), **kw}) + "\n")
    sys.stdout.flush()


def brief(status: dict) -> dict:
    r = status["receivers"][0]
    return {"spill_samples": status["spill"]["samples"], "spill_rows": status["spill"]["rows"],
            "buffer": status["buffer"]["samples"], "sent": r["sent"], "up": r["up"],
            "dropped": status["dropped"], "retried": r["retried"]}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--state", required=True)
    ap.add_argument("--url", required=True)
    ap.add_argument("--run", required=True)
    ap.add_argument("--series", type=int, default=20)
    ap.add_argument("--hz", type=float, default=10.0)
    ap.add_argument("--batch", type=int, default=2000)
    ap.add_argument("--flush", default="1s")
    ap.add_argument("--max-backoff", default="30s")
    args = ap.parse_args()
    configure("info", "json", sys.stderr)
    cfg = parse_config(f"""
state_dir: {args.state}
uplink:
  remote_write:
    - url: {args.url}
      name: central
      batch: {args.batch}
      flush: {args.flush}
      max_backoff: {args.max_backoff}
""")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    pipeline = Pipeline(cfg, state_dir=args.state, host="driver")
    emit("started", run=args.run, pid=os.getpid(), **brief(pipeline.status()))
    ctx = WorkerContext()
    [worker] = pipeline.workers()
    thread = threading.Thread(target=worker.run, args=(ctx,), daemon=True)
    thread.start()
    produced = open(Path(args.state) / f"produced-{args.run}.txt", "a")  # noqa: SIM115
    tick = 0
    start = time.monotonic()
    next_status = start
    while not stop.is_set():
        now = time.time()
        pipeline.offer([Sample("driver.value", (("run", args.run), ("series", str(i))),
                               float(tick), now) for i in range(args.series)])
        produced.write(f"{int(now * 1000.0 + 0.5)}\n")
        produced.flush()
        tick += 1
        if time.monotonic() >= next_status:
            next_status += 0.5
            emit("status", **brief(pipeline.status()))
        stop.wait(max(0.0, start + tick / args.hz - time.monotonic()))
    ctx.stop()
    thread.join(5)
    pipeline.close()
    emit("closed", **brief(pipeline.status()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
