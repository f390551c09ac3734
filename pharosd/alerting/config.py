"""Config shapes of alerting: thresholds (limits, levels, windows, absent, soak and cool)
and maintenance windows.

``ThresholdConfig`` is one entry of the ``thresholds:`` list and ``MaintenanceConfig``
one of ``maintenance:``; docs/alerting.md documents every key. ``None`` in
``level``/``soak``/``cool`` means "inherit the top-level default": ``AlertDefaults`` is
what the alerting code needs of the top-level config to resolve them (the assembled
``Config`` satisfies it).

Globs (``match``, maintenance ``rules`` and ``labels``) and the ``summary`` template are
checked here, at load: a ``summary`` is a ``str.format`` template over text fields
(``PLACEHOLDERS`` and the label names); ``template_issue`` refuses what can never render
(positional or nested fields, attribute and index access, conversions other than
``!s``/``!r``, a width over ``MAX_WIDTH``) and renders the rest against a sample, so a
bad format spec is a ``check-config`` error, not an evaluator crash. Label names are
known only at run time: an unknown one renders empty here (at run time the generated
summary stands in).
"""

from __future__ import annotations

import fnmatch
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from pharosd.model import Level
from pharosd.types import Duration, FrozenDict
from pharosd.units import format_duration


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
    """Evaluate an aggregate over a sliding window instead of each sample; ``predict``
    judges the least-squares trend over the window extrapolated ``ahead`` of now."""

    over: Duration
    mode: Literal["avg", "min", "max", "predict"] = "avg"
    ahead: Duration | None = None     # predict: how far ahead of now the trend is read

    def check(self) -> list[tuple[str, str]]:
        issues: list[tuple[str, str]] = []
        if self.over <= 0:
            issues.append(("over", f"expected a duration above 0, got {self.over:g}s"))
        if self.ahead is not None and self.mode != "predict":
            issues.append(("ahead", f"expected 'ahead' only with mode: predict, "
                                    f"got mode {self.mode}"))
        if self.mode == "predict" and self.ahead is None:
            issues.append(("mode", "expected 'ahead' with mode: predict "
                                   "(how far ahead of now to read the trend)"))
        if self.ahead is not None and self.ahead < 0:
            issues.append(("ahead", f"expected a duration of 0 or more, got {self.ahead:g}s"))
        return issues


@dataclass(frozen=True)
class ThresholdConfig:
    """A condition on one metric; each label set that matches is its own alert."""

    name: str
    metric: str
    above: float | LevelLimits | None = None
    below: float | LevelLimits | None = None
    absent: Duration | None = None  # fires when the metric has not arrived for this long
    match: FrozenDict[str] = field(default_factory=FrozenDict)
    window: WindowConfig | None = None
    level: Level | None = None
    soak: Duration | None = None
    cool: Duration | None = None
    summary: str | None = None      # overrides the generated summary text

    def check(self) -> list[tuple[str, str]]:
        issues = self._shape_issues()
        for label, pattern in self.match.items():
            problem = glob_issue(pattern)
            if problem:
                issues.append((f"match.{label}", problem))
        if self.summary is not None:
            problem = template_issue(self.summary)
            if problem:
                issues.append(("summary", problem))
        return issues

    def _shape_issues(self) -> list[tuple[str, str]]:
        if self.absent is not None:
            if self.above is not None or self.below is not None:
                key = "above" if self.above is not None else "below"
                return [("absent", f"expected either 'absent' or '{key}', not both")]
            if self.absent <= 0:
                return [("absent", f"expected a duration above 0, got {self.absent:g}s")]
            if self.window is not None:
                return [("window", "expected no window with 'absent'")]
            return []
        if (self.above is None) == (self.below is None):
            return [("", "expected exactly one of 'above', 'below' or 'absent'")]
        if isinstance(self.above or self.below, LevelLimits) and self.level is not None:
            return [("level", "expected no 'level' when the limit names its levels")]
        return []


def glob_issue(pattern: str) -> str | None:
    """Why a ``match`` glob cannot be compiled, or None."""
    try:
        re.compile(fnmatch.translate(pattern))
    except (re.error, RecursionError, OverflowError, MemoryError) as e:
        return f"expected a glob pattern, got {len(pattern)} characters that do not compile ({e})"
    return None


Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
MAX_DURATION = 7 * 86400.0          # the longest maintenance window, seconds
_START = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")


def parse_start(text: str) -> int:
    """``"HH:MM"`` (24-hour clock) -> minutes after midnight; ``ValueError`` otherwise."""
    m = _START.fullmatch(text.strip())
    if m is None:
        raise ValueError(f"expected a time of day as HH:MM (00:00 to 23:59), got {text!r}")
    return int(m[1]) * 60 + int(m[2])


@dataclass(frozen=True)
class MaintenanceConfig:
    """A recurring window, in the host's local time, during which matching alerts
    are held back as if silenced (``pharosd.alerting.maintenance``)."""

    name: str
    start: str                        # HH:MM, local time of the host
    duration: Duration
    days: tuple[Day, ...] = ()        # the days it opens on; none: every day
    rules: tuple[str, ...] = ()       # rule globs (any); none: every rule
    labels: FrozenDict[str] = field(default_factory=FrozenDict)   # label globs (all)

    def check(self) -> list[tuple[str, str]]:
        issues: list[tuple[str, str]] = []
        try:
            parse_start(self.start)
        except ValueError as e:
            issues.append(("start", str(e)))
        if not 0 < self.duration <= MAX_DURATION:
            issues.append(("duration", "expected a duration above 0s and at most 7d, "
                                       f"got {format_duration(self.duration)}"))
        for i, pattern in enumerate(self.rules):
            problem = glob_issue(pattern)
            if problem:
                issues.append((f"rules[{i}]", problem))
        for label, pattern in self.labels.items():
            problem = glob_issue(pattern)
            if problem:
                issues.append((f"labels.{label}", problem))
        return issues


class Polled(Protocol):
    """A statistic or probe entry as the evaluator sees it: its name and interval."""

    @property
    def name(self) -> str: ...

    @property
    def every(self) -> Duration | None: ...


class AlertDefaults(Protocol):
    """What alerting reads of the top-level config: the defaults a threshold
    inherits and the poll intervals of the statistics and probes (to tell a
    late sample from a missing one). The assembled ``Config`` satisfies it."""

    @property
    def statistics(self) -> Sequence[Polled]: ...

    @property
    def probes(self) -> Sequence[Polled]: ...

    @property
    def interval(self) -> Duration: ...

    @property
    def soak(self) -> Duration: ...

    @property
    def cool(self) -> Duration: ...

    @property
    def level(self) -> Level: ...


# -- summary templates -----------------------------------------------------------

PLACEHOLDERS = ("rule", "metric", "value", "limit", "level", "previous_level", "op",
                "note", "labels", "status", "duration", "reason")
"""Template placeholders besides the label names (which lose to these)."""

MAX_WIDTH = 1000            # the largest width or precision a format spec may ask for
MAX_RENDERED = 4096         # characters of a rendered summary kept (longer is cut)
_NUMBERS = re.compile(r"\d+")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class _Sample(dict[str, str]):
    """Every placeholder a short text; a name the sample lacks (a label) renders empty."""

    def __missing__(self, key: str) -> str:
        return ""


def template_issue(template: str) -> str | None:
    """Why ``template`` cannot render, or None when it can."""
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as e:
        return f"expected a format template, got {_short(template)} ({e})"
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        if not _NAME.fullmatch(name):
            return (f"expected placeholders like {{value}} or {{mount}} (a name), "
                    f"got {{{name}}} in {_short(template)}")
        if conversion not in (None, "s", "r"):
            return f"expected no conversion or !s or !r, got !{conversion} in {{{name}}}"
        if spec and "{" in spec:
            return f"expected no nested placeholder in the format of {{{name}}}"
        if spec and any(len(n) > 6 or int(n) > MAX_WIDTH for n in _NUMBERS.findall(spec)):
            return f"expected a width of at most {MAX_WIDTH} in {{{name}:{spec}}}"
    sample = _Sample({p: p for p in PLACEHOLDERS})
    try:
        template.format_map(sample)
    except Exception as e:   # a bad spec for a text field, for instance {value:.1f}
        return f"expected a template that renders, got {_short(template)} ({e})"
    return None


def _short(text: str, limit: int = 80) -> str:
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"... ({len(text)} chars)"
