"""CPU and RSS of ``pharosd run`` on the embedded default config, beside a plain psutil loop.

Both run at once for the same wall time (default 60 s); CPU is user+system
seconds over wall seconds, as % of one core, RSS is sampled every second
(peak). Usage: ``python bench/run_bench.py [SECONDS]``.
The figures go in docs/benchmarks.md.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent


def daemon_env(tmp: str | Path) -> dict[str, str]:
    """This environment without PHAROS* and NOTIFY* variables, with state and runtime
    dirs in ``tmp``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PHAROS", "NOTIFY"))}
    env.update({"STATE_DIRECTORY": str(tmp), "RUNTIME_DIRECTORY": str(tmp)})
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(p: psutil.Process, children: bool = False) -> float:
    """User+system CPU seconds of ``p`` (and of its reaped children, with ``children``)."""
    t = p.cpu_times()
    return t.user + t.system + (t.children_user + t.children_system if children else 0.0)


def measure(procs: dict[str, psutil.Process], seconds: float,
            children: tuple[str, ...] = ()) -> dict[str, tuple[float, float]]:
    """Each process's CPU (% of one core; children included for the names in
    ``children``) and peak RSS (MiB, sampled every second) over ``seconds`` of wall
    time."""
    start = {k: cpu_seconds(p, k in children) for k, p in procs.items()}
    peak = dict.fromkeys(procs, 0)
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        for k, p in procs.items():
            peak[k] = max(peak[k], p.memory_info().rss)
        time.sleep(1.0)
    wall = time.monotonic() - t0
    return {k: (100 * (cpu_seconds(p, k in children) - start[k]) / wall, peak[k] / 2**20)
            for k, p in procs.items()}


def main() -> int:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 60.0
    with tempfile.TemporaryDirectory() as tmp:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "pharosd", "run", "--log-format", "logfmt"],
            env=daemon_env(tmp), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp)
        time.sleep(3.0)  # start-up (imports, first collection) is not steady state
        loop = subprocess.Popen([sys.executable, str(HERE / "baseline_loop.py"), "10",
                                 str(seconds + 5)])
        procs = {"pharosd run": psutil.Process(daemon.pid), "psutil loop": psutil.Process(loop.pid)}
        t0 = time.monotonic()
        figures = measure(procs, seconds)
        wall = time.monotonic() - t0
        print(f"{'process':<14} {'cpu % of one core':>18} {'peak RSS MiB':>13}")
        for k, (cpu, rss) in figures.items():
            print(f"{k:<14} {cpu:>18.3f} {rss:>13.1f}")
        print(f"wall {wall:.1f}s, python {sys.version.split()[0]}, psutil {psutil.__version__}")
        daemon.send_signal(signal.SIGTERM)
        loop.terminate()
        daemon.wait(10)
        loop.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
