"""Compiled thresholds: ``Rule`` turns a ``ThresholdConfig`` into something fast to apply.

A rule knows its metric, its label globs (``match``, fnmatch syntax, case
sensitive; a label the sample lacks never matches), its levels and limits,
its window and its resolved soak/cool. ``rule_id`` is stable: the sha256 of
a canonical description of everything that changes the alerting behaviour
(name, metric, op, levels and limits, match, window, resolved soak/cool);
the ``summary`` template is left out, so editing only the wording keeps the
state of the alerts across a reload.

Levels: ``above`` breaches when ``value > limit``, ``below`` when
``value < limit``; with several levels the breached level is the most severe
one whose limit is crossed (for ``above``: the highest level exceeded; for
``below``: the level of the lowest limit crossed). NaN never breaches.
Windowed rules skip the soak (it is forced to 0) and keep the cool.

``absent: DURATION`` rules watch for missing data instead: their one limit is the
duration (``op`` above: the value judged is the age of the last sample), their soak is
0 (the duration already waits) and their cool is the threshold's own ``cool``, else 0
(they resolve when data returns). ``window.mode: predict`` rules judge the trend
extrapolated ``window_ahead`` seconds (see ``pharosd.alerting.trend``).
"""

from __future__ import annotations

import fnmatch
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pharosd.alerting.config import AlertDefaults, LevelLimits, ThresholdConfig
from pharosd.alerting.machine import LEVEL_RANK, AlertMachine, Observation
from pharosd.alerting.window import Mode
from pharosd.digest import sha256
from pharosd.errors import ConfigError, ConfigIssue
from pharosd.model import Labels, Level, Op, Sample

LEVELS: tuple[Level, ...] = ("info", "warning", "critical")

_Matcher = Callable[[str], bool]


@dataclass(frozen=True, slots=True)
class Rule:
    """One compiled threshold. Build with ``Rule.compile(config, defaults)``.

    ``limits`` are ``(level, limit)`` pairs from the least to the most severe.
    """

    name: str
    metric: str
    op: Op
    limits: tuple[tuple[Level, float], ...]
    match: tuple[tuple[str, str], ...]
    window_over: float | None
    window_mode: Mode | None
    soak: float
    cool: float
    summary: str | None
    rule_id: str
    _matchers: tuple[tuple[str, _Matcher], ...] = field(compare=False, repr=False)
    _nearest: float = field(compare=False, repr=False)
    absent: float | None = None           # seconds without data that breach
    window_ahead: float | None = None     # predict: seconds ahead of now

    @classmethod
    def compile(cls, config: ThresholdConfig, defaults: AlertDefaults) -> Rule:
        """Resolve the defaults of ``defaults`` into ``config`` and compile it."""
        op: Op = "above" if config.above is not None or config.absent else "below"
        raw = config.above if config.above is not None else config.below
        absent = None if config.absent is None else float(config.absent)
        level = config.level or defaults.level
        limits = (((level, absent),) if absent is not None
                  else _limits(config.name, raw, level))
        window = config.window
        soak = 0.0 if window is not None or absent is not None else float(
            config.soak if config.soak is not None else defaults.soak)
        cool = float(config.cool if config.cool is not None
                     else 0.0 if absent is not None else defaults.cool)
        ahead = (None if window is None or window.mode != "predict"
                 else float(window.ahead or 0.0))
        match = tuple(sorted((str(k), str(v)) for k, v in config.match.items()))
        canon: dict[str, object] = {
            "name": config.name,
            "metric": config.metric,
            "op": op,
            "limits": [[lvl, lim] for lvl, lim in limits],
            "match": [list(kv) for kv in match],
            "window": None if window is None else [float(window.over), window.mode],
            "soak": soak,
            "cool": cool,
        }
        # Keys added later appear only when used, so existing rules keep their rule_id.
        if absent is not None:
            canon["absent"] = absent
        if ahead is not None:
            assert window is not None
            canon["window"] = [float(window.over), "predict", ahead]
        blob = json.dumps(canon, sort_keys=True, separators=(",", ":"))
        return cls(
            name=config.name,
            metric=config.metric,
            op=op,
            limits=limits,
            match=match,
            window_over=None if window is None else float(window.over),
            window_mode=None if window is None else window.mode,
            soak=soak,
            cool=cool,
            summary=config.summary,
            rule_id=sha256(blob.encode()).hexdigest(),
            absent=absent,
            window_ahead=ahead,
            _matchers=tuple((k, _glob(v)) for k, v in match),
            _nearest=(min if op == "above" else max)(lim for _, lim in limits),
        )

    @property
    def machine(self) -> AlertMachine:
        return AlertMachine(soak=self.soak, cool=self.cool)

    @property
    def nearest(self) -> float:
        """The limit a value has to cross to breach at all (above: the lowest)."""
        return self._nearest

    @property
    def multi_level(self) -> bool:
        return len(self.limits) > 1

    @property
    def windowed(self) -> bool:
        return self.window_over is not None

    def matches(self, sample: Sample) -> bool:
        """True if ``sample`` is of this rule's metric and its labels match."""
        return sample.metric == self.metric and self.matches_labels(sample.labels)

    def matches_labels(self, labels: Labels) -> bool:
        for name, matcher in self._matchers:
            for k, v in labels:
                if k == name:
                    if not matcher(v):
                        return False
                    break
            else:
                return False
        return True

    def observe(self, value: float) -> Observation:
        """The observation of one value (a sample's, or a window's aggregate)."""
        above = self.op == "above"
        hit: tuple[Level, float] | None = None
        if not math.isnan(value):
            for level, limit in self.limits:      # least to most severe
                if value > limit if above else value < limit:
                    hit = (level, limit)
        if hit is not None:
            return Observation(hit[0], value, hit[1])
        return Observation(None, value, self._nearest)

    def observation(self, sample: Sample) -> Observation:
        """The observation of one sample, ignoring any window."""
        return self.observe(sample.value)


def compile_rules(thresholds: Sequence[ThresholdConfig], defaults: AlertDefaults) -> list[Rule]:
    """Compile every threshold, in order."""
    return [Rule.compile(t, defaults) for t in thresholds]


def _limits(name: str, raw: float | LevelLimits | None,
            default_level: Level) -> tuple[tuple[Level, float], ...]:
    if isinstance(raw, LevelLimits):
        pairs = [(lvl, getattr(raw, lvl)) for lvl in LEVELS]
        out = tuple((lvl, float(lim)) for lvl, lim in pairs if lim is not None)
        if not out:
            raise _invalid(name, "expected at least one of info, warning, critical")
        return tuple(sorted(out, key=lambda p: LEVEL_RANK[p[0]]))
    if raw is None:
        raise _invalid(name, "expected exactly one of 'above' or 'below'")
    return ((default_level, float(raw)),)


def _invalid(name: str, message: str) -> ConfigError:
    # Unreachable for a config that passed validation; kept for direct callers.
    return ConfigError([ConfigIssue("<thresholds>", 0, 0, f"thresholds.{name}", message)])


def _glob(pattern: str) -> _Matcher:
    if not any(c in pattern for c in "*?["):
        return pattern.__eq__
    rx = re.compile(fnmatch.translate(pattern))
    return lambda v: rx.match(v) is not None
