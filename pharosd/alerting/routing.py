"""Routing: which sink an alert's events go to (``sinks[].filter``) and how often a
firing alert is repeated to it (``sinks[].repeat``).

Pure data and matching. A ``Route`` is one sink's policy: its name, an optional
``RouteFilter`` and an optional ``repeat`` period in seconds. A filter's parts are
``levels`` (any of them), ``rules`` (globs, any of them) and ``labels`` (globs, all of
them); every part given must match, and no filter at all takes every alert. The
notifier (``pharosd.alerting.notifier``) applies a filter to *firing* events only: once
a sink got an alert's firing event it gets the rest of that alert, whatever its level.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from pharosd.alerting.matchers import Selector
from pharosd.model import AlertEvent, Level


@dataclass(frozen=True, slots=True)
class RouteFilter:
    """``filter: {levels: [..], rules: [glob, ..], labels: {key: glob}}``."""

    levels: tuple[Level, ...] = ()
    selector: Selector = field(default_factory=Selector)

    @classmethod
    def of(cls, levels: Iterable[Level] = (), rules: Iterable[str] = (),
           labels: Mapping[str, str] | None = None) -> RouteFilter:
        return cls(tuple(levels), Selector.of(rules, labels or {}))

    def why_not(self, event: AlertEvent) -> str | None:
        """None when ``event`` passes; else which part of the filter refused it."""
        if self.levels and event.level not in self.levels:
            return f"level {event.level} is not in levels [{', '.join(self.levels)}]"
        if not self.selector.rule_matches(event.rule):
            return f"rule {event.rule} matches none of rules [{', '.join(self.selector.rules)}]"
        if not self.selector.labels_match(event.labels):
            want = ", ".join(f"{k}={v}" for k, v in self.selector.labels)
            return f"labels do not match {{{want}}}"
        return None

    def matches(self, event: AlertEvent) -> bool:
        return self.why_not(event) is None


@dataclass(frozen=True, slots=True)
class Route:
    """One sink as the notifier sees it."""

    sink: str
    filter: RouteFilter | None = None
    repeat: float | None = None          # seconds; None: no reminders

    def why_not(self, event: AlertEvent) -> str | None:
        return None if self.filter is None else self.filter.why_not(event)

    def accepts(self, event: AlertEvent) -> bool:
        return self.filter is None or self.filter.matches(event)


class FilterSettings(Protocol):
    """A sink's ``filter`` as configured (``pharosd.sinks.config.FilterConfig``)."""

    @property
    def levels(self) -> Sequence[Level]: ...

    @property
    def rules(self) -> Sequence[str]: ...

    @property
    def labels(self) -> Mapping[str, str]: ...


class RoutedSink(Protocol):
    """What routing reads of a sink's config: its name, filter and repeat."""

    @property
    def name(self) -> str: ...

    @property
    def filter(self) -> FilterSettings | None: ...

    @property
    def repeat(self) -> float | None: ...


def route_of(sink: RoutedSink) -> Route:
    """The notifier's ``Route`` for one configured sink."""
    f = sink.filter
    flt = None if f is None else RouteFilter.of(f.levels, f.rules, f.labels)
    return Route(sink.name, flt, None if sink.repeat is None else float(sink.repeat))
