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
    "processes", "files", "uptime", "temperature", "pressure", "services",
)
StatisticName = Literal[
    "cpu", "load", "memory", "swap", "disk", "diskio", "network",
    "processes", "files", "uptime", "temperature", "pressure", "services",
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
    exclude: tuple[str, ...] = ()   # ... and globs to drop (after include; services too)
    match: tuple[str, ...] = ()     # services: unit globs; empty: *.service

    def check(self) -> list[tuple[str, str]]:
        issues: list[tuple[str, str]] = []
        if self.per_core and self.name != "cpu":
            issues.append(("per_core", f"expected per_core only on cpu, got it on {self.name}"))
        if self.include and self.name not in FILTERED_STATISTICS:
            issues.append(("include", f"expected include only on "
                                      f"{', '.join(FILTERED_STATISTICS)}, got it on {self.name}"))
        if self.exclude and self.name not in (*FILTERED_STATISTICS, "services"):
            issues.append(("exclude", f"expected exclude only on "
                                      f"{', '.join(FILTERED_STATISTICS)}, services, "
                                      f"got it on {self.name}"))
        if self.match and self.name != "services":
            issues.append(("match", f"expected match only on services, got it on {self.name}"))
        for i, pattern in enumerate(self.match):
            if not pattern or pattern.startswith("-") or any(c.isspace() for c in pattern):
                issues.append((f"match[{i}]", f"expected a unit name or glob such as "
                                              f"'nginx.service' or '*.service', got {pattern!r}"))
        return issues


def default_statistics() -> tuple[StatisticConfig, ...]:
    """The statistics polled when the config names none."""
    return tuple(StatisticConfig(name=n) for n in DEFAULT_STATISTICS)  # type: ignore[arg-type]
