"""The log sink: each alert event becomes one structlog ``alert`` record.

A firing event logs at the level its alert level maps to (critical: error,
warning: warning, info: info); a resolved event logs at info. The event's
own level is the ``alert_level`` key, because structlog's ``level`` key is
the log level.
"""

from __future__ import annotations

from typing import Any

import structlog

from pharosd.model import AlertEvent

log = structlog.get_logger(__name__)

LOG_LEVEL = {"critical": "error", "warning": "warning", "info": "info"}


def log_fields(event: AlertEvent) -> dict[str, Any]:
    """The key-value context of the ``alert`` record (the event minus ``version``)."""
    d = event.to_dict()
    d.pop("version", None)
    d["alert_level"] = d.pop("level")
    return d


def log_level(event: AlertEvent) -> str:
    if event.status == "resolved":
        return "info"
    return LOG_LEVEL.get(event.level, "warning")


class LogSink:
    blocking_timeout = 5.0

    def __init__(self, name: str) -> None:
        self.name = name

    def deliver(self, event: AlertEvent) -> None:
        getattr(log, log_level(event))("alert", sink=self.name, **log_fields(event))

    def reopen(self) -> None:
        pass

    def close(self) -> None:
        pass
