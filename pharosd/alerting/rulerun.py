"""Running one rule test: the daemon's own ``Evaluator`` on a ``FakeClock``.

``run_test(test, thresholds, defaults)`` feeds the test's input to an ``Evaluator``
built exactly as the evaluator worker builds it, in the same order the worker
calls it: at each step the samples of that step (``observe``), then, when due, the
once-a-second ``tick`` (``pharosd.alerting.worker.TICK``) that lets soak and cool
elapse and absent rules notice silence. Time starts at 0 and ends at the last
input value, expected time or expected event, whichever is latest. While no alert
is pending, firing or resolving and no rule watches for absent data, nothing can
change between samples, so the ticks then come once a minute (the evaluator's own
housekeeping period): a week of hourly values takes milliseconds, and gives the
same events as ticking every second.

At each ``expect`` time the open alerts whose status is firing or resolving (the
alert is still firing for the sinks) must be exactly the expected ones; labels are
compared as a subset. With ``events``, every event of the run must be listed,
matched on time, rule and status (and level and labels when given).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pharosd.alerting.config import AlertDefaults, ThresholdConfig
from pharosd.alerting.evaluator import GC_EVERY, Evaluator
from pharosd.alerting.notation import expand
from pharosd.alerting.ruletest import ExpectedAlert, ExpectedEvent, RuleTest
from pharosd.alerting.worker import TICK
from pharosd.clock import FakeClock
from pharosd.model import AlertEvent, Sample, labels_of
from pharosd.units import format_duration

START_WALL = 1_700_000_000.0    # the wall clock at time 0 (events' timestamps)
_EPS = 1e-6

T = TypeVar("T")
U = TypeVar("U")


@dataclass(frozen=True)
class Mismatch:
    """What differed. ``alerts`` at ``at``: the whole expected and got sets of firing
    alerts; ``events`` (``at`` None, over the whole run): the expected events that did
    not happen and the events that were not expected."""

    at: float | None
    what: str                       # "alerts" or "events"
    expected: tuple[str, ...]
    got: tuple[str, ...]


@dataclass
class Outcome:
    """The result of one test."""

    name: str
    mismatches: list[Mismatch] = field(default_factory=list)
    steps: int = 0                  # evaluator calls made (observe + tick)
    events: list[AlertEvent] = field(default_factory=list)   # every event of the run

    @property
    def ok(self) -> bool:
        return not self.mismatches


@dataclass(frozen=True)
class _Got:
    at: float
    rule: str
    status: str
    level: str
    labels: Mapping[str, str]


def run_test(test: RuleTest, thresholds: Sequence[ThresholdConfig], defaults: AlertDefaults,
             host: str = "test", *, idle_period: float = GC_EVERY) -> Outcome:
    """Run ``test`` against ``thresholds``; the outcome lists every mismatch.

    ``idle_period``: the spacing of ticks while nothing is open (``TICK`` ticks every
    second throughout, as the daemon does)."""
    clock = FakeClock(monotonic=0.0, wall=START_WALL)
    evaluator = Evaluator(thresholds, defaults, host)
    watches_absence = any(r.absent is not None for r in evaluator.rules)
    interval = float(test.interval)
    series = [(s.metric, labels_of(s.labels), expand(s.values)) for s in test.input]
    steps = max(len(values) for _, _, values in series)
    checks = sorted(test.expect, key=lambda e: float(e.at))
    end = max([(steps - 1) * interval, *(float(e.at) for e in checks),
               *(float(e.at) for e in test.events or ())])
    outcome = Outcome(test.name)
    events = outcome.events
    step, check, next_tick = 0, 0, 0.0
    while True:
        sample_at = step * interval if step < steps else math.inf
        check_at = float(checks[check].at) if check < len(checks) else math.inf
        now = min(sample_at, next_tick, check_at)
        if now > end + _EPS:
            break
        clock.advance(now - clock.monotonic())
        mono, wall = clock.monotonic(), clock.wall()
        if sample_at <= now + _EPS:
            batch = [Sample(metric, labels, v, wall) for metric, labels, values in series
                     if step < len(values) and (v := values[step]) is not None]
            if batch:
                events += evaluator.observe(batch, mono, wall)
                outcome.steps += 1
            step += 1
        if next_tick <= now + _EPS:
            events += evaluator.tick(mono, wall)
            outcome.steps += 1
            busy = watches_absence or evaluator.counters()["active"] > 0
            period = TICK if busy else idle_period
            next_tick = (math.floor(now / period + _EPS) + 1) * period
        elif sample_at <= now + _EPS and evaluator.counters()["active"] > 0:
            next_tick = min(next_tick, math.floor(now / TICK + _EPS) * TICK + TICK)
        while check < len(checks) and float(checks[check].at) <= now + _EPS:
            _compare_alerts(outcome, now, checks[check].alerts, evaluator.open_alerts())
            check += 1
    if test.events is not None:
        _compare_events(outcome, test.events, events)
    return outcome


def _compare_alerts(outcome: Outcome, at: float, expected: Sequence[ExpectedAlert],
                    open_alerts: list[dict[str, Any]]) -> None:
    got = [a for a in open_alerts if a["status"] in ("firing", "resolving")]

    def fits(e: ExpectedAlert, g: dict[str, Any]) -> bool:
        return (e.rule == g["rule"] and (e.level is None or e.level == g["level"])
                and _subset(e.labels, g["labels"]))

    missing, unexpected = _match(list(expected), got, fits)
    if missing or unexpected:
        outcome.mismatches.append(Mismatch(
            at, "alerts", tuple(_show(e.rule, e.labels, e.level) for e in expected),
            tuple(_show(g["rule"], g["labels"], g["level"]) for g in got)))


def _compare_events(outcome: Outcome, expected: Sequence[ExpectedEvent],
                    events: list[AlertEvent]) -> None:
    got = [_Got(e.at - START_WALL, e.rule, e.status, e.level, dict(e.labels)) for e in events]

    def fits(e: ExpectedEvent, g: _Got) -> bool:
        return (abs(float(e.at) - g.at) < 1e-3 and e.rule == g.rule and e.status == g.status
                and (e.level is None or e.level == g.level) and _subset(e.labels, g.labels))

    missing, unexpected = _match(list(expected), got, fits)
    if missing or unexpected:
        outcome.mismatches.append(Mismatch(
            None, "events",
            tuple(f"{format_duration(float(e.at))} {e.status} {_show(e.rule, e.labels, e.level)}"
                  for e in missing),
            tuple(f"{format_duration(round(g.at, 3))} {g.status} "
                  f"{_show(g.rule, g.labels, g.level)}" for g in unexpected)))


def _subset(want: Mapping[str, str], have: Mapping[str, str]) -> bool:
    return all(have.get(k) == v for k, v in want.items())


def _match(expected: list[T], got: list[U], fits: Callable[[T, U], bool],
           ) -> tuple[list[T], list[U]]:
    """A maximum matching of expected to got items (augmenting paths): the expected
    items left without a partner and the got items left over."""
    partner: dict[int, int] = {}             # got index -> expected index

    def place(i: int, seen: set[int]) -> bool:
        for j, g in enumerate(got):
            if j in seen or not fits(expected[i], g):
                continue
            seen.add(j)
            if j not in partner or place(partner[j], seen):
                partner[j] = i
                return True
        return False

    missing = [e for i, e in enumerate(expected) if not place(i, set())]
    unexpected = [g for j, g in enumerate(got) if j not in partner]
    return missing, unexpected


def _show(rule: str, labels: Mapping[str, str], level: str | None) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    text = f"{rule}{{{inner}}}" if inner else rule
    return f"{text} {level}" if level else text


def describe(outcome: Outcome) -> list[str]:
    """The lines that explain a failed test (none for a passed one)."""
    lines: list[str] = []
    for m in outcome.mismatches:
        if m.what == "alerts":
            assert m.at is not None
            lines.append(f"at {format_duration(round(m.at, 3))}: expected firing "
                         f"[{', '.join(m.expected)}], got [{', '.join(m.got)}]")
        else:
            lines.append(f"events: expected but missing [{', '.join(m.expected)}], "
                         f"got but not expected [{', '.join(m.got)}]")
    return lines
