"""The floor to compare pharosd with: a plain psutil loop reading the same statistics.

It reads what the embedded default config polls, at the same intervals, and
does nothing with the values. Run by bench/run_bench.py.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time

import psutil


def main() -> None:
    interval = float(sys.argv[1]) if len(sys.argv) > 1 else 10.0
    duration = float(sys.argv[2]) if len(sys.argv) > 2 else 60.0
    end = time.monotonic() + duration
    tick = 0
    while time.monotonic() < end:
        psutil.cpu_times(percpu=False)
        os.getloadavg()
        psutil.virtual_memory()
        psutil.swap_memory()
        for part in psutil.disk_partitions(all=False):
            with contextlib.suppress(OSError):
                os.statvfs(part.mountpoint)
        psutil.disk_io_counters(perdisk=True)
        psutil.net_io_counters(pernic=True)
        with open("/proc/sys/fs/file-nr") as f:
            f.read()
        if tick % 3 == 0:
            for pid in psutil.pids():
                try:
                    with open(f"/proc/{pid}/stat") as f:
                        f.read()
                except OSError:
                    pass
            if hasattr(psutil, "sensors_temperatures"):
                psutil.sensors_temperatures()
        if tick % 6 == 0:
            psutil.boot_time()
        tick += 1
        time.sleep(max(0.0, interval - (time.monotonic() % interval)))


if __name__ == "__main__":
    main()
