"""``LiveView``: what the routes read, composed from the daemon's running parts.

The daemon hands in callables (its state, the open alerts, readiness) and
the latest-value store; ``metrics()`` renders the store, the open alerts
(``pharos_alert``) and the listener's own counters; ``page()`` renders the
status page from the same state as ``pharosd status --json``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pharosd.clock import Clock, SystemClock
from pharosd.http.exposition import (
    Exposition,
    Family,
    alert_family,
    sample_families,
    silenced_family,
)
from pharosd.http.page import probes_from, render_page
from pharosd.http.store import LatestValues

HelpFn = Callable[[str], str | None]


class LiveView:
    """A ``routes.View`` over the running daemon."""

    def __init__(self, store: LatestValues, *, state: Callable[[], Mapping[str, Any]],
                 alerts: Callable[[], Sequence[Mapping[str, Any]]],
                 ready: Callable[[], bool], healthy: Callable[[], bool],
                 help_for: HelpFn, refresh: Callable[[], float],
                 counters: Callable[[], Sequence[Family]] = lambda: (),
                 clock: Clock | None = None) -> None:
        self._clock: Clock = clock or SystemClock()
        self.store = store
        self._state = state
        self._alerts = alerts
        self._ready = ready
        self._healthy = healthy
        self._help_for = help_for
        self._refresh = refresh
        self._counters = counters
        self._exposition = Exposition()

    def metrics(self) -> bytes:
        families = sample_families(self.store.snapshot(), self._help_for)
        alerts = self._alerts()
        families.append(alert_family(alerts))
        families.append(silenced_family(alerts))
        families.extend(self._counters())
        return self._exposition.render(families)

    def healthy(self) -> bool:
        return self._healthy()

    def ready(self) -> bool:
        return self._ready()

    def state(self) -> Mapping[str, Any]:
        return self._state()

    def page(self) -> str:
        return render_page(self._state(), probes_from(self.store.snapshot()), self._clock.wall(),
                           self._refresh())


def listener_families(status: Mapping[str, Any], requests: Mapping[int, int]) -> list[Family]:
    """The listener's own counters as families (``pharos_pharosd_http_*``)."""
    rows = [((("code", str(code)),), float(n)) for code, n in sorted(requests.items())]
    return [
        Family("pharosd.http_requests_total", "counter",
               "HTTP requests the listener answered, by status code", rows),
        Family("pharosd.http_connections", "gauge", "HTTP connections open now",
               [((), float(status.get("open", 0)))]),
        Family("pharosd.http_connections_refused_total", "counter",
               "HTTP connections refused because max_connections were open",
               [((), float(status.get("refused", 0)))]),
        Family("pharosd.http_timeouts_total", "counter",
               "HTTP connections closed at their deadline before a full request or answer",
               [((), float(status.get("timeouts", 0)))]),
        Family("pharosd.http_tls_errors_total", "counter", "failed TLS handshakes",
               [((), float(status.get("tls_errors", 0)))]),
    ]
