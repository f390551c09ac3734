"""``build_statistic``: a ``StatisticConfig`` becomes a running ``Source``.

The one place that maps statistic names to classes. ``every`` is the
config's own, else ``default_every`` (the top-level ``interval``).
"""

from __future__ import annotations

from pharosd.errors import ProbeError
from pharosd.statistics.base import Statistic
from pharosd.statistics.config import StatisticConfig
from pharosd.statistics.cpu import CpuStatistic, LoadStatistic
from pharosd.statistics.disk import DiskIOStatistic, DiskStatistic
from pharosd.statistics.memory import MemoryStatistic, SwapStatistic
from pharosd.statistics.network import NetworkStatistic
from pharosd.statistics.pressure import PressureStatistic
from pharosd.statistics.procfs import DEFAULT_PROCFS
from pharosd.statistics.sensors import TemperatureStatistic
from pharosd.statistics.services import ServicesStatistic
from pharosd.statistics.system import FilesStatistic, ProcessesStatistic, UptimeStatistic


def build_statistic(cfg: StatisticConfig, default_every: float, *,
                    procfs: str = DEFAULT_PROCFS) -> Statistic:
    """A fresh statistic for ``cfg``; raises ``ProbeError`` for an unknown name."""
    every = float(cfg.every if cfg.every is not None else default_every)
    name = cfg.name
    if name == "cpu":
        return CpuStatistic(cfg, every, procfs=procfs)
    if name == "load":
        return LoadStatistic(cfg, every)
    if name == "memory":
        return MemoryStatistic(cfg, every)
    if name == "swap":
        return SwapStatistic(cfg, every)
    if name == "disk":
        return DiskStatistic(cfg, every, procfs=procfs)
    if name == "diskio":
        return DiskIOStatistic(cfg, every)
    if name == "network":
        return NetworkStatistic(cfg, every)
    if name == "processes":
        return ProcessesStatistic(cfg, every, procfs=procfs)
    if name == "files":
        return FilesStatistic(cfg, every, procfs=procfs)
    if name == "uptime":
        return UptimeStatistic(cfg, every, procfs=procfs)
    if name == "temperature":
        return TemperatureStatistic(cfg, every)
    if name == "pressure":
        return PressureStatistic(cfg, every, procfs=procfs)
    if name == "services":
        return ServicesStatistic(cfg, every)
    raise ProbeError(f"unknown statistic {name!r}")
