"""The shape of a rule-test file (``pharosd test-rules FILE...``), as frozen dataclasses.

A file names the config whose thresholds it tests and lists tests::

    config: pharos.yaml              # relative to this file
    tests:
      - name: memory-high fires after its soak
        interval: 1m                 # the spacing of the input values
        input:
          - {metric: memory.used_percent, values: "50 95x10"}
        expect:                      # the exact set of FIRING alerts at each time
          - {at: 1m, alerts: []}
          - {at: 3m, alerts: [{rule: memory-high, level: critical}]}
        events:                      # optional: every event of the run, exactly
          - {at: 3m, rule: memory-high, status: firing}

The generic config loader reads it (every error positioned); ``values`` is checked
with ``pharosd.alerting.notation``. Running a test is ``pharosd.alerting.rulerun``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pharosd.alerting.notation import NotationError, expand
from pharosd.model import Level, Status
from pharosd.types import Duration, FrozenDict


@dataclass(frozen=True)
class SeriesInput:
    """One input series: a metric, its labels, and its values in the expanding notation."""

    metric: str
    values: str
    labels: FrozenDict[str] = field(default_factory=FrozenDict)

    def check(self) -> list[tuple[str, str]]:
        try:
            expand(self.values)
        except NotationError as e:
            return [("values", str(e))]
        return []


@dataclass(frozen=True)
class ExpectedAlert:
    """A FIRING alert: its rule, and optionally its level and (a subset of) its labels."""

    rule: str
    level: Level | None = None
    labels: FrozenDict[str] = field(default_factory=FrozenDict)


@dataclass(frozen=True)
class AlertsAt:
    """The exact set of FIRING alerts (firing, or resolving during its cool) at ``at``."""

    at: Duration
    alerts: tuple[ExpectedAlert, ...] = ()


@dataclass(frozen=True)
class ExpectedEvent:
    """An alert event of the run: when, which rule, firing or resolved."""

    at: Duration
    rule: str
    status: Status
    level: Level | None = None
    labels: FrozenDict[str] = field(default_factory=FrozenDict)


@dataclass(frozen=True)
class RuleTest:
    """One test: input series spaced ``interval`` apart from time 0, and what to expect."""

    name: str
    interval: Duration
    input: tuple[SeriesInput, ...]
    expect: tuple[AlertsAt, ...] = ()
    events: tuple[ExpectedEvent, ...] | None = None   # given: the run's events, exactly

    def check(self) -> list[tuple[str, str]]:
        issues: list[tuple[str, str]] = []
        if self.interval <= 0:
            issues.append(("interval", f"expected a duration above 0, got {self.interval:g}s"))
        if not self.input:
            issues.append(("input", "expected at least one series"))
        if not self.expect and self.events is None:
            issues.append(("", "expected 'expect' or 'events' (what the test checks)"))
        for i, e in enumerate(self.expect):
            if e.at < 0:
                issues.append((f"expect[{i}].at", f"expected a duration of 0 or more, "
                                                  f"got {e.at:g}s"))
        for i, ev in enumerate(self.events or ()):
            if ev.at < 0:
                issues.append((f"events[{i}].at", f"expected a duration of 0 or more, "
                                                  f"got {ev.at:g}s"))
        return issues


@dataclass(frozen=True)
class RuleTestFile:
    """A rule-test file: the config it tests (relative to the file) and its tests."""

    config: str
    tests: tuple[RuleTest, ...]

    def check(self) -> list[tuple[str, str]]:
        issues: list[tuple[str, str]] = []
        seen: set[str] = set()
        for i, t in enumerate(self.tests):
            if t.name in seen:
                issues.append((f"tests[{i}].name", f"expected a unique name, got {t.name!r} "
                                                   "twice"))
            seen.add(t.name)
        if not self.tests:
            issues.append(("tests", "expected at least one test"))
        return issues
