"""pharosd beside its peers, side by side in one run: CPU % of one core and RSS.

Usage: ``python bench/bench_peers.py SCENARIO [SECONDS]`` (default 60 s), SCENARIO one of:

* ``ship``: every statistic collectd also reads (cpu, load, memory, swap, disk, diskio,
  network, processes, uptime) and four thresholds, every 1 s, shipping every sample to a
  real VictoriaMetrics on 127.0.0.1; beside collectd 5.12 at ``Interval 1`` with the same
  plugins and write_prometheus, and a plain psutil loop (the floor).
* ``alerts``: the same without the uplink (alerts only), beside the same collectd.
* ``rules``: 10,000 thresholds (1,000 on each of ten metrics, none firing) at 1 s: CPU and
  RSS of the running daemon, the wall time of ``pharosd check-config`` and from start to
  ``READY=1`` (a real NOTIFY_SOCKET) with the CPU spent until then.
* ``probes``: 100 exec probes every 10 s: CPU, RSS and the spread of their start times in
  each 10 s round (each probe appends its start time to a file).

Everything listens on 127.0.0.1 only. CPU is user+system seconds over wall seconds of
each process (children included for pharosd's probes), after a warm-up; RSS is sampled
every second (peak). The figures go in docs/benchmarks.md.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil
from run_bench import cpu_seconds, daemon_env, free_port  # bench/ is sys.path[0]
from run_bench import measure as measure_processes

HERE = Path(__file__).resolve().parent
STATS = ["cpu", "load", "memory", "swap", "disk", "diskio", "network", "processes", "uptime"]
THRESHOLDS = """\
thresholds:
  - {name: memory-high, metric: memory.used_percent, above: {warning: 90, critical: 95}}
  - {name: swap-high, metric: swap.used_percent, above: 80}
  - {name: root-full, metric: disk.used_percent, match: {mount: /}, above: 95}
  - {name: load-high, metric: load.per_core_5, above: 4, soak: 5m}
"""
RULE_METRICS = ["cpu.percent", "memory.used_percent", "swap.used_percent", "load.load1",
                "load.per_core_5", "disk.used_percent", "disk.inodes_used_percent",
                "network.rx_bytes_per_second", "network.tx_bytes_per_second",
                "processes.total"]


def wait_http(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not answer within {timeout}s")


def start_pharosd(tmp: Path, config: str, name: str = "pharos.yaml",
                  extra_env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    path = tmp / name
    path.write_text(config)
    env = daemon_env(tmp)
    env.update(extra_env or {})
    return subprocess.Popen([sys.executable, "-m", "pharosd", "run", "-c", str(path),
                             "--log-format", "logfmt"], env=env, cwd=tmp,
                            stdout=subprocess.DEVNULL, stderr=open(tmp / f"{name}.log", "wb"))


def start_victoria(tmp: Path) -> tuple[subprocess.Popen[bytes], int]:
    exe = shutil.which("victoria-metrics")
    if exe is None:
        raise SystemExit("victoria-metrics is not installed (apt-get install -y victoria-metrics)")
    port = free_port()
    proc = subprocess.Popen([exe, f"-httpListenAddr=127.0.0.1:{port}",
                             f"-storageDataPath={tmp / 'vm'}", "-retentionPeriod=100y",
                             "-search.latencyOffset=0s"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_http(f"http://127.0.0.1:{port}/health")
    return proc, port


def start_collectd(tmp: Path) -> subprocess.Popen[bytes] | None:
    exe = shutil.which("collectd") or ("/usr/sbin/collectd"
                                       if os.path.exists("/usr/sbin/collectd") else None)
    if exe is None:
        print("collectd is not installed (apt-get install -y collectd-core libprotobuf-c1 "
              "libmicrohttpd12): left out", file=sys.stderr)
        return None
    port = free_port()
    conf = tmp / "collectd.conf"
    plugins = ["cpu", "load", "memory", "swap", "df", "disk", "interface", "processes",
               "uptime", "threshold", "write_prometheus"]
    conf.write_text("\n".join([
        f'BaseDir "{tmp}"', f'PIDFile "{tmp}/collectd.pid"', "Interval 1",
        'PluginDir "/usr/lib/collectd"', 'TypesDB "/usr/share/collectd/types.db"',
        *[f"LoadPlugin {p}" for p in plugins],
        "<Plugin write_prometheus>", '  Host "127.0.0.1"', f'  Port "{port}"', "</Plugin>",
        "<Plugin threshold>",
        '  <Plugin "memory">', '    <Type "percent">', '      Instance "used"',
        "      WarningMax 90", "      FailureMax 95", "    </Type>", "  </Plugin>",
        '  <Plugin "swap">', '    <Type "percent">', '      Instance "used"',
        "      WarningMax 80", "    </Type>", "  </Plugin>",
        '  <Plugin "df">', '    <Type "percent_bytes">', '      Instance "used"',
        "      FailureMax 95", "    </Type>", "  </Plugin>",
        '  <Plugin "load">', '    <Type "load">', '      DataSource "midterm"',
        "      WarningMax 4", "    </Type>", "  </Plugin>",
        "</Plugin>",
        '<Plugin memory>', "  ValuesPercentage true", "</Plugin>",
        '<Plugin swap>', "  ValuesPercentage true", "</Plugin>",
        '<Plugin df>', "  ValuesPercentage true", "</Plugin>", ""]))
    return subprocess.Popen([exe, "-f", "-C", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=open(tmp / "collectd.log", "wb"))


def measure(procs: dict[str, subprocess.Popen[bytes]], seconds: float, warmup: float = 3.0,
            children: tuple[str, ...] = ()) -> dict[str, tuple[float, float]]:
    """CPU % of one core and peak RSS MiB of each process over ``seconds``, after
    ``warmup`` (``run_bench.measure``); says which process exited meanwhile."""
    time.sleep(warmup)
    out = measure_processes({k: psutil.Process(p.pid) for k, p in procs.items()}, seconds,
                            children)
    for k, p in procs.items():
        if p.poll() is not None:
            print(f"warning: {k} exited with {p.returncode} during the run", file=sys.stderr)
    return out


def stop(*procs: subprocess.Popen[bytes] | None) -> None:
    for p in procs:
        if p is not None and p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        if p is not None:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def table(rows: dict[str, tuple[float, float]], wall: float) -> None:
    print(f"{'process':<34} {'CPU % of one core':>18} {'peak RSS MiB':>13}")
    for k, (cpu, rss) in rows.items():
        print(f"{k:<34} {cpu:>18.3f} {rss:>13.1f}")
    print(f"over {wall:.0f}s, python {sys.version.split()[0]}, psutil {psutil.__version__}")


def base_config(extra: str = "") -> str:
    return ("interval: 1s\nstatistics: [" + ", ".join(STATS) + "]\n" + THRESHOLDS
            + "sinks: [{name: file, kind: file}]\n" + extra)


def scenario_ship_or_alerts(seconds: float, ship: bool) -> None:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        vm = port = None
        extra = ""
        if ship:
            vm, port = start_victoria(tmp)
            extra = f"uplink:\n  remote_write: [{{url: 'http://127.0.0.1:{port}/api/v1/write'}}]\n"
        daemon = start_pharosd(tmp, base_config(extra))
        collectd = start_collectd(tmp)
        loop = subprocess.Popen([sys.executable, str(HERE / "baseline_loop.py"), "1",
                                 str(seconds + 10)])
        procs = {"pharosd run (" + ("shipping to VM" if ship else "alerts only") + ")": daemon,
                 "psutil loop at 1 s (floor)": loop}
        if collectd is not None:
            procs["collectd 5.12 (write_prometheus)"] = collectd
        if vm is not None:
            procs["victoria-metrics (receiver)"] = vm
        try:
            rows = measure(procs, seconds)
            table(rows, seconds)
            if ship and port is not None:
                q = (f"http://127.0.0.1:{port}/api/v1/query?query="
                     "count(count_over_time(%7B__name__%3D~%22pharos_.*%22%7D%5B1m%5D))")
                with urllib.request.urlopen(q, timeout=5) as r:
                    print("series in VictoriaMetrics:", r.read().decode()[:200])
        finally:
            stop(daemon, collectd, loop, vm)


def rules_config(n: int, every: str = "1s") -> str:
    lines = [f"interval: {every}", "statistics: [" + ", ".join(STATS) + "]", "thresholds:"]
    per = n // len(RULE_METRICS)
    for m in RULE_METRICS:
        short = m.replace(".", "-")
        for i in range(per):
            lines.append(f"  - {{name: {short}-{i}, metric: {m}, above: {1e12 + i}}}")
    lines.append("sinks: [{name: file, kind: file}]")
    return "\n".join(lines) + "\n"


def wait_ready(sock: socket.socket, proc: subprocess.Popen[bytes], timeout: float) -> float:
    t0 = time.monotonic()
    sock.settimeout(0.2)
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise SystemExit(f"pharosd exited with {proc.returncode} before READY")
        try:
            data = sock.recv(4096)
        except TimeoutError:
            continue
        if b"READY=1" in data:
            return time.monotonic()
    raise SystemExit("no READY=1 within the timeout")


def scenario_rules(seconds: float, n: int = 10_000) -> None:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        config = rules_config(n)
        path = tmp / "rules.yaml"
        path.write_text(config)
        env = daemon_env(tmp)
        checks = []
        for _ in range(3):
            t0 = time.monotonic()
            r = subprocess.run([sys.executable, "-m", "pharosd", "check-config", "-c", str(path)],
                               env=env, capture_output=True)
            checks.append(time.monotonic() - t0)
            if r.returncode != 0:
                raise SystemExit(r.stderr.decode()[-2000:])
        sock_path = tmp / "notify.sock"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(sock_path))
        t0 = time.monotonic()
        daemon = start_pharosd(tmp, config, "rules.yaml", {"NOTIFY_SOCKET": str(sock_path)})
        try:
            ready_at = wait_ready(sock, daemon, 60.0)
            cpu_ready = cpu_seconds(psutil.Process(daemon.pid))
            loop = subprocess.Popen([sys.executable, str(HERE / "baseline_loop.py"), "1",
                                     str(seconds + 10)])
            rows = measure({f"pharosd run ({n} thresholds)": daemon,
                            "psutil loop at 1 s (floor)": loop}, seconds)
            table(rows, seconds)
            print(f"check-config: {', '.join(f'{c:.2f}' for c in checks)} s (3 runs)")
            print(f"start to READY=1: {ready_at - t0:.2f} s wall, {cpu_ready:.2f} s CPU")
            stop(loop)
        finally:
            stop(daemon)
            sock.close()


def scenario_probes(seconds: float, n: int = 100, every: int = 10) -> None:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        starts = tmp / "starts"
        script = tmp / "probe.sh"
        script.write_text(f'#!/bin/sh\necho "$1 $(date +%s.%N)" >> {starts}\n'
                          'echo "OK - fine|v=1"\n')
        script.chmod(0o755)
        lines = [f"interval: {every}s", "statistics: [cpu, load, memory]", "probes:"]
        for i in range(n):
            lines.append(f"  - {{name: p{i}, kind: exec, command: [{script}, p{i}]}}")
        lines.append("sinks: [{name: file, kind: file}]")
        daemon = start_pharosd(tmp, "\n".join(lines) + "\n")
        try:
            rows = measure({f"pharosd run ({n} exec probes every {every}s)": daemon},
                           seconds, warmup=every + 2.0, children=(f"pharosd run ({n} exec "
                                                                   f"probes every {every}s)",))
            table(rows, seconds)
        finally:
            stop(daemon)
        stamps: dict[int, list[float]] = {}
        t_first = None
        for line in starts.read_text().splitlines():
            _, t = line.split()
            ts = float(t)
            t_first = ts if t_first is None else min(t_first, ts)
        for line in starts.read_text().splitlines():
            _, t = line.split()
            ts = float(t)
            assert t_first is not None
            stamps.setdefault(int((ts - t_first + every / 2) // every), []).append(ts)
        spreads = [max(v) - min(v) for k, v in sorted(stamps.items()) if len(v) >= n * 0.9]
        if spreads:
            spreads.sort()
            print(f"rounds: {len(spreads)}; spread of the {n} start times in a round: "
                  f"median {spreads[len(spreads) // 2]:.3f} s, max {spreads[-1]:.3f} s")


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in ("ship", "alerts", "rules", "probes"):
        print(__doc__)
        return 2
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 60.0
    what = sys.argv[1]
    if what in ("ship", "alerts"):
        scenario_ship_or_alerts(seconds, what == "ship")
    elif what == "rules":
        scenario_rules(seconds)
    else:
        scenario_probes(seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
