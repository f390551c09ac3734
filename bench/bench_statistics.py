"""Time one ``collect()`` of each built-in statistic on this host.

For each statistic (and ``cpu`` with ``per_core``), builds it once, polls it
once to warm caches (mount list, rate baselines), then times N more polls
and prints the mean and the best in microseconds, and the CPU time
(user+system) per poll, with the number of samples a poll returns. Also
prints what the default statistics cost together per interval and as % of
one core at 10 s. Usage: ``python bench/bench_statistics.py [N]`` (default
200). The figures go in docs/benchmarks.md.
"""

from __future__ import annotations

import os
import sys
import time

from pharosd.statistics.config import DEFAULT_STATISTICS, STATISTIC_NAMES, StatisticConfig
from pharosd.statistics.factory import build_statistic


def bench(cfg: StatisticConfig, n: int) -> tuple[float, float, float, int]:
    stat = build_statistic(cfg, 10.0)
    stat.collect(time.time())
    time.sleep(0.05)        # let counters move, so rates and cpu have samples to count
    count = len(stat.collect(time.time()))
    best = float("inf")
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    for _ in range(n):
        s = time.perf_counter()
        stat.collect(time.time())
        best = min(best, time.perf_counter() - s)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    return wall / n * 1e6, best * 1e6, cpu / n * 1e6, count


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    cases = [StatisticConfig(name=name) for name in STATISTIC_NAMES]  # type: ignore[arg-type]
    cases.insert(1, StatisticConfig(name="cpu", per_core=True))
    print(f"{'statistic':<18} {'mean µs':>9} {'best µs':>9} {'cpu µs':>9} {'samples':>8}")
    default_total = 0.0
    for cfg in cases:
        mean, best, cpu, count = bench(cfg, n)
        label = cfg.name + (" per_core" if cfg.per_core else "")
        print(f"{label:<18} {mean:9.1f} {best:9.1f} {cpu:9.1f} {count:8d}")
        if cfg.name in DEFAULT_STATISTICS and not cfg.per_core:
            default_total += mean
    print(f"\ndefault statistics ({', '.join(DEFAULT_STATISTICS)}): {default_total:.0f} µs "
          f"per poll = {default_total / 10.0 / 1e4:.4f} % of one core at interval 10s "
          f"(N={n}, {os.cpu_count()} cpus)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
