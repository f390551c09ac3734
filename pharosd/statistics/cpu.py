"""The ``cpu`` and ``load`` statistics, and the pure cpu-percent math.

cpu: busy, iowait and steal percentages over the interval between two
polls, from two snapshots of ``/proc/stat`` (the counters ``psutil.cpu_times``
reads, taken in one read so the total and the per-core lines agree, and
keyed by the kernel's cpu number so an offline cpu does not shift the
others). No hidden global state as in ``psutil.cpu_percent``: the previous
snapshot lives in the statistic. The first poll yields nothing.

* ``cpu.percent``: 100 - idle - iowait, so steal counts as busy (the
  guest wanted the cpu), as in ``psutil.cpu_percent``;
* ``cpu.iowait_percent``, ``cpu.steal_percent``;
* ``cpu.core_percent{cpu}`` with ``per_core: true``.

load: ``load.1/5/15`` and ``load.per_core_*`` (load divided by the number of
online logical cpus, re-read at most once a minute).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields

from pharosd.clock import Clock
from pharosd.model import NO_LABELS, Sample, labels_of
from pharosd.statistics.base import Every, Statistic
from pharosd.statistics.config import StatisticConfig
from pharosd.statistics.procfs import DEFAULT_PROCFS, CpuTimes, read_proc_stat

_CPU_FIELDS = tuple(f.name for f in fields(CpuTimes))


@dataclass(frozen=True, slots=True)
class CpuPercent:
    busy: float
    iowait: float
    steal: float


def cpu_percent(prev: CpuTimes, cur: CpuTimes) -> CpuPercent | None:
    """Percentages of the time between two snapshots; None if no time passed.

    A field that went backwards (iowait can, on tickless kernels) counts as 0,
    so every result is within 0..100.
    """
    deltas = {name: max(0.0, getattr(cur, name) - getattr(prev, name)) for name in _CPU_FIELDS}
    total = sum(deltas.values())
    if total <= 0:
        return None
    idle = deltas["idle"] + deltas["iowait"]
    return CpuPercent(
        busy=100.0 * (total - idle) / total,
        iowait=100.0 * deltas["iowait"] / total,
        steal=100.0 * deltas["steal"] / total,
    )


class CpuStatistic(Statistic):
    def __init__(self, cfg: StatisticConfig, every: float, *,
                 procfs: str = DEFAULT_PROCFS) -> None:
        super().__init__(cfg, every)
        self._procfs = procfs
        self._per_core = cfg.per_core
        self._prev_total: CpuTimes | None = None
        self._prev_cores: dict[str, CpuTimes] = {}

    def collect(self, now: float) -> list[Sample]:
        snap = read_proc_stat(self._procfs)
        out: list[Sample] = []
        prev = self._prev_total
        self._prev_total = snap.total
        if prev is not None:
            p = cpu_percent(prev, snap.total)
            if p is not None:
                out.append(Sample("cpu.percent", NO_LABELS, p.busy, now))
                out.append(Sample("cpu.iowait_percent", NO_LABELS, p.iowait, now))
                out.append(Sample("cpu.steal_percent", NO_LABELS, p.steal, now))
        if self._per_core:
            prev_cores = self._prev_cores
            self._prev_cores = snap.cores
            for cpu, cur in snap.cores.items():
                before = prev_cores.get(cpu)
                if before is None:
                    continue
                p = cpu_percent(before, cur)
                if p is not None:
                    out.append(Sample("cpu.core_percent", labels_of(cpu=cpu), p.busy, now))
        return out


class LoadStatistic(Statistic):
    def __init__(self, cfg: StatisticConfig, every: float, *,
                 clock: Clock | None = None) -> None:
        super().__init__(cfg, every)
        self._count_refresh = Every(60.0, clock)
        self._cpus = 1

    def collect(self, now: float) -> list[Sample]:
        if self._count_refresh.due():
            self._cpus = os.cpu_count() or 1
        l1, l5, l15 = os.getloadavg()
        n = self._cpus
        return [
            Sample("load.1", NO_LABELS, l1, now),
            Sample("load.5", NO_LABELS, l5, now),
            Sample("load.15", NO_LABELS, l15, now),
            Sample("load.per_core_1", NO_LABELS, l1 / n, now),
            Sample("load.per_core_5", NO_LABELS, l5 / n, now),
            Sample("load.per_core_15", NO_LABELS, l15 / n, now),
        ]
