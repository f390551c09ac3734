"""Config shapes of the thresholds: limits, levels, windows, soak and cool.

``ThresholdConfig`` is one entry of the ``thresholds:`` list; docs/alerting.md
documents every key. ``None`` in ``level``/``soak``/``cool`` means "inherit
the top-level default": ``AlertDefaults`` is what the alerting code needs of
the top-level config to resolve them (the assembled ``Config`` satisfies it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from pharosd.model import Level
from pharosd.types import Duration, FrozenDict


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
