"""The evaluator's bookkeeping: alert instances, rule slots and rule groups.

An ``Instance`` is one alert (a rule and one label set: its machine state, its
window); a ``Slot`` is one compiled rule with its instances; a ``Series`` is what
is known of one label set's samples (when it last reported, the gap before).

Rule groups: the plain thresholds of one metric that differ only in limits,
levels and names.

A plain threshold (no ``window``, no ``absent``) sees exactly the samples of its
metric whose labels match its ``match``; thresholds with the same metric, match,
``op`` and resolved ``cool`` see the same samples *and* forget a silent series at
the same moment (the stale period depends on the cool). The evaluator keeps such
thresholds together in one ``RuleGroup`` so a sample costs about the same with one
threshold or a thousand:

* the label match is computed once per group and label set (cached, bounded);
* what every member would remember of a label set (when it last reported, the gap
  before that, the probe's note) is one ``Series`` shared by the members;
* the members are sorted by the limit a value has to cross to breach (for
  ``above`` the lowest limit of a rule, for ``below`` the highest), so the members
  a value breaches are found by bisection: ``breached(value)``.

A member whose alert is in OK holds no per-label-set object at all (OK remembers
nothing, see ``pharosd.alerting.machine``); ``Series.active`` lists the members
whose alert on that label set is not in OK. A sample is stepped through the
members it breaches and the members already active, nothing else.

The group keeps the evaluator's per-instance bookkeeping exact: a member that has
no instance of a label set (its instance was forgotten as stale, it joined the
group at a reload, or a restore brought back only some members) is in
``Series.forgotten``; the next sample makes its instance again (unless the member
already holds the most instances allowed), and for that one sample its gap is 0
(``Series.fresh``), as a new instance's is.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable
from typing import Any

from pharosd.alerting.machine import OK_STATE, AlertMachine
from pharosd.alerting.rules import Rule
from pharosd.alerting.window import Window
from pharosd.model import Labels, Op, fingerprint

MATCH_CACHE = 4096          # label sets whose match result a group remembers

GroupKey = tuple[str, tuple[tuple[str, str], ...], Op, float]


_NONE: frozenset[Any] = frozenset()


class Series:
    """One label set of one group: what every member of the group saw of it.

    Also the series of one instance of a rule outside any group."""

    __slots__ = ("active", "forgotten", "fresh", "gap", "labels", "last_seen", "note")

    def __init__(self, labels: Labels, now: float) -> None:
        self.labels = labels
        self.last_seen = now
        self.gap = 0.0
        self.note: str | None = None
        self.active: dict[int, Slot] = {}       # member order -> its slot, alert not in OK
        self.forgotten: set[Slot] | frozenset[Slot] = _NONE     # members without an instance
        self.fresh: set[Slot] | frozenset[Slot] = _NONE         # their instance is new

    def gap_of(self, member: Slot) -> float:
        """The gap before the last sample as ``member``'s instance knows it."""
        return 0.0 if member in self.fresh else self.gap


class RuleGroup:
    """The members of one ``GroupKey``, sorted by the limit that breaches them.

    ``sample`` and ``collect`` keep, per member, as many instances as the member
    would hold on its own (at most ``cap``), so a member refuses a new label set
    exactly when it would alone."""

    __slots__ = ("_cache", "_lacking", "_limits", "_members", "above", "key", "matches",
                 "series")

    def __init__(self, key: GroupKey, matches: Callable[[Labels], bool]) -> None:
        self.key = key
        self.above = key[2] == "above"
        self.matches = matches
        self.series: dict[Labels, Series] = {}
        self._cache: dict[Labels, bool] = {}
        self._members: list[tuple[float, int, Slot]] = []   # (limit, order, slot)
        self._limits: list[float] = []
        self._lacking: dict[Slot, int] = {}     # member -> label sets it has no instance of

    def add(self, limit: float, order: int, slot: Slot) -> None:
        self._members.append((limit, order, slot))

    def finish(self) -> None:
        """Sort the members once they are all added."""
        self._members.sort(key=lambda m: (m[0], m[1]))
        self._limits = [m[0] for m in self._members]

    def sample(self, labels: Labels, now: float, note: str | None,
               cap: int) -> tuple[Series | None, int]:
        """A sample of ``labels`` at ``now``: its series (None if no member takes it)
        and how many members refused it for holding ``cap`` instances already."""
        series = self.series.get(labels)
        if series is None:
            if not self.accepts(labels):
                return None, 0
            full: list[Slot] = []
            if len(self.series) >= cap:
                full = [m for _, _, m in self._members if self._count(m) >= cap]
                if len(full) == len(self._members):
                    return None, len(full)
            series = self.series[labels] = Series(labels, now)
            series.note = note
            self._lack(series, full)
            return series, len(full)
        series.gap = now - series.last_seen
        series.last_seen = now
        series.note = note
        refused = 0
        if series.forgotten:
            back = {m for m in series.forgotten if self._count(m) < cap}
            refused = len(series.forgotten) - len(back)
            self._have(series, back)
            series.fresh = back
        elif series.fresh:
            series.fresh = _NONE
        return series, refused

    def forget(self, series: Series, member: Slot) -> None:
        """``member``'s instance of ``series`` was forgotten (stale)."""
        self._lack(series, (member,))
        if len(series.forgotten) >= len(self._members) and not series.active:
            self._drop(series)      # no member has an instance left

    def restore(self, series: Series, member: Slot) -> None:
        self._have(series, {member})

    def new_series(self, labels: Labels, now: float) -> Series:
        """A label set no member has an instance of yet (a restore makes them)."""
        series = self.series[labels] = Series(labels, now)
        self._lack(series, self.slots)
        return series

    def instances(self) -> int:
        """How many (member, label set) instances the group stands for."""
        return sum(len(self._members) - len(x.forgotten) for x in self.series.values())

    def collect(self, now: float, period: Callable[[float], float]) -> int:
        """Forget the instances of members in OK whose label set has been silent longer
        than ``period(gap)``; a label set no member has left goes. How many forgot."""
        count = 0
        for series in list(self.series.values()):
            silent = now - series.last_seen
            if silent <= period(0.0):
                continue        # the shortest period (a fresh gap of 0) not even passed
            gone = [m for _, order, m in self._members if m not in series.forgotten
                    and order not in series.active and silent > period(series.gap_of(m))]
            count += len(gone)
            self._lack(series, gone)
            if len(series.forgotten) >= len(self._members) and not series.active:
                self._drop(series)
        return count

    def adopt(self, old: RuleGroup) -> None:
        """Take ``old``'s label sets at a reload: members new to the group have no
        instance of them yet, members that left are no longer counted."""
        members = set(self.slots)
        new = members - set(old.slots)
        self.series = old.series
        for series in self.series.values():
            series.active.clear()
            series.forgotten = (series.forgotten & members) | new
            series.fresh = series.fresh & members
            for m in series.forgotten:
                self._lacking[m] = self._lacking.get(m, 0) + 1

    def _count(self, member: Slot) -> int:
        return len(self.series) - self._lacking.get(member, 0)

    def _lack(self, series: Series, members: Iterable[Slot]) -> None:
        new = [m for m in members if m not in series.forgotten]
        if new:
            series.forgotten = series.forgotten.union(new)
            for m in new:
                self._lacking[m] = self._lacking.get(m, 0) + 1

    def _have(self, series: Series, members: set[Slot]) -> None:
        back = series.forgotten & members
        if back:
            series.forgotten = series.forgotten - back
            for m in back:
                self._lacking[m] -= 1

    def _drop(self, series: Series) -> None:
        del self.series[series.labels]
        for m in series.forgotten:
            self._lacking[m] -= 1

    @property
    def size(self) -> int:
        return len(self._members)

    @property
    def slots(self) -> list[Slot]:
        return [m[2] for m in self._members]

    def accepts(self, labels: Labels) -> bool:
        hit = self._cache.get(labels)
        if hit is None:
            if len(self._cache) >= MATCH_CACHE:
                self._cache.clear()
            hit = self._cache[labels] = self.matches(labels)
        return hit

    def breached(self, value: float) -> list[tuple[float, int, Slot]]:
        """The members ``value`` breaches (``(limit, order, slot)``); NaN breaches none."""
        if math.isnan(value):
            return []
        if self.above:      # breaches when value > limit
            return self._members[:bisect_left(self._limits, value)]
        return self._members[bisect_right(self._limits, value):]


class Instance:
    """One alert instance: a rule and one label set. Mutable, owned by one slot.

    ``series`` holds when the label set last reported (shared by a group's rules)."""

    __slots__ = ("fingerprint", "labels", "series", "state", "window")

    def __init__(self, rule: Rule, labels: Labels, series: Series) -> None:
        self.labels = labels
        self.fingerprint = fingerprint(rule.name, labels)
        self.state = OK_STATE
        self.window = (Window(rule.window_over, rule.window_mode or "avg",
                              ahead=rule.window_ahead or 0.0)
                       if rule.window_over is not None else None)
        self.series = series


def own_instance(rule: Rule, labels: Labels, now: float) -> Instance:
    """An instance of a rule outside any group, with its own series."""
    return Instance(rule, labels, Series(labels, now))


def group_key(rule: Rule) -> GroupKey | None:
    if rule.window_over is not None or rule.absent is not None:
        return None
    return (rule.metric, rule.match, rule.op, rule.cool)


class Slot:
    """A compiled rule with its instances (in a group: only those not in OK)."""

    __slots__ = ("active", "group", "instances", "machine", "match_cache", "order", "rule",
                 "seen_any", "since")

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.order = 0                      # position in the config
        self.group: RuleGroup | None = None
        self.since: float | None = None     # absent rules: when watching began
        self.seen_any = False               # absent rules: a sample arrived since then
        self.machine = AlertMachine(rule.soak, rule.cool)
        self.instances: dict[Labels, Instance] = {}
        self.active: set[Labels] = set()            # instances not in OK
        self.match_cache: dict[Labels, bool] = {}

    def accepts(self, labels: Labels) -> bool:
        hit = self.match_cache.get(labels)
        if hit is None:
            if len(self.match_cache) >= MATCH_CACHE:
                self.match_cache.clear()
            hit = self.match_cache[labels] = self.rule.matches_labels(labels)
        return hit


def step_order(step: tuple[Any, ...]) -> int:
    """Steps of one sample run in the order of their rules in the config."""
    order: int = step[0]
    return order


def slot_order(slot: Slot) -> int:
    return slot.order
