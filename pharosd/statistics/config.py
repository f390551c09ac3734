"""Config shape of the built-in statistics: the names and the per-statistic keys.

``StatisticConfig`` is one entry of the ``statistics:`` list (``- cpu`` or
``- {name: cpu, every: 5s, per_core: true}``); docs/metrics.md says what each
statistic measures. ``None`` in ``every`` means the top-level ``interval``.

An entry with ``python:`` is a statistic written in Python (docs/plugins.md):
``{name: queue, python: "module:Class", every: 5s, options: {..}}``, or
``python: NAME`` for a class a package registers under the entry-point group
``pharosd.statistics``. Its name is the operator's, not a built-in's; only
the shape of ``python`` is checked here: importing it is the config's
assembly's job (``pharosd.config.schema``), where ``plugin_dirs`` is known.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from pharosd.types import Data, Duration, FrozenDict

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
ENTRY_POINT_GROUP = "pharosd.statistics"
PLUGIN_TIMEOUT = 10.0      # default `timeout` of a Python statistic's collect()

_DOTTED = r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*"
PYTHON_SPEC = re.compile(rf"(?P<module>{_DOTTED}):(?P<attr>{_DOTTED})")
ENTRY_POINT_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


@dataclass(frozen=True)
class StatisticConfig:
    """One statistic: ``- cpu``, ``- {name: cpu, every: 5s, per_core: true}``, or a
    Python one: ``- {name: queue, python: "mod:Class", options: {..}}``."""

    __scalar_field__: ClassVar[str] = "name"

    name: str                       # a StatisticName, or any name with `python`
    every: Duration | None = None
    per_core: bool = False          # cpu: also cpu.percent{cpu="N"}
    include: tuple[str, ...] = ()   # disk/diskio/network/temperature: globs to keep
    exclude: tuple[str, ...] = ()   # ... and globs to drop (after include; services too)
    match: tuple[str, ...] = ()     # services: unit globs; empty: *.service
    python: str | None = None       # "module:Class", or an entry point's name
    options: FrozenDict[Data] = field(default_factory=FrozenDict)   # python: the class's dict
    timeout: Duration | None = None  # python: collect() longer than this counts as hung

    @property
    def resolved_timeout(self) -> float:
        return float(self.timeout if self.timeout is not None else PLUGIN_TIMEOUT)

    def check(self) -> list[tuple[str, str]]:
        if self.python is not None:
            return self._python_issues()
        issues = self._builtin_issues()
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

    def _builtin_issues(self) -> list[tuple[str, str]]:
        issues: list[tuple[str, str]] = []
        if self.name not in STATISTIC_NAMES:
            import difflib  # for a suggestion after an error only

            close = difflib.get_close_matches(self.name, STATISTIC_NAMES, n=1)
            hint = f", did you mean {close[0]!r}?" if close else ""
            issues.append(("name", f"expected one of {', '.join(STATISTIC_NAMES)}, "
                                   f"got {self.name!r}{hint}"))
        for key, given in (("options", bool(self.options)), ("timeout", self.timeout is not None)):
            if given:
                issues.append((key, f"expected {key} only on a Python statistic (`python:`), "
                                    f"got it on {self.name}"))
        return issues

    def _python_issues(self) -> list[tuple[str, str]]:
        issues: list[tuple[str, str]] = []
        spec = self.python or ""
        if self.name in STATISTIC_NAMES:
            issues.append(("name", f"expected a name of its own for a Python statistic, got "
                                   f"the built-in {self.name!r}"))
        elif not self.name or any(c.isspace() or not c.isprintable() for c in self.name):
            issues.append(("name", f"expected a name without spaces, got {self.name!r}"))
        if not (PYTHON_SPEC.fullmatch(spec) or ENTRY_POINT_NAME.fullmatch(spec)):
            issues.append(("python", f"expected 'module:Class' or the name of a "
                                     f"{ENTRY_POINT_GROUP} entry point, got {spec!r}"))
        for key, given in (("per_core", self.per_core), ("include", bool(self.include)),
                           ("exclude", bool(self.exclude)), ("match", bool(self.match))):
            if given:
                issues.append((key, f"expected {key} only on a built-in statistic, "
                                    f"got it on the Python statistic {self.name}"))
        if self.timeout is not None and self.timeout <= 0:
            issues.append(("timeout", f"expected a duration above 0, got {self.timeout:g}s"))
        return issues


def default_statistics() -> tuple[StatisticConfig, ...]:
    """The statistics polled when the config names none."""
    return tuple(StatisticConfig(name=n) for n in DEFAULT_STATISTICS)  # type: ignore[arg-type]
