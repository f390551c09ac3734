"""The ``processes``, ``files`` and ``uptime`` statistics, read from /proc.

processes: ``processes.total`` and ``processes.zombie`` count processes (not
threads) from one small read of each ``/proc/[pid]/stat``;
``processes.running`` and ``processes.blocked`` are the scheduler's
``procs_running`` / ``procs_blocked`` of ``/proc/stat``, which count tasks
(threads included) runnable or in uninterruptible sleep. No
``psutil.process_iter``.

files: system-wide file handles of ``/proc/sys/fs/file-nr``:
``files.open``, ``files.max``, ``files.used_percent``.

uptime: ``uptime.seconds`` from ``/proc/uptime``, the kernel's own count;
unlike ``time.time() - psutil.boot_time()`` it does not jump when the wall
clock is stepped.
"""

from __future__ import annotations

from pharosd.model import NO_LABELS, Sample
from pharosd.statistics.base import Statistic
from pharosd.statistics.config import StatisticConfig
from pharosd.statistics.procfs import (
    DEFAULT_PROCFS,
    FileHandles,
    ProcessCounter,
    read_file_nr,
    read_proc_stat,
    read_uptime,
)


class ProcessesStatistic(Statistic):
    def __init__(self, cfg: StatisticConfig, every: float, *,
                 procfs: str = DEFAULT_PROCFS) -> None:
        super().__init__(cfg, every)
        self._procfs = procfs
        self._counter = ProcessCounter(procfs)

    def collect(self, now: float) -> list[Sample]:
        stat = read_proc_stat(self._procfs)
        counts = self._counter.count()
        out = [
            Sample("processes.total", NO_LABELS, float(counts.total), now),
            Sample("processes.zombie", NO_LABELS, float(counts.zombie), now),
        ]
        if stat.procs_running is not None:
            out.append(Sample("processes.running", NO_LABELS, float(stat.procs_running), now))
        if stat.procs_blocked is not None:
            out.append(Sample("processes.blocked", NO_LABELS, float(stat.procs_blocked), now))
        return out

    def close(self) -> None:
        """Close the ``stat`` files kept open (the collector calls this on a stop and
        when a reload removes the statistic)."""
        self._counter.close()


def files_samples(fh: FileHandles, now: float) -> list[Sample]:
    percent = 100.0 * fh.open / fh.max if fh.max > 0 else 0.0
    return [
        Sample("files.open", NO_LABELS, float(fh.open), now),
        Sample("files.max", NO_LABELS, float(fh.max), now),
        Sample("files.used_percent", NO_LABELS, percent, now),
    ]


class FilesStatistic(Statistic):
    def __init__(self, cfg: StatisticConfig, every: float, *,
                 procfs: str = DEFAULT_PROCFS) -> None:
        super().__init__(cfg, every)
        self._procfs = procfs

    def collect(self, now: float) -> list[Sample]:
        return files_samples(read_file_nr(self._procfs), now)


class UptimeStatistic(Statistic):
    def __init__(self, cfg: StatisticConfig, every: float, *,
                 procfs: str = DEFAULT_PROCFS) -> None:
        super().__init__(cfg, every)
        self._procfs = procfs

    def collect(self, now: float) -> list[Sample]:
        return [Sample("uptime.seconds", NO_LABELS, read_uptime(self._procfs), now)]
