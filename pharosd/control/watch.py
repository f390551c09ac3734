"""Watchers: ``pharosd watch`` clients fed every alert event as it is published.

``WatchHub.publish(event)`` is a bus subscriber: it runs on the publishing
thread and must never block, so it only appends the event's JSON line to
each matching watcher's bounded queue (``max_queue`` events) under a lock
and pokes the control server's selector awake. A watcher whose queue is
full is too slow (or stuck): it is marked dropped, gets nothing more, and
the server closes its connection with a last error line. At most
``max_watchers`` watch at once; the server refuses more.

``matches(rule, pattern)`` is the ``--rule GLOB`` filter (``fnmatch``,
case-sensitive; None matches every rule).
"""

from __future__ import annotations

import fnmatch
import itertools
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from pharosd.control.protocol import encode
from pharosd.model import AlertEvent

log = structlog.get_logger(__name__)

MAX_WATCHERS = 16
MAX_QUEUE = 1000       # events waiting for one watcher before it is dropped


def matches(rule: str, pattern: str | None) -> bool:
    return pattern is None or fnmatch.fnmatchcase(rule, pattern)


@dataclass(eq=False)
class Watcher:
    id: int
    pattern: str | None
    queue: deque[bytes] = field(default_factory=deque)
    dropped: bool = False
    sent: int = 0


class WatchHub:
    """See the module docstring."""

    def __init__(self, max_watchers: int = MAX_WATCHERS, max_queue: int = MAX_QUEUE) -> None:
        self.max_watchers = max_watchers
        self.max_queue = max_queue
        self._lock = threading.Lock()
        self._watchers: dict[int, Watcher] = {}
        self._ids = itertools.count(1)
        self._wake: Callable[[], None] = lambda: None
        self.dropped = 0          # watchers dropped for being too slow

    def set_waker(self, wake: Callable[[], None]) -> None:
        self._wake = wake

    def add(self, pattern: str | None) -> Watcher | None:
        """A new watcher, or None when ``max_watchers`` already watch."""
        with self._lock:
            if len(self._watchers) >= self.max_watchers:
                return None
            w = Watcher(next(self._ids), pattern)
            self._watchers[w.id] = w
            return w

    def remove(self, watcher: Watcher) -> None:
        with self._lock:
            self._watchers.pop(watcher.id, None)

    def count(self) -> int:
        with self._lock:
            return len(self._watchers)

    def publish(self, event: AlertEvent) -> None:
        """Bus subscriber: queue the event for every matching watcher; never blocks."""
        line: bytes | None = None
        poke = False
        with self._lock:
            for w in self._watchers.values():
                if w.dropped or not matches(event.rule, w.pattern):
                    continue
                if len(w.queue) >= self.max_queue:
                    w.dropped = True
                    w.queue.clear()
                    self.dropped += 1
                    log.warning("watcher_dropped", watcher=w.id, reason="too slow",
                                queued=self.max_queue)
                else:
                    if line is None:
                        line = encode({"event": event.to_dict()})
                    w.queue.append(line)
                poke = True
        if poke:
            self._wake()

    def take(self, watcher: Watcher) -> tuple[bytes, bool]:
        """What is queued for ``watcher`` (joined), and whether it was dropped."""
        with self._lock:
            data = b"".join(watcher.queue)
            watcher.sent += len(watcher.queue)
            watcher.queue.clear()
            return data, watcher.dropped
