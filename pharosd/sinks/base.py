"""The ``Sink`` protocol: deliver one alert event or raise.

``deliver`` is called from the sink's own worker thread, never from the
evaluator, so it may block up to its timeout. It returns when the event
is delivered; it raises ``DeliveryError`` to be retried later (with
``retry_after`` if the receiver said when) or ``PermanentDeliveryError``
when retrying cannot help. ``reopen`` is called on SIGHUP (logrotate);
``close`` when the sink is removed or the daemon stops.
"""

from __future__ import annotations

from typing import Protocol

from pharosd.model import AlertEvent


class Sink(Protocol):
    name: str

    def deliver(self, event: AlertEvent) -> None: ...

    def reopen(self) -> None: ...

    def close(self) -> None: ...
