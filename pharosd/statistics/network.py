"""The ``network`` statistic: per-interface rates of bytes, packets, errors, drops.

From ``psutil.net_io_counters(pernic=True, nowrap=False)`` (psutil's wrap
correction is hidden global state; ``pharosd.statistics.rates`` drops the
poll of a reset instead). Labels: ``{interface}``. Without ``include``,
``lo`` (host-local traffic) and ``veth*`` (the host ends of container pairs:
their traffic also crosses the bridge, and they come and go with every
container) are left out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import psutil

from pharosd.clock import Clock, SystemClock
from pharosd.model import Labels, Sample, labels_of
from pharosd.statistics.base import NameFilter, Statistic, rate_samples
from pharosd.statistics.config import StatisticConfig
from pharosd.statistics.rates import RateTracker

NETWORK_DEFAULT_EXCLUDE = ("lo", "veth*")

_NET_FIELDS = (
    ("network.rx_bytes_per_second", "bytes_recv"),
    ("network.tx_bytes_per_second", "bytes_sent"),
    ("network.rx_packets_per_second", "packets_recv"),
    ("network.tx_packets_per_second", "packets_sent"),
    ("network.rx_errors_per_second", "errin"),
    ("network.tx_errors_per_second", "errout"),
    ("network.rx_drops_per_second", "dropin"),
    ("network.tx_drops_per_second", "dropout"),
)


def _keep_all(_: str) -> bool:
    return True


def network_counters(per_nic: Mapping[str, Any],
                     keep: Callable[[str], bool] = _keep_all) -> dict[tuple[str, Labels], float]:
    """``{(rate metric, labels): counter}`` from ``psutil.net_io_counters(pernic=True)``."""
    out: dict[tuple[str, Labels], float] = {}
    for nic, c in per_nic.items():
        if not keep(nic):
            continue
        labels = labels_of(interface=nic)
        for metric, attr in _NET_FIELDS:
            out[(metric, labels)] = float(getattr(c, attr))
    return out


def _read_net_counters() -> Mapping[str, Any]:
    return psutil.net_io_counters(pernic=True, nowrap=False) or {}


class NetworkStatistic(Statistic):
    def __init__(self, cfg: StatisticConfig, every: float, *,
                 read: Callable[[], Mapping[str, Any]] = _read_net_counters,
                 clock: Clock | None = None) -> None:
        super().__init__(cfg, every)
        self._read = read
        self._clock: Clock = clock or SystemClock()
        self._filter = NameFilter(cfg.include, cfg.exclude, NETWORK_DEFAULT_EXCLUDE)
        self._rates: RateTracker[tuple[str, Labels]] = RateTracker()

    def collect(self, now: float) -> list[Sample]:
        counters = network_counters(self._read(), self._filter)
        return rate_samples(self._rates.observe(counters, self._clock.monotonic()), now)
