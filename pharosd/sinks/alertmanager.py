"""The Alertmanager sink: POST /api/v2/alerts to every URL of a cluster.

Alertmanager forgets an alert that is not re-sent: a firing alert resolves
by itself at its ``endsAt``. So the sink keeps the set of alerts it has
told Alertmanager about and re-sends it from ``periodic`` (the worker calls
it every second; the whole set goes out every ``resend``):

* a firing alert with ``endsAt`` = now + 4 x ``resend``;
* a resolved alert with ``endsAt`` = its resolve time, for ``resolved_for``
  (5 minutes) after it was first delivered, then it is forgotten.

An alert is identified by its fingerprint and level (the level is the
``severity`` label, so Alertmanager sees an escalation as another alert):
a firing event at a new level, or a resolved event, also resolves the
alert's other levels. The set is saved to a JSON file under ``state_dir``
on every change, so a restarted daemon keeps re-sending.

``deliver`` succeeds when at least one URL accepted the alert (the others
catch up on the next re-send); it raises ``DeliveryError`` when every URL
failed, ``PermanentDeliveryError`` when every URL refused it with a 4xx.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import structlog

from pharosd.clock import Clock, SystemClock
from pharosd.errors import DeliveryError, PermanentDeliveryError
from pharosd.model import AlertEvent
from pharosd.redact import redact_url
from pharosd.sinks.amformat import api_alert
from pharosd.sinks.http import HttpPoster
from pharosd.statefile import read_json, write_json

log = structlog.get_logger(__name__)

API_PATH = "/api/v2/alerts"
BATCH = 500                 # alerts per POST at most
STATE_VERSION = 1


def api_url(base: str) -> str:
    base = base.rstrip("/")
    return base if base.endswith(API_PATH) else base + API_PATH


@dataclass(frozen=True)
class ActiveAlert:
    """One alert Alertmanager knows about. ``resolved_at`` None means firing."""

    event: AlertEvent
    resolved_at: float | None = None   # wall: the endsAt of a resolved alert
    until: float | None = None         # wall: forget the resolved alert after this

    @property
    def key(self) -> tuple[str, str]:
        return (self.event.fingerprint, self.event.level)

    def to_json(self) -> dict[str, Any]:
        return {"event": self.event.to_dict(), "resolved_at": self.resolved_at,
                "until": self.until}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ActiveAlert:
        return cls(AlertEvent.from_dict(d["event"]), d.get("resolved_at"), d.get("until"))


def apply_event(active: Mapping[tuple[str, str], ActiveAlert], event: AlertEvent,
                now_wall: float, resolved_for: float
                ) -> tuple[dict[tuple[str, str], ActiveAlert], list[ActiveAlert]]:
    """The new active set after ``event``, and the alerts to send now (pure)."""
    new = dict(active)
    send: list[ActiveAlert] = []
    until = max(event.at, now_wall) + resolved_for
    for key, a in active.items():
        if key[0] == event.fingerprint and a.resolved_at is None and key[1] != event.level:
            done = replace(a, resolved_at=event.at, until=until)
            new[key] = done
            send.append(done)
    if event.status == "firing":
        entry = ActiveAlert(event)
    else:
        entry = ActiveAlert(event, resolved_at=event.at, until=until)
    new[entry.key] = entry
    send.append(entry)
    return new, send


def to_api(alerts: Sequence[ActiveAlert], now_wall: float, resend: float,
           generator_url: str = "", extra_labels: Mapping[str, str] | None = None
           ) -> list[dict[str, Any]]:
    """The /api/v2/alerts body for ``alerts`` (pure)."""
    out = []
    for a in alerts:
        ends = now_wall + 4 * resend if a.resolved_at is None else a.resolved_at
        out.append(api_alert(a.event, ends_at=ends, generator_url=generator_url,
                             extra_labels=extra_labels))
    return out


class AlertmanagerSink:
    def __init__(self, name: str, urls: Sequence[str], *, resend: float = 60.0,
                 resolved_for: float = 300.0, extra_labels: Mapping[str, str] | None = None,
                 generator_url: str = "", state_path: str | None = None,
                 clock: Clock | None = None, **http: Any) -> None:
        self.name = name
        self.urls = [api_url(u) for u in urls]
        self.resend = resend
        self.resolved_for = resolved_for
        self.extra_labels = dict(extra_labels or {})
        self.generator_url = generator_url
        self.state_path = state_path
        timeout = float(http.get("timeout", 10.0))
        self.blocking_timeout = len(self.urls) * (2 * timeout + 1.0)
        self._clock: Clock = clock or SystemClock()
        self._http = HttpPoster(**http)
        self._last_resend: float | None = None
        self._failing: set[str] = set()
        self.active: dict[tuple[str, str], ActiveAlert] = self._load()

    # -- the Sink protocol ------------------------------------------------------

    def deliver(self, event: AlertEvent) -> None:
        now = self._clock.wall()
        new, send = apply_event(self.active, event, now, self.resolved_for)
        self._post_all(to_api(send, now, self.resend, self.generator_url, self.extra_labels),
                       now)
        self.active = new
        self._save()

    def periodic(self, now_wall: float) -> float:
        """Re-send the active set every ``resend``; forget expired resolved alerts.
        Returns the seconds until the next re-send is due."""
        now = self._clock.monotonic()
        if self._last_resend is not None and now - self._last_resend < self.resend:
            return self.resend - (now - self._last_resend)
        self._last_resend = now
        self._resend_all(now_wall)
        return self.resend

    def _resend_all(self, now_wall: float) -> None:
        expired = [k for k, a in self.active.items()
                   if a.until is not None and a.until <= now_wall]
        for k in expired:
            del self.active[k]
        if expired:
            self._save()
        if not self.active:
            return
        body = to_api(list(self.active.values()), now_wall, self.resend, self.generator_url,
                      self.extra_labels)
        for url in self.urls:
            try:
                for i in range(0, len(body), BATCH):
                    self._post(url, body[i:i + BATCH], now_wall)
            except DeliveryError as e:
                if url not in self._failing:
                    self._failing.add(url)
                    log.warning("alertmanager_resend_failed", sink=self.name, url=redact_url(url),
                                alerts=len(body), error=str(e))
            else:
                if url in self._failing:
                    self._failing.discard(url)
                    log.info("alertmanager_resend_recovered", sink=self.name,
                             url=redact_url(url))

    def reopen(self) -> None:
        pass

    def close(self) -> None:
        self._http.close()

    # -- internals ----------------------------------------------------------------

    def _post(self, url: str, alerts: list[dict[str, Any]], now_wall: float) -> None:
        body = json.dumps(alerts, separators=(",", ":")).encode()
        self._http.post(url, body, {"Content-Type": "application/json"}, now_wall)

    def _post_all(self, alerts: list[dict[str, Any]], now_wall: float) -> None:
        errors: list[DeliveryError] = []
        for url in self.urls:
            try:
                self._post(url, alerts, now_wall)
            except DeliveryError as e:
                errors.append(e)
        if len(errors) < len(self.urls):
            for err in errors:
                log.warning("alertmanager_peer_failed", sink=self.name, error=str(err))
            return
        message = "; ".join(str(err) for err in errors)
        if all(isinstance(err, PermanentDeliveryError) for err in errors):
            raise PermanentDeliveryError(message)
        hints = [err.retry_after for err in errors if err.retry_after is not None]
        raise DeliveryError(message, retry_after=min(hints) if hints else None)

    def _load(self) -> dict[tuple[str, str], ActiveAlert]:
        if self.state_path is None:
            return {}
        try:
            data = read_json(self.state_path)
        except (OSError, ValueError) as e:
            log.error("alertmanager_state_unreadable", sink=self.name, path=self.state_path,
                      error=str(e))
            return {}
        active: dict[tuple[str, str], ActiveAlert] = {}
        for item in data.get("alerts", []) if isinstance(data, dict) else []:
            try:
                a = ActiveAlert.from_json(item)
            except (KeyError, TypeError, ValueError) as e:
                log.warning("alertmanager_state_entry_skipped", sink=self.name, error=repr(e))
                continue
            active[a.key] = a
        return active

    def _save(self) -> None:
        if self.state_path is None:
            return
        data = {"version": STATE_VERSION, "alerts": [a.to_json() for a in self.active.values()]}
        try:
            os.makedirs(os.path.dirname(self.state_path) or ".", exist_ok=True)
            write_json(self.state_path, data)
        except OSError as e:
            log.error("alertmanager_state_write_failed", sink=self.name, path=self.state_path,
                      error=str(e))
