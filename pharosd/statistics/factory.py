"""``build_statistic``: a ``StatisticConfig`` becomes a running ``Source``.

The one place that maps statistic names to classes. ``every`` is the
config's own, else ``default_every`` (the top-level ``interval``). An entry
with ``python:`` becomes a ``PythonStatistic`` around the class it names
(found after ``plugin_dirs`` joined the import path).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

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

if TYPE_CHECKING:
    from pharosd.statistics.python import PythonStatistic


def build_statistic(cfg: StatisticConfig, default_every: float, *,
                    procfs: str = DEFAULT_PROCFS, plugin_dirs: Sequence[str] = ()
                    ) -> Statistic | PythonStatistic:
    """A fresh statistic for ``cfg``; raises ``ProbeError`` for an unknown name and
    ``PluginError`` for a Python class that cannot be imported."""
    every = float(cfg.every if cfg.every is not None else default_every)
    if cfg.python is not None:
        from pharosd.statistics.plugins import add_plugin_dirs, find_class
        from pharosd.statistics.python import PythonStatistic

        add_plugin_dirs(plugin_dirs)
        return PythonStatistic(cfg, every, find_class(cfg.python))
    return _builtin(cfg, every, procfs)


def _builtin(cfg: StatisticConfig, every: float, procfs: str) -> Statistic:
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
