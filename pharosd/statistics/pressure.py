"""The ``pressure`` statistic: Linux pressure stall information (PSI), ``/proc/pressure/*``.

Each of ``cpu``, ``memory`` and ``io`` has a ``some`` line (the share of
time at least one task was stalled on the resource) and a ``full`` line (all
non-idle tasks stalled at once)::

    some avg10=0.00 avg60=0.06 avg300=0.19 total=39332309
    full avg10=0.00 avg60=0.00 avg300=0.00 total=0

``parse_pressure`` is pure. Samples, ``<res>`` one of cpu, memory, io:

* ``pressure.<res>_some_avg10`` / ``_avg60`` / ``_avg300`` and the same for
  ``full``: the kernel's running averages, percent;
* ``pressure.<res>_some_percent`` and ``pressure.<res>_full_percent``: the
  ``total`` counter (microseconds stalled) as a rate over the time between
  two polls, in percent of that time (``pharosd.statistics.rates``: the first
  poll yields none, a counter that went back yields none).

cpu's ``full`` line is left out: the kernel defines it only for cgroups;
at the system level it is absent before Linux 5.13 and all zeros since.
A file that is missing (a kernel without PSI, or booted with ``psi=0``) or
unreadable is logged once (``statistic_item_failed``) and yields nothing;
the other resources go on. ``procfs`` is injectable for tests.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from pharosd.clock import Clock, SystemClock
from pharosd.model import NO_LABELS, Labels, Sample
from pharosd.statistics.base import ItemErrors, Statistic, rate_samples
from pharosd.statistics.config import StatisticConfig
from pharosd.statistics.procfs import DEFAULT_PROCFS
from pharosd.statistics.rates import RateTracker

RESOURCES = ("cpu", "memory", "io")
AVERAGES = ("avg10", "avg60", "avg300")


@dataclass(frozen=True, slots=True)
class PressureLine:
    avg10: float
    avg60: float
    avg300: float
    total: float          # microseconds stalled since boot


def parse_pressure(text: str) -> dict[str, PressureLine]:
    """``{"some": ..., "full": ...}`` (``full`` may be missing); ``ValueError`` on junk."""
    out: dict[str, PressureLine] = {}
    for line in text.splitlines():
        kind, _, rest = line.partition(" ")
        if kind not in ("some", "full"):
            continue
        fields = dict(item.split("=", 1) for item in rest.split() if "=" in item)
        try:
            out[kind] = PressureLine(float(fields["avg10"]), float(fields["avg60"]),
                                     float(fields["avg300"]), float(fields["total"]))
        except (KeyError, ValueError) as e:
            raise ValueError(f"unexpected pressure line {line!r}") from e
    if "some" not in out:
        raise ValueError(f"no 'some' line in {text[:80]!r}")
    return out


def pressure_samples(resource: str, lines: dict[str, PressureLine], now: float
                     ) -> tuple[list[Sample], dict[tuple[str, Labels], float]]:
    """The average samples of one resource, and its ``total`` counters keyed by the
    rate metric they become."""
    samples: list[Sample] = []
    counters: dict[tuple[str, Labels], float] = {}
    for kind, line in lines.items():
        if resource == "cpu" and kind == "full":
            continue
        prefix = f"pressure.{resource}_{kind}"
        for avg in AVERAGES:
            samples.append(Sample(f"{prefix}_{avg}", NO_LABELS, getattr(line, avg), now))
        counters[(f"{prefix}_percent", NO_LABELS)] = line.total
    return samples, counters


class PressureStatistic(Statistic):
    def __init__(self, cfg: StatisticConfig, every: float, *, procfs: str = DEFAULT_PROCFS,
                 clock: Clock | None = None) -> None:
        super().__init__(cfg, every)
        self._dir = os.path.join(procfs, "pressure")
        self._clock: Clock = clock or SystemClock()
        self._rates: RateTracker[tuple[str, Labels]] = RateTracker()
        self._errors = ItemErrors(cfg.name)

    def collect(self, now: float) -> list[Sample]:
        out: list[Sample] = []
        counters: dict[tuple[str, Labels], float] = {}
        for resource in RESOURCES:
            try:
                with open(os.path.join(self._dir, resource), encoding="ascii") as f:
                    lines = parse_pressure(f.read())
            except (OSError, ValueError, UnicodeDecodeError) as e:
                self._errors.failed(resource, e)
                continue
            self._errors.ok(resource)
            samples, totals = pressure_samples(resource, lines, now)
            out += samples
            counters.update(totals)
        # total is in microseconds: per second of wall time, 1e6 is 100 %. The time is
        # taken once after all three files, so on a busy machine the interval seen by
        # one file can be a little longer than the one measured: no share passes 100 %.
        rates = self._rates.observe(counters, self._clock.monotonic())
        out += rate_samples({k: min(100.0, v / 1e4) for k, v in rates.items()}, now)
        return out
