"""The ``memory`` and ``swap`` statistics (psutil), and their pure conversions.

memory: ``used`` is ``total - available`` (what programs cannot get back
without swapping), so ``memory.used_percent`` agrees with ``used_bytes`` and
with ``psutil.virtual_memory().percent``; psutil's own ``used`` field (which
also leaves out buffers and cache) is not used.

swap: ``swap.used_percent`` is 0 on a host without swap.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psutil

from pharosd.model import NO_LABELS, Sample
from pharosd.statistics.base import Statistic
from pharosd.statistics.config import StatisticConfig


def memory_samples(vm: Any, now: float) -> list[Sample]:
    """From an object with ``total`` and ``available`` (``psutil.virtual_memory()``)."""
    total = float(vm.total)
    available = float(vm.available)
    used = max(0.0, total - available)
    percent = 100.0 * used / total if total > 0 else 0.0
    return [
        Sample("memory.total_bytes", NO_LABELS, total, now),
        Sample("memory.available_bytes", NO_LABELS, available, now),
        Sample("memory.used_bytes", NO_LABELS, used, now),
        Sample("memory.used_percent", NO_LABELS, percent, now),
    ]


def swap_samples(sw: Any, now: float) -> list[Sample]:
    """From an object with ``total`` and ``used`` (``psutil.swap_memory()``)."""
    total = float(sw.total)
    used = float(sw.used) if total > 0 else 0.0
    percent = 100.0 * used / total if total > 0 else 0.0
    return [
        Sample("swap.total_bytes", NO_LABELS, total, now),
        Sample("swap.used_bytes", NO_LABELS, used, now),
        Sample("swap.used_percent", NO_LABELS, percent, now),
    ]


class MemoryStatistic(Statistic):
    def __init__(self, cfg: StatisticConfig, every: float, *,
                 read: Callable[[], Any] = psutil.virtual_memory) -> None:
        super().__init__(cfg, every)
        self._read = read

    def collect(self, now: float) -> list[Sample]:
        return memory_samples(self._read(), now)


class SwapStatistic(Statistic):
    def __init__(self, cfg: StatisticConfig, every: float, *,
                 read: Callable[[], Any] = psutil.swap_memory) -> None:
        super().__init__(cfg, every)
        self._read = read

    def collect(self, now: float) -> list[Sample]:
        return swap_samples(self._read(), now)
