"""The event bus: fan-out of alert events to subscribers.

Subscribers are callables registered under a name; ``publish`` calls each
one in turn on the publishing thread, so a subscriber must be quick (a
sink worker's ``submit`` only writes the event to its outbox). A
subscriber that raises is logged and counted and never affects another.
Subscribing and unsubscribing are safe at any time from any thread.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable

import structlog

from pharosd.model import AlertEvent

log = structlog.get_logger(__name__)

Subscriber = Callable[[AlertEvent], None]


class Bus:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subs: dict[int, tuple[str, Subscriber]] = {}
        self._ids = itertools.count(1)
        self.published = 0
        self.subscriber_failures = 0

    def subscribe(self, name: str, callback: Subscriber) -> int:
        """Add a subscriber; returns a handle for ``unsubscribe``."""
        with self._lock:
            handle = next(self._ids)
            self._subs[handle] = (name, callback)
        return handle

    def unsubscribe(self, handle: int) -> bool:
        """Remove a subscriber; False if the handle was unknown."""
        with self._lock:
            return self._subs.pop(handle, None) is not None

    def subscribers(self) -> list[str]:
        with self._lock:
            return [name for name, _ in self._subs.values()]

    def publish(self, event: AlertEvent) -> None:
        with self._lock:
            subs = list(self._subs.values())
            self.published += 1
        for name, callback in subs:
            try:
                callback(event)
            except Exception as exc:
                with self._lock:
                    self.subscriber_failures += 1
                log.error("subscriber_failed", subscriber=name, event_id=event.id,
                          error=repr(exc), exc_info=True)
