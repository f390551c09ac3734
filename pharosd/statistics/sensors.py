"""The ``temperature`` statistic: ``temperature.celsius{sensor, label}``.

From ``psutil.sensors_temperatures()`` (hwmon, else thermal zones). ``sensor``
is the chip (``coretemp``, ``nvme``, ``acpitz``), ``label`` its reading's
label (``Core 0``); an unlabelled reading is ``temp1``, ``temp2``... by
position, and a label repeated within one chip gets ``_2``, ``_3``... A
host whose kernel exposes no sensors (most VMs and containers) yields
nothing, and so does a psutil without the function. ``include``/``exclude``
globs match the sensor (chip) name.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import psutil

from pharosd.model import Sample, labels_of
from pharosd.statistics.base import NameFilter, Statistic
from pharosd.statistics.config import StatisticConfig


def _keep_all(_: str) -> bool:
    return True


def temperature_samples(sensors: Mapping[str, Sequence[Any]], now: float,
                        keep: Callable[[str], bool] = _keep_all) -> list[Sample]:
    """From ``{chip: [readings with .label and .current]}``."""
    out: list[Sample] = []
    for chip, readings in sensors.items():
        if not keep(chip):
            continue
        seen: dict[str, int] = {}
        for i, r in enumerate(readings, start=1):
            current = r.current
            if current is None or not math.isfinite(float(current)):
                continue
            label = r.label or f"temp{i}"
            n = seen.get(label, 0) + 1
            seen[label] = n
            if n > 1:
                label = f"{label}_{n}"
            out.append(Sample("temperature.celsius", labels_of(sensor=chip, label=label),
                              float(current), now))
    return out


def _read_sensors() -> Mapping[str, Sequence[Any]]:
    read = getattr(psutil, "sensors_temperatures", None)
    if read is None:
        return {}
    return read() or {}


class TemperatureStatistic(Statistic):
    def __init__(self, cfg: StatisticConfig, every: float, *,
                 read: Callable[[], Mapping[str, Sequence[Any]]] = _read_sensors) -> None:
        super().__init__(cfg, every)
        self._read = read
        self._filter = NameFilter(cfg.include, cfg.exclude)

    def collect(self, now: float) -> list[Sample]:
        return temperature_samples(self._read(), now, self._filter)
