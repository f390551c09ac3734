"""Maintenance windows: recurring, calendar-based holds on the delivery of matching alerts.

``maintenance: [{name, rules, labels, start: "HH:MM", duration, days: [mon, ..]}]``.
A window opens at ``start`` local time on each of its ``days`` (every day when none are
given) and stays open for ``duration`` of elapsed time, so a window may cross midnight
(``start: "23:00", duration: 2h`` on ``fri`` covers Friday 23:00 to Saturday 01:00; the
day is the day it opens). Local time is a ``tzinfo`` passed in (the host's zone,
``local_zone``), and daylight-saving changes are handled by that zone:

* a start inside the spring-forward gap (02:30 in Europe/Berlin on the last Sunday of
  March) opens at the same instant the clock would have shown it without the jump
  (03:30 summer time) — Python's ``fold=0`` rule;
* a start inside the repeated autumn hour opens at its first occurrence;
* ``duration`` is elapsed time: a 2h window is 2 hours long on those days too.

Pure: every function takes the wall time (seconds) and the zone; only ``local_zone``
reads the host's settings, and the shell calls it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo

from pharosd.alerting.config import MAX_DURATION, parse_start
from pharosd.alerting.matchers import Selector
from pharosd.model import Labels
from pharosd.units import format_duration

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True, slots=True)
class Window:
    """One maintenance window; ``start`` in minutes after midnight, ``days`` 0=mon..6=sun."""

    name: str
    selector: Selector
    start: int
    duration: float
    days: frozenset[int] = frozenset()

    @classmethod
    def of(cls, name: str, start: str, duration: float, days: Iterable[str] = (),
           rules: Iterable[str] = (), labels: Mapping[str, str] | None = None) -> Window:
        if not 0 < duration <= MAX_DURATION:
            raise ValueError(f"expected a duration above 0s and at most 7d, got {duration:g}s")
        return cls(name, Selector.of(rules, labels or {}), parse_start(start), float(duration),
                   frozenset(DAYS.index(d) for d in days))

    def opens_on(self, day: date) -> bool:
        return not self.days or day.weekday() in self.days

    def opening(self, day: date, tz: tzinfo) -> float:
        """The instant (wall seconds) the window opens on local ``day``."""
        local = datetime.combine(day, time(self.start // 60, self.start % 60), tzinfo=tz)
        return local.timestamp()

    def occurrence(self, now: float, tz: tzinfo) -> tuple[float, float] | None:
        """``(opens, closes)`` of the occurrence open at ``now``, or None."""
        today = datetime.fromtimestamp(now, tz).date()
        back = math.ceil(self.duration / 86400.0) + 1
        for k in range(back + 1):
            day = today - timedelta(days=k)
            if not self.opens_on(day):
                continue
            opens = self.opening(day, tz)
            if opens <= now < opens + self.duration:
                return opens, opens + self.duration
        return None

    def next_opening(self, now: float, tz: tzinfo) -> float:
        """The first opening after ``now`` (within the next 8 days)."""
        today = datetime.fromtimestamp(now, tz).date()
        for k in range(9):
            day = today + timedelta(days=k)
            if self.opens_on(day):
                opens = self.opening(day, tz)
                if opens > now:
                    return opens
        raise AssertionError("a window opens at least once a week")

    def matches(self, rule: str, labels: Labels) -> bool:
        return self.selector.matches(rule, labels)

    def describe(self) -> str:
        days = ",".join(DAYS[d] for d in sorted(self.days)) or "daily"
        return (f"{days} {self.start // 60:02d}:{self.start % 60:02d} "
                f"for {format_duration(int(self.duration))}")


@dataclass(frozen=True, slots=True)
class Schedule:
    """Every configured window, with the zone they are read in."""

    windows: tuple[Window, ...] = ()
    tz: tzinfo | None = None      # None: UTC (tests); the shell passes local_zone()

    def _zone(self) -> tzinfo:
        if self.tz is not None:
            return self.tz
        from zoneinfo import ZoneInfo

        return ZoneInfo("UTC")

    def in_effect(self, now: float) -> list[tuple[Window, float, float]]:
        """``(window, opens, closes)`` of every window open at ``now``."""
        out: list[tuple[Window, float, float]] = []
        for w in self.windows:
            occ = w.occurrence(now, self._zone())
            if occ is not None:
                out.append((w, *occ))
        return out

    def holding(self, rule: str, labels: Labels,
                now: float) -> tuple[Window, float] | None:
        """The open window holding this alert back and when it closes (the latest), or None."""
        best: tuple[Window, float] | None = None
        for w, _, closes in self.in_effect(now):
            if w.matches(rule, labels) and (best is None or closes > best[1]):
                best = (w, closes)
        return best


def local_zone(environ: Mapping[str, str] | None = None,
               localtime: str = "/etc/localtime") -> tzinfo:
    """The host's time zone: ``$TZ`` (a zone name), else /etc/localtime, else UTC."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError  # 0.5 MiB: only with windows

    env = os.environ if environ is None else environ
    name = env.get("TZ", "").lstrip(":")
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            pass
    try:
        with open(localtime, "rb") as f:
            return ZoneInfo.from_file(f, key="localtime")
    except (OSError, ValueError):
        return ZoneInfo("UTC")
