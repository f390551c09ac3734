"""Config shape of the built-in statistics: the names and the per-statistic keys.

``StatisticConfig`` is one entry of the ``statistics:`` list (``- cpu`` or
``- {name: cpu, every: 5s, per_core: true}``); docs/metrics.md says what each
statistic measures. ``None`` in ``every`` means the top-level ``interval``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from pharosd.types import Duration

STATISTIC_NAMES = (
    "cpu", "load", "memory", "swap", "disk", "diskio", "network",
    "processes", "files", "uptime", "temperature",
)
StatisticName = Literal[
    "cpu", "load", "memory", "swap", "disk", "diskio", "network",
    "processes", "files", "uptime", "temperature",
]
FILTERED_STATISTICS = ("disk", "diskio", "network", "temperature")
DEFAULT_STATISTICS = ("cpu", "load", "memory", "swap", "disk", "diskio", "network")


@dataclass(frozen=True)
class StatisticConfig:
    """One built-in statistic: ``- cpu`` or ``- {name: cpu, every: 5s, per_core: true}``."""

    __scalar_field__: ClassVar[str] = "name"

    name: StatisticName
    every: Duration | None = None
    per_core: bool = False          # cpu: also cpu.percent{cpu="N"}
    include: tuple[str, ...] = ()   # disk/diskio/network/temperature: globs to keep
    exclude: tuple[str, ...] = ()   # ... and globs to drop (after include)

    def check(self) -> list[tuple[str, str]]:
        issues: list[tuple[str, str]] = []
        if self.per_core and self.name != "cpu":
            issues.append(("per_core", f"expected per_core only on cpu, got it on {self.name}"))
        if (self.include or self.exclude) and self.name not in FILTERED_STATISTICS:
            key = "include" if self.include else "exclude"
            issues.append((key, f"expected {key} only on {', '.join(FILTERED_STATISTICS)}, "
                                f"got it on {self.name}"))
        return issues


def default_statistics() -> tuple[StatisticConfig, ...]:
    """The statistics polled when the config names none."""
    return tuple(StatisticConfig(name=n) for n in DEFAULT_STATISTICS)  # type: ignore[arg-type]
