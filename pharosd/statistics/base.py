"""What every built-in statistic shares: the base class, name filters, item errors.

* ``Statistic``: a ``pharosd.source.Source`` (``name``, ``every``,
  ``blocking = False``, ``collect(now)``) with a ``key`` that identifies its
  configuration, so a reload that leaves it unchanged keeps the running
  instance (and its rate state).
* ``NameFilter``: the ``include``/``exclude`` globs of a statistic, compiled
  once. Without ``include``, a statistic's default exclusions apply (loop
  devices, ``lo``, ...); an ``include`` list names exactly what to keep, so it
  can bring a default exclusion back. ``exclude`` always applies last.
* ``ItemErrors``: one item of a statistic (a mount, a device) that fails is
  skipped and logged once per distinct error, and once when it recovers; the
  rest of the statistic goes on.
* ``Every``: a "refresh at most every N seconds" gate on the monotonic clock,
  for work worth caching between polls (the mount list, the cpu count).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Hashable, Iterable, Mapping, Sequence

import structlog

from pharosd.clock import Clock, SystemClock
from pharosd.errors import describe_error
from pharosd.model import Labels, Sample
from pharosd.statistics.config import StatisticConfig

log = structlog.get_logger(__name__)

class Statistic:
    """Base of the built-in statistics; subclasses implement ``collect``."""

    blocking: bool = False

    def __init__(self, cfg: StatisticConfig, every: float) -> None:
        self.cfg = cfg
        self.name: str = cfg.name
        self.every: float = float(every)
        self.key: Hashable = ("statistic", cfg.name, self.every, cfg.per_core,
                              tuple(cfg.include), tuple(cfg.exclude), tuple(cfg.match))

    def collect(self, now: float) -> list[Sample]:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} every={self.every:g}s>"


def _compile(patterns: Iterable[str]) -> re.Pattern[str] | None:
    pats = [fnmatch.translate(p) for p in patterns]
    if not pats:
        return None
    return re.compile("|".join(f"(?:{p})" for p in pats))


def rate_samples(rates: Mapping[tuple[str, Labels], float], now: float) -> list[Sample]:
    """Samples from ``RateTracker.observe`` output keyed by ``(metric, labels)``."""
    return [Sample(metric, labels, value, now) for (metric, labels), value in rates.items()]


class NameFilter:
    """Keep a name when it matches ``include`` (or, without ``include``, does not
    match ``default_exclude``) and does not match ``exclude``. Globs are
    ``fnmatch`` style and case-sensitive."""

    __slots__ = ("_default_exclude", "_exclude", "_include")

    def __init__(self, include: Sequence[str] = (), exclude: Sequence[str] = (),
                 default_exclude: Sequence[str] = ()) -> None:
        self._include = _compile(include)
        self._exclude = _compile(exclude)
        self._default_exclude = None if include else _compile(default_exclude)

    def __call__(self, name: str) -> bool:
        if self._include is not None:
            if not self._include.match(name):
                return False
        elif self._default_exclude is not None and self._default_exclude.match(name):
            return False
        return not (self._exclude is not None and self._exclude.match(name))


class ItemErrors:
    """Per-item failure state of one statistic, logging each change once."""

    __slots__ = ("_failing", "_statistic")

    def __init__(self, statistic: str) -> None:
        self._statistic = statistic
        self._failing: dict[str, str] = {}

    def failed(self, item: str, error: BaseException) -> None:
        message = describe_error(error)
        if self._failing.get(item) != message:
            self._failing[item] = message
            log.warning("statistic_item_failed", statistic=self._statistic, item=item,
                        error=message)

    def ok(self, item: str) -> None:
        if self._failing.pop(item, None) is not None:
            log.info("statistic_item_recovered", statistic=self._statistic, item=item)

    def retain(self, items: Iterable[str]) -> None:
        """Forget the state of items that no longer exist (a removed mount)."""
        keep = set(items)
        for item in [i for i in self._failing if i not in keep]:
            del self._failing[item]

    def failing(self) -> dict[str, str]:
        """Items failing now, with their error."""
        return dict(self._failing)


class Every:
    """True from ``due()`` at most once per ``seconds`` (and on the first call)."""

    __slots__ = ("_clock", "_last", "seconds")

    def __init__(self, seconds: float, clock: Clock | None = None) -> None:
        self.seconds = seconds
        self._clock: Clock = clock or SystemClock()
        self._last: float | None = None

    def due(self) -> bool:
        now = self._clock.monotonic()
        if self._last is None or now - self._last >= self.seconds or now < self._last:
            self._last = now
            return True
        return False

    def reset(self) -> None:
        """Make the next ``due()`` true."""
        self._last = None
