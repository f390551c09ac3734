"""``NotifierWorker``: the thin shell around the pure ``Notifier`` (bus -> notifier -> sinks).

It is the bus's subscriber for the sinks: ``publish`` (on the evaluator's thread) asks the
notifier which sinks get an event and hands each its ``Delivery`` through the sink's
``submit`` (its durable outbox). ``run`` (its own thread) ticks the notifier once a
second for reminders and for alerts whose silence or maintenance window ended. The
control socket's thread adds, expires and lists silences. One lock serialises all of
them, and deliveries are submitted under it, so the events of one alert reach every
outbox in order.

State in the state directory, written atomically with fsync (``statefile``):

* ``silences.json``: written before a silence command is answered;
* ``notifier-state.json``: per alert, its current firing event and per sink what it
  was told and when (reminder timing survives restarts), and the ids of the events
  it routed last (a republished one is dropped); written after every batch of
  deliveries (outbox first, then this file: a crash in between repeats a delivery, it
  never loses one) and on stop. Alerts restored from it get no reminder until the
  evaluator, once restored, said which alerts are open (``reconcile``).

Wall time comes from the injected ``Clock``; see ``pharosd.alerting.notifier``.
"""

from __future__ import annotations

import math
import os
import threading
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any

import structlog

from pharosd.alerting.maintenance import Schedule
from pharosd.alerting.notifier import Delivery, Hold, Notifier
from pharosd.alerting.routing import Route
from pharosd.alerting.silences import Silence, SilenceBook, new_silence
from pharosd.clock import Clock, SystemClock
from pharosd.errors import SilenceError
from pharosd.model import AlertEvent, Labels
from pharosd.statefile import read_json, write_json
from pharosd.worker import IDLE_WAIT, WorkerContext

log = structlog.get_logger(__name__)

TICK = 1.0          # seconds between ticks while alerts or silences are tracked
SILENCES_FILE = "silences.json"
STATE_FILE = "notifier-state.json"

Submit = Callable[[AlertEvent], None]


class NotifierWorker:
    name = "notifier"
    heartbeat_timeout = 30.0

    def __init__(self, routes: Sequence[Route], schedule: Schedule,
                 submitters: Mapping[str, Submit], state_dir: str | None = None,
                 clock: Clock | None = None) -> None:
        self._clock: Clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._notifier = Notifier(routes, schedule)
        self._submit: dict[str, Submit] = dict(submitters)
        self._state_dir = state_dir
        self._dirty = False
        self._await_sync = False    # restored alerts: no reminder before ``reconcile``
        self._wake = threading.Event()
        self.submit_failures = 0

    # -- state files ------------------------------------------------------------------

    def _path(self, name: str) -> str | None:
        return None if not self._state_dir else os.path.join(self._state_dir, name)

    def load(self) -> None:
        """Read silences and notifier state (before the evaluator restores its alerts)."""
        path = self._path(SILENCES_FILE)
        if path:
            try:
                data = read_json(path)
                if data is not None:
                    book, bad = SilenceBook.from_data(data)
                    self._notifier.silences = book
                    log.info("silences_restored", path=path, silences=len(book), skipped=bad)
            except (OSError, ValueError) as exc:
                log.error("silences_unreadable", path=path, error=str(exc))
        path = self._path(STATE_FILE)
        if path:
            try:
                data = read_json(path)
                if data is not None:
                    bad = self._notifier.import_state(data)
                    self._await_sync = bool(self._notifier.open_alerts())
                    log.info("notifier_state_restored", path=path,
                             alerts=len(self._notifier.open_alerts()), skipped=bad)
            except (OSError, ValueError) as exc:
                log.warning("notifier_state_unreadable", path=path, error=str(exc))

    def _save_state(self) -> None:
        path = self._path(STATE_FILE)
        if not path or not self._dirty:
            return
        try:
            write_json(path, self._notifier.export_state())
            self._dirty = False
        except OSError as exc:
            log.warning("notifier_state_save_failed", path=path, error=str(exc))

    def _save_silences(self) -> None:
        path = self._path(SILENCES_FILE)
        if path:
            write_json(path, self._notifier.silences.to_data())   # OSError: the caller's

    # -- the bus side --------------------------------------------------------------------

    def publish(self, event: AlertEvent) -> None:
        """Bus subscriber: route ``event`` to the sinks now (never raises)."""
        with self._lock:
            self._deliver(self._notifier.publish(event, self._clock.wall()))
            self._dirty = True
            self._save_state()
        self._wake.set()        # tick every second from now on

    def reconcile(self, open_fingerprints: Collection[str]) -> None:
        """The evaluator's open alerts after its restore or a reload: the notifier
        closes the ones it still tracks that are not among them (never raises)."""
        with self._lock:
            self._await_sync = False
            deliveries = self._notifier.reconcile(open_fingerprints, self._clock.wall())
            for gone in {d.event.fingerprint: d.event for d in deliveries}.values():
                log.warning("alert_reconciled", rule=gone.rule, fingerprint=gone.fingerprint,
                            event_id=gone.id, note="not open in the evaluator: resolved")
            if deliveries:
                self._deliver(deliveries)
            self._dirty = True
            self._save_state()

    def reconfigure(self, routes: Sequence[Route], schedule: Schedule,
                    submitters: Mapping[str, Submit]) -> None:
        """A reload: new routes, windows and sink workers (state of kept sinks stays)."""
        with self._lock:
            self._notifier.reconfigure(routes, schedule)
            self._submit = dict(submitters)
            self._dirty = True

    def _deliver(self, deliveries: Iterable[Delivery]) -> None:
        for d in deliveries:
            submit = self._submit.get(d.sink)
            if submit is None:
                continue
            try:
                submit(d.event)
            except Exception as exc:     # a sink's submit never raises; be sure anyway
                self.submit_failures += 1
                log.error("notifier_submit_failed", sink=d.sink, event_id=d.event.id,
                          error=repr(exc))
            if d.event.reminder:
                log.info("alert_reminder", sink=d.sink, rule=d.event.rule,
                         fingerprint=d.event.fingerprint, event_id=d.event.id)

    # -- the worker -------------------------------------------------------------------------

    def run(self, ctx: WorkerContext) -> None:
        ctx.on_stop(self._wake.set)
        try:
            while True:
                self._wake.wait(self._tick_every())
                self._wake.clear()
                if ctx.stopping:
                    break
                ctx.beat()
                self.tick()
        finally:
            with self._lock:
                self._save_state()

    def _tick_every(self) -> float:
        """Every second while an alert or a silence is tracked (reminders, holds that
        end, silences that expire); otherwise the worker only beats."""
        with self._lock:
            busy = bool(self._notifier.open_alerts()) or len(self._notifier.silences) > 0
        return TICK if busy else IDLE_WAIT

    def tick(self) -> None:
        with self._lock:
            now = self._clock.wall()
            # Alerts restored from the state file wait for the evaluator's word
            # (``reconcile``) before they are reminded of or released from a hold.
            deliveries = [] if self._await_sync else self._notifier.tick(now)
            for gone in self._notifier.silences.prune(now):
                log.info("silence_forgotten", id=gone.id)
                self._safe_save_silences()
            if deliveries:
                self._deliver(deliveries)
                self._dirty = True
            self._save_state()

    def _safe_save_silences(self) -> None:
        try:
            self._save_silences()
        except OSError as exc:
            log.error("silences_save_failed", error=str(exc))

    # -- silences (the control socket's thread) ------------------------------------------------

    def add_silence(self, rules: Iterable[str], labels: Mapping[str, str], ends_at: float,
                    comment: str, uid: int | None) -> Silence:
        """Add and persist a silence; ``SilenceError`` / ``OSError`` when it cannot be."""
        with self._lock:
            now = self._clock.wall()
            silence = new_silence(uuid.uuid4().hex, rules, labels, now=now, ends_at=ends_at,
                                  comment=comment, created_by=uid)
            book = self._notifier.silences
            book.add(silence, now)
            try:
                self._save_silences()
            except OSError:
                book.discard(silence.id)
                raise
        log.info("silence_added", id=silence.id, peer_uid=uid,
                 matchers=silence.selector.describe(), ends_at=ends_at, comment=comment)
        return silence

    def expire_silence(self, id_or_prefix: str, uid: int | None) -> Silence:
        with self._lock:
            silence = self._notifier.silences.expire(id_or_prefix, self._clock.wall())
            self._save_silences()
        log.info("silence_expired", id=silence.id, peer_uid=uid,
                 matchers=silence.selector.describe())
        return silence

    # -- the control socket's requests (JSON objects) -------------------------------------

    def handle_add(self, req: Mapping[str, Any], uid: int | None) -> dict[str, Any]:
        """``{"rules": [..], "labels": {..}, "ends_at": T | "for": S, "comment": ..}``."""
        rules = req.get("rules") or []
        labels = req.get("labels") or {}
        comment = req.get("comment") or ""
        if not isinstance(rules, list) or not all(isinstance(r, str) for r in rules):
            raise SilenceError(f"expected rules as a list of globs, got {rules!r}")
        if not isinstance(labels, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
            raise SilenceError(f"expected labels as an object of globs, got {labels!r}")
        if not isinstance(comment, str):
            raise SilenceError(f"expected comment as a string, got {comment!r}")
        ends_at, length = req.get("ends_at"), req.get("for")
        if (ends_at is None) == (length is None):
            raise SilenceError("expected exactly one of 'ends_at' and 'for'")
        if length is not None:
            if not _is_number(length) or length <= 0:
                raise SilenceError(f"expected 'for' as seconds above 0, got {length!r}")
            ends_at = self._clock.wall() + float(length)
        if ends_at is None or not _is_number(ends_at):
            raise SilenceError(f"expected 'ends_at' as wall-clock seconds, got {ends_at!r}")
        silence = self.add_silence(rules, labels, float(ends_at), comment, uid)
        return {"silence": _silence_view(silence, self._clock.wall())}

    def handle_expire(self, req: Mapping[str, Any], uid: int | None) -> dict[str, Any]:
        """``{"id": ID or a unique prefix}``."""
        sid = req.get("id")
        if not isinstance(sid, str) or not sid:
            raise SilenceError(f"expected a silence id, got {sid!r}")
        silence = self.expire_silence(sid, uid)
        return {"silence": _silence_view(silence, self._clock.wall())}

    def silences(self) -> list[dict[str, Any]]:
        """Every silence kept (active, pending, recently expired), for `silence list`."""
        with self._lock:
            now = self._clock.wall()
            return [_silence_view(s, now) for s in self._notifier.silences.all()]

    # -- status ----------------------------------------------------------------------------------

    def hold(self, rule: str, labels: Labels) -> Hold | None:
        with self._lock:
            return self._notifier.hold(rule, labels, self._clock.wall())

    def status(self) -> dict[str, Any]:
        """Silences not yet ended and the maintenance windows open now."""
        with self._lock:
            now = self._clock.wall()
            silences = [_silence_view(s, now) for s in self._notifier.silences.all()
                        if not s.ended(now)]
            windows = [{"name": w.name, "matchers": w.selector.describe(),
                        "schedule": w.describe(), "opened": opens, "closes": closes}
                       for w, opens, closes in self._notifier.schedule.in_effect(now)]
            counters = dict(self._notifier.counters)
        return {"silences": silences, "maintenance": windows, "notifier": counters}


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _silence_view(s: Silence, now: float) -> dict[str, Any]:
    return {"id": s.id, "state": s.state(now), "matchers": s.selector.describe(),
            "rules": list(s.selector.rules), "labels": dict(s.selector.labels),
            "starts_at": s.starts_at, "ends_at": s.ends_at, "comment": s.comment,
            "created_by": s.created_by}
