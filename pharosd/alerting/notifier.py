"""The notifier: between the bus and the sinks, it decides which sink gets which event.

Pure, like the alert machine: wall-clock time is passed in (its schedule is a calendar
one: silences end at a time of day, maintenance windows open at HH:MM, reminders are
due every ``repeat`` and survive a restart), and it returns ``Delivery`` values that the
shell (``pharosd.alerting.dispatch``) hands to the sinks' outboxes.

Per alert (``fingerprint``) it keeps the current firing event (the latest ``firing``,
escalations and de-escalations included) and, per sink that was told of the alert, the
id of the firing event that sink has and when it last got one (for reminders):

* **Routing.** An alert reaches a sink when one of its firing events passes the sink's
  filter (``Route.accepts``); from then on the sink gets every later event of that alert
  — level changes, reminders and the ``resolved`` — whatever its level.
* **Holds.** While an active silence or an open maintenance window matches the alert,
  its firing events are held back (not delivered) and no reminder is sent. When the hold
  ends and the alert still fires, the current firing event is delivered to every sink
  that should have it and does not (the next ``tick``).
* **Closure is never held.** A ``resolved`` goes to every sink that got the alert's
  firing, and to no other; an alert nobody was told of resolves silently. A ``resolved``
  of an alert the notifier does not know (its state was lost) goes to every sink whose
  filter it passes.
* **Reminders.** A sink with ``repeat`` gets the current firing event again once
  ``now - last >= repeat`` (``last``: when it last got a firing event of the alert), at
  most once per ``tick``, with a new ``id``, ``at = now`` and ``reminder = True``.
  After a restart (``import_state``) the period goes on from the saved ``last``: the
  first reminder is due when it would have been, and at most one is sent however long
  the daemon was down. A wall-clock jump moves a reminder, never multiplies it.
* **Reconciled with the evaluator.** ``reconcile(open, now)`` (at start and after a
  reload) forgets every alert whose fingerprint the evaluator does not have open (its
  state file was lost, or its threshold went while the daemon was down): the sinks
  that got its firing get a ``resolved`` ("no longer evaluated"), no reminder follows.
* **Once per event.** An event whose ``id`` the notifier already routed (the last
  ``RECENT_IDS`` are kept, and saved with its state) is dropped and counted
  (``duplicates``): after a crash the evaluator publishes the events it had saved but
  maybe not published again (``pharosd.alerting.worker``), and those that did reach
  the outboxes must not be delivered twice.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from pharosd.alerting.maintenance import Schedule
from pharosd.alerting.routing import Route
from pharosd.alerting.silences import SilenceBook
from pharosd.model import AlertEvent, Labels, new_event_id
from pharosd.units import format_duration

STATE_VERSION = 1
RECENT_IDS = 1024           # event ids remembered to drop a republished event


@dataclass(frozen=True, slots=True)
class Delivery:
    """Hand ``event`` to sink ``sink``."""

    sink: str
    event: AlertEvent


@dataclass(frozen=True, slots=True)
class Hold:
    """Why an alert is held back: a silence (``id``, ``comment``) or a maintenance window
    (``id`` is its name); ``until`` is when that ends (wall seconds)."""

    kind: Literal["silence", "maintenance"]
    id: str
    comment: str
    until: float

    def to_data(self) -> dict[str, Any]:
        return {"kind": self.kind, "id": self.id, "comment": self.comment, "until": self.until}


@dataclass(slots=True)
class _Told:
    seen: str          # id of the firing event the sink has
    last: float        # wall time it last got a firing event (or reminder)


@dataclass(slots=True)
class _Alert:
    current: AlertEvent
    told: dict[str, _Told] = field(default_factory=dict)


class Notifier:
    """See the module docstring. Not thread-safe: the shell serialises calls."""

    def __init__(self, routes: Sequence[Route] = (), schedule: Schedule | None = None,
                 silences: SilenceBook | None = None,
                 ids: Callable[[], str] = new_event_id) -> None:
        self._routes: tuple[Route, ...] = tuple(routes)
        self.schedule = schedule or Schedule()
        self.silences = silences if silences is not None else SilenceBook()
        self._ids = ids
        self._alerts: dict[str, _Alert] = {}
        self._recent: dict[str, None] = {}     # ids routed, oldest first
        self.counters = {"held": 0, "reminders": 0, "filtered": 0, "duplicates": 0,
                         "reconciled": 0}

    @property
    def routes(self) -> tuple[Route, ...]:
        return self._routes

    def reconfigure(self, routes: Sequence[Route], schedule: Schedule | None = None) -> None:
        """New routes and windows; what sinks that remain were told is kept."""
        self._routes = tuple(routes)
        if schedule is not None:
            self.schedule = schedule
        names = {r.sink for r in self._routes}
        for alert in self._alerts.values():
            for sink in [s for s in alert.told if s not in names]:
                del alert.told[sink]

    # -- the verbs ----------------------------------------------------------------

    def publish(self, event: AlertEvent, now: float) -> list[Delivery]:
        """An event from the bus; what to deliver now."""
        if event.id in self._recent:
            self.counters["duplicates"] += 1
            return []
        self._remember(event.id)
        if event.status == "resolved":
            return self._resolved(event)
        alert = self._alerts.get(event.fingerprint)
        if alert is None:
            alert = self._alerts[event.fingerprint] = _Alert(event)
        else:
            alert.current = event
        out = self._reconcile(alert, now, fresh=True)
        return out

    def tick(self, now: float) -> list[Delivery]:
        """Deliveries due at ``now``: held events whose hold ended, and reminders."""
        out: list[Delivery] = []
        for alert in list(self._alerts.values()):
            out += self._reconcile(alert, now, fresh=False)
        return out

    def reconcile(self, open_fingerprints: Collection[str], now: float) -> list[Delivery]:
        """Forget the alerts the evaluator does not have open; their ``resolved`` (a new
        event, ``at = now``) goes to the sinks that got their firing."""
        out: list[Delivery] = []
        for fp in [fp for fp in self._alerts if fp not in open_fingerprints]:
            alert = self._alerts.pop(fp)
            cur = alert.current
            closing = replace(cur, status="resolved", id=self._ids(), at=now,
                              previous_level=None, reminder=False,
                              summary=f"{cur.rule}: no longer evaluated (alert state lost "
                                      "or threshold removed), resolved")
            self._remember(closing.id)
            self.counters["reconciled"] += 1
            out += [Delivery(r.sink, closing) for r in self._routes if r.sink in alert.told]
        return out

    def hold(self, rule: str, labels: Labels, now: float) -> Hold | None:
        """What holds an alert back at ``now`` (a silence before a window), or None."""
        s = self.silences.matching(rule, labels, now)
        if s is not None:
            return Hold("silence", s.id, s.comment, s.ends_at)
        w = self.schedule.holding(rule, labels, now)
        if w is not None:
            return Hold("maintenance", w[0].name, w[0].describe(), w[1])
        return None

    # -- views ----------------------------------------------------------------------

    def open_alerts(self) -> list[AlertEvent]:
        """The current firing event of every alert the notifier tracks."""
        return [a.current for a in self._alerts.values()]

    def told(self, fingerprint: str) -> dict[str, float]:
        """Sink name -> when it last got a firing event of this alert."""
        alert = self._alerts.get(fingerprint)
        return {} if alert is None else {s: t.last for s, t in alert.told.items()}

    # -- state across restarts -------------------------------------------------------

    def export_state(self) -> dict[str, Any]:
        return {"version": STATE_VERSION, "alerts": [
            {"event": a.current.to_dict(),
             "told": {s: {"seen": t.seen, "last": t.last} for s, t in a.told.items()}}
            for a in self._alerts.values()], "recent": list(self._recent)}

    def import_state(self, data: Any) -> int:
        """Restore ``export_state`` data (alerts already known are kept); entries that
        cannot be read are skipped and counted in the return value."""
        if not isinstance(data, Mapping) or data.get("version") != STATE_VERSION:
            raise ValueError("not notifier state of version 1")
        bad = 0
        recent = data.get("recent")
        for rid in recent if isinstance(recent, list) else ():
            if isinstance(rid, str):
                self._remember(rid)
        names = {r.sink for r in self._routes}
        for item in data.get("alerts") or ():
            try:
                event = AlertEvent.from_dict(item["event"])
                told = {str(s): _Told(str(t["seen"]), float(t["last"]))
                        for s, t in dict(item.get("told") or {}).items()}
            except (KeyError, TypeError, ValueError, AttributeError):
                bad += 1
                continue
            if event.status != "firing" or event.fingerprint in self._alerts:
                continue
            self._alerts[event.fingerprint] = _Alert(
                event, {s: t for s, t in told.items() if s in names})
        return bad

    # -- internals ----------------------------------------------------------------------

    def _remember(self, event_id: str) -> None:
        self._recent.pop(event_id, None)
        self._recent[event_id] = None
        while len(self._recent) > RECENT_IDS:
            del self._recent[next(iter(self._recent))]

    def _resolved(self, event: AlertEvent) -> list[Delivery]:
        alert = self._alerts.pop(event.fingerprint, None)
        if alert is None:
            return [Delivery(r.sink, event) for r in self._routes if r.accepts(event)]
        return [Delivery(r.sink, event) for r in self._routes if r.sink in alert.told]

    def _reconcile(self, alert: _Alert, now: float, fresh: bool) -> list[Delivery]:
        cur = alert.current
        if self.hold(cur.rule, cur.labels, now) is not None:
            if fresh:
                self.counters["held"] += 1
            return []
        out: list[Delivery] = []
        for route in self._routes:
            told = alert.told.get(route.sink)
            if told is None:
                if not route.accepts(cur):
                    if fresh:
                        self.counters["filtered"] += 1
                    continue
                alert.told[route.sink] = _Told(cur.id, now)
                out.append(Delivery(route.sink, cur))
            elif told.seen != cur.id:
                told.seen, told.last = cur.id, now
                out.append(Delivery(route.sink, cur))
            elif route.repeat and now - told.last >= route.repeat:
                told.last = now
                self.counters["reminders"] += 1
                out.append(Delivery(route.sink, self._reminder(cur, now)))
        return out

    def _reminder(self, event: AlertEvent, now: float) -> AlertEvent:
        since = format_duration(now - event.started_at, coarse=True)
        return replace(event, id=self._ids(), at=now, reminder=True,
                       summary=f"{event.summary} (reminder: firing for {since})")
