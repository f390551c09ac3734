"""The config as frozen dataclasses: the names users write in pharos.yaml.

This module only declares shapes and defaults; ``pharosd.config.loader``
turns a YAML document into these classes generically, from the type hints:

* ``Duration`` / ``Size`` parse ``30s`` / ``512MiB``; ``Literal[...]`` is an
  enum; ``tuple[X, ...]`` a YAML list; ``FrozenDict[X]`` a YAML mapping;
  ``A | B`` picks by the YAML node's shape (scalar, mapping) or, for
  classes with a ``kind: Literal[...]`` field, by ``kind``.
* A class with ``__scalar_field__ = "name"`` also accepts a bare scalar
  (``- cpu`` means ``{name: cpu}``).
* A class may define ``check(self) -> list[tuple[str, str]]`` for rules that
  span fields: each ``(field, message)`` becomes a positioned error.
* Field ``metadata`` may hold ``min`` / ``max`` bounds for numbers.

``None`` in an ``every``/``soak``/``cool``/``level`` field means "inherit
the top-level default"; ``Config`` has helpers that resolve it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from pharosd.config.types import Duration, FrozenDict
from pharosd.http.config import HttpConfig
from pharosd.model import Level
from pharosd.pipeline.config import BufferConfig, SpillConfig, UplinkConfig
from pharosd.probes.config import ProbeConfig, reserved_threshold_issues
from pharosd.sinks.config import FileSinkConfig, LogSinkConfig, SinkConfig

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


def _positive() -> dict[str, float]:
    return {"min": 0.0}


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


@dataclass(frozen=True)
class LevelLimits:
    """Several levels on one threshold: ``above: {warning: 80, critical: 95}``."""

    info: float | None = None
    warning: float | None = None
    critical: float | None = None

    def check(self) -> list[tuple[str, str]]:
        if self.info is None and self.warning is None and self.critical is None:
            return [("", "expected at least one of info, warning, critical")]
        return []


@dataclass(frozen=True)
class WindowConfig:
    """Evaluate an aggregate over a sliding window instead of each sample."""

    over: Duration
    mode: Literal["avg", "min", "max"] = "avg"

    def check(self) -> list[tuple[str, str]]:
        if self.over <= 0:
            return [("over", f"expected a duration above 0, got {self.over:g}s")]
        return []


@dataclass(frozen=True)
class ThresholdConfig:
    """A condition on one metric; each label set that matches is its own alert."""

    name: str
    metric: str
    above: float | LevelLimits | None = None
    below: float | LevelLimits | None = None
    match: FrozenDict[str] = field(default_factory=FrozenDict)
    window: WindowConfig | None = None
    level: Level | None = None
    soak: Duration | None = None
    cool: Duration | None = None
    summary: str | None = None      # overrides the generated summary text

    def check(self) -> list[tuple[str, str]]:
        if (self.above is None) == (self.below is None):
            return [("", "expected exactly one of 'above' or 'below'")]
        if isinstance(self.above or self.below, LevelLimits) and self.level is not None:
            return [("level", "expected no 'level' when the limit names its levels")]
        return []


@dataclass(frozen=True)
class SupervisorConfig:
    """OTP-style restart intensity: more than max_restarts in period gives up."""

    max_restarts: int = field(default=5, metadata={"min": 0})
    period: Duration = Duration(60.0)


def _default_statistics() -> tuple[StatisticConfig, ...]:
    return tuple(StatisticConfig(name=n) for n in DEFAULT_STATISTICS)  # type: ignore[arg-type]


def _default_sinks() -> tuple[SinkConfig, ...]:
    return (FileSinkConfig(name="file", kind="file"), LogSinkConfig(name="log", kind="log"))


@dataclass(frozen=True)
class Config:
    """The whole of pharos.yaml."""

    interval: Duration = Duration(10.0)
    soak: Duration = Duration(30.0)
    cool: Duration = Duration(60.0)
    level: Level = "warning"
    host: str | None = None           # default: the machine's host name
    state_dir: str | None = None      # default: see resolved_state_dir()
    statistics: tuple[StatisticConfig, ...] = field(default_factory=_default_statistics)
    probes: tuple[ProbeConfig, ...] = ()
    thresholds: tuple[ThresholdConfig, ...] = ()
    sinks: tuple[SinkConfig, ...] = field(default_factory=_default_sinks)
    buffer: BufferConfig = field(default_factory=BufferConfig)
    spill: SpillConfig = field(default_factory=SpillConfig)
    uplink: UplinkConfig = field(default_factory=UplinkConfig)
    supervisor: SupervisorConfig = field(default_factory=SupervisorConfig)
    http: HttpConfig = field(default_factory=HttpConfig)

    def check(self) -> list[tuple[str, str]]:
        issues: list[tuple[str, str]] = []
        for key, items in (("statistics", self.statistics), ("probes", self.probes),
                           ("thresholds", self.thresholds), ("sinks", self.sinks)):
            seen: set[str] = set()
            for i, item in enumerate(items):
                name = item.name
                if name in seen:
                    issues.append(
                        (f"{key}[{i}].name", f"expected a unique name, got {name!r} twice")
                    )
                seen.add(name)
        issues += reserved_threshold_issues(self.thresholds)
        if self.interval <= 0:
            issues.append(("interval", f"expected a duration above 0, got {self.interval:g}s"))
        return issues

    # -- resolved defaults -------------------------------------------------

    def resolved_host(self) -> str:
        if self.host:
            return self.host
        import socket

        return socket.gethostname()

    def resolved_state_dir(self) -> str:
        """``state_dir``, else systemd's ``$STATE_DIRECTORY``, else /var/lib/pharos
        as root, else ``$XDG_STATE_HOME/pharos`` (``~/.local/state/pharos``)."""
        if self.state_dir:
            return self.state_dir
        env = os.environ.get("STATE_DIRECTORY")
        if env:
            return env.split(":")[0]
        if os.geteuid() == 0:
            return "/var/lib/pharos"
        base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
        return os.path.join(base, "pharos")
