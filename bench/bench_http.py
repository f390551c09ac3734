"""CPU and RSS of pharosd with its HTTP listener, beside prometheus-node-exporter.

Both run at once on 127.0.0.1 (pharosd on the embedded default config plus
``http.listen``; node_exporter with its Debian defaults). Phase 1: neither
is scraped (idle listener). Phase 2: both are scraped once a second, as
Prometheus would (a fresh HTTP/1.1 keep-alive connection each, Prometheus'
Accept header), by a thread of this script. CPU is user+system seconds
over wall seconds, % of one core; RSS is sampled every second (peak).
Usage: ``python bench/bench_http.py [SECONDS_PER_PHASE]`` (default 60).
Needs prometheus-node-exporter (Debian package). Figures in docs/benchmarks.md.
"""

from __future__ import annotations

import http.client
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
from run_bench import daemon_env, free_port, measure  # bench/ is this script's sys.path[0]

ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
          "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")


def wait_http(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/metrics")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"nothing serves /metrics on port {port}")


def scraper(ports: dict[str, int], stop: threading.Event, sizes: dict[str, int]) -> None:
    conns = {k: http.client.HTTPConnection("127.0.0.1", p, timeout=10) for k, p in ports.items()}
    nxt = time.monotonic()
    while not stop.is_set():
        for k, conn in conns.items():
            conn.request("GET", "/metrics", headers={"Accept": ACCEPT})
            sizes[k] = len(conn.getresponse().read())
        nxt += 1.0
        stop.wait(max(0.0, nxt - time.monotonic()))


def main() -> int:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 60.0
    exporter = shutil.which("prometheus-node-exporter")
    if exporter is None:
        sys.exit("needs prometheus-node-exporter (apt-get install prometheus-node-exporter)")
    ports = {"pharosd": free_port(), "node_exporter": free_port()}
    with tempfile.TemporaryDirectory() as tmp:
        env = daemon_env(tmp)
        default = subprocess.run([sys.executable, "-c", "from pharosd.config import "
                                  "default_config_text as d; print(d())"],
                                 capture_output=True, text=True, check=True).stdout
        conf = Path(tmp) / "pharos.yaml"
        conf.write_text(default + f"\nhttp: {{listen: '127.0.0.1:{ports['pharosd']}'}}\n")
        daemon = subprocess.Popen([sys.executable, "-m", "pharosd", "run", "-c", str(conf),
                                   "--log-format", "logfmt"], env=env, cwd=tmp,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        node = subprocess.Popen([exporter, f"--web.listen-address=127.0.0.1:"
                                           f"{ports['node_exporter']}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for port in ports.values():
                wait_http(port)
            time.sleep(3.0)         # start-up is not steady state
            procs = {"pharosd": psutil.Process(daemon.pid),
                     "node_exporter": psutil.Process(node.pid)}
            idle = measure(procs, seconds)
            stop = threading.Event()
            sizes: dict[str, int] = {}
            t = threading.Thread(target=scraper, args=(ports, stop, sizes), daemon=True)
            t.start()
            scraped = measure(procs, seconds)
            stop.set()
            t.join(10)
        finally:
            daemon.send_signal(signal.SIGTERM)
            node.terminate()
            daemon.wait(10)
            node.wait(10)
    print(f"{'process':<14} {'idle cpu %':>10} {'scraped 1/s cpu %':>18} "
          f"{'peak RSS MiB':>13} {'/metrics bytes':>15}")
    for k in procs:
        print(f"{k:<14} {idle[k][0]:>10.3f} {scraped[k][0]:>18.3f} "
              f"{max(idle[k][1], scraped[k][1]):>13.1f} {sizes.get(k, 0):>15}")
    print(f"{seconds:g}s per phase, python {sys.version.split()[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
