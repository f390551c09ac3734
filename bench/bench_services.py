"""What the ``services`` statistic costs: ``systemctl show`` against the cgroup file system.

Run it on a machine (or container) with systemd as PID 1, as root or as the
service user: ``python3 bench/bench_services.py [N]`` (default 40). It times N
runs of the statistic's ``systemctl show`` (wall time, the CPU of systemctl
itself, and the CPU PID 1 spends answering, from /proc/1/stat), the same with
``MemoryCurrent,CPUUsageNSec`` added (what asking systemd for CPU and memory
would cost instead), and one poll's reads of ``cpu.stat`` and
``memory.current`` for every unit that has a cgroup. Only the standard
library, so it runs on a bare system. The figures go in docs/benchmarks.md.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

PROPS = "Id,LoadState,ActiveState,SubState,NRestarts,ControlGroup"


def pid1_cpu() -> float:
    with open("/proc/1/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def show(props: str) -> str:
    return subprocess.run(["systemctl", "show", "--no-pager", "-p", props, "--", "*.service"],
                          capture_output=True, text=True, check=True, timeout=10).stdout


def cgroup_root() -> str:
    for root in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
        if os.path.exists(os.path.join(root, "cgroup.controllers")):
            return root
    raise SystemExit("no cgroup v2 hierarchy")


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    blocks = [dict(line.split("=", 1) for line in b.splitlines() if "=" in line)
              for b in show(PROPS).split("\n\n") if b.strip()]
    cgroups = [b["ControlGroup"] for b in blocks if b.get("ControlGroup")]
    print(f"{len(blocks)} units match *.service, {len(cgroups)} with a cgroup")
    for label, props in (("systemctl show", PROPS),
                         ("  + MemoryCurrent,CPUUsageNSec", PROPS + ",MemoryCurrent,CPUUsageNSec")):
        c0, p0, t0 = os.times(), pid1_cpu(), time.perf_counter()
        for _ in range(n):
            show(props)
        t1, p1, c1 = time.perf_counter(), pid1_cpu(), os.times()
        child = (c1.children_user + c1.children_system) - (c0.children_user + c0.children_system)
        print(f"{label}: {1000 * (t1 - t0) / n:.1f} ms wall, systemctl cpu "
              f"{1000 * child / n:.1f} ms, PID 1 cpu {1000 * (p1 - p0) / n:.1f} ms per call")
    root = cgroup_root()
    m = 1000
    t0 = time.perf_counter()
    for _ in range(m):
        for cg in cgroups:
            for name in ("cpu.stat", "memory.current"):
                try:
                    with open(os.path.join(root, cg.lstrip("/"), name)) as f:
                        f.read()
                except OSError:
                    pass
    per_poll = (time.perf_counter() - t0) / m
    print(f"cgroup fs: {1e6 * per_poll:.0f} us per poll, "
          f"{1e6 * per_poll / max(1, len(cgroups)):.0f} us per unit")


if __name__ == "__main__":
    main()
