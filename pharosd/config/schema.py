"""The top-level config: pharos.yaml assembled from each family's dataclasses.

Each family owns the shapes of its section (``pharosd.statistics.config``,
``pharosd.probes.config``, ``pharosd.alerting.config``, ``pharosd.sinks.config``,
``pharosd.pipeline.config``, ``pharosd.http.config``); this module only
assembles them into ``Config`` with the top-level defaults, the supervisor's
limits and the checks that span sections. ``pharosd.config.loader`` turns a
YAML document into these classes generically, from the type hints:

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

A statistic written in Python (``python:``) is imported by ``Config.check``,
after ``plugin_dirs`` joined the import path, so a plugin that fails to import
is an error positioned at its ``python:`` key (``check-config`` included).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from pharosd.alerting.config import MaintenanceConfig, ThresholdConfig
from pharosd.errors import PluginError
from pharosd.http.config import HttpConfig
from pharosd.model import Level
from pharosd.pipeline.config import BufferConfig, SpillConfig, UplinkConfig
from pharosd.probes.config import ProbeConfig, reserved_threshold_issues
from pharosd.sinks.config import FileSinkConfig, LogSinkConfig, SinkConfig
from pharosd.statistics.config import StatisticConfig, default_statistics
from pharosd.types import Duration


@dataclass(frozen=True)
class SupervisorConfig:
    """OTP-style restart intensity: more than max_restarts in period gives up."""

    max_restarts: int = field(default=5, metadata={"min": 0})
    period: Duration = Duration(60.0)


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
    statistics: tuple[StatisticConfig, ...] = field(default_factory=default_statistics)
    probes: tuple[ProbeConfig, ...] = ()
    thresholds: tuple[ThresholdConfig, ...] = ()
    sinks: tuple[SinkConfig, ...] = field(default_factory=_default_sinks)
    maintenance: tuple[MaintenanceConfig, ...] = ()
    buffer: BufferConfig = field(default_factory=BufferConfig)
    spill: SpillConfig = field(default_factory=SpillConfig)
    uplink: UplinkConfig = field(default_factory=UplinkConfig)
    supervisor: SupervisorConfig = field(default_factory=SupervisorConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    include: tuple[str, ...] = ()     # drop-in globs, read by pharosd.config.include
    plugin_dirs: tuple[str, ...] = ()   # appended to the import path for `python:` statistics

    def check(self) -> list[tuple[str, str]]:
        issues: list[tuple[str, str]] = []
        for key, items in (("statistics", self.statistics), ("probes", self.probes),
                           ("thresholds", self.thresholds), ("sinks", self.sinks),
                           ("maintenance", self.maintenance)):
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
        if self.uplink.remote_write:
            issues += compressor_issues()
        issues += self._plugin_issues()
        return issues

    def _plugin_issues(self) -> list[tuple[str, str]]:
        """Import every Python statistic's class (plugins are loaded only when named)."""
        if not self.plugin_dirs and not any(s.python for s in self.statistics):
            return []
        from pharosd.statistics.plugins import add_plugin_dirs, dir_issue, find_class, missing_dirs

        issues: list[tuple[str, str]] = []
        for i, d in enumerate(self.plugin_dirs):
            problem = dir_issue(d)
            if problem is not None:
                issues.append((f"plugin_dirs[{i}]", problem))
        add_plugin_dirs([d for d in self.plugin_dirs if dir_issue(d) is None])
        for i, s in enumerate(self.statistics):
            if s.python is None or s.check():
                continue   # no plugin, or its own entry already reported
            try:
                find_class(s.python)
            except PluginError as e:
                missing = missing_dirs(self.plugin_dirs)
                note = f" (plugin_dirs not found: {', '.join(missing)})" if missing else ""
                issues.append((f"statistics[{i}].python", f"{e}{note}"))
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


def compressor_issues() -> list[tuple[str, str]]:
    """remote_write needs a snappy library; without one the uplink could not start, so
    ``check-config`` says so where the uplink is configured."""
    from pharosd.errors import UplinkError
    from pharosd.pipeline import compression

    try:
        compression.codec()
    except UplinkError as e:
        return [("uplink.remote_write", str(e))]
    return []
