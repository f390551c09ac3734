"""systemd's notify protocol (sd_notify): READY, RELOADING, STOPPING, STATUS, WATCHDOG.

A thin wrapper over ``sdnotify``: it does nothing without ``NOTIFY_SOCKET``,
and knows the watchdog interval from ``WATCHDOG_USEC`` (honouring
``WATCHDOG_PID``). Pings go at half the interval, as sd_watchdog_enabled(3)
advises.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import sdnotify
import structlog

log = structlog.get_logger(__name__)


class Notifier:
    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.enabled = bool(env.get("NOTIFY_SOCKET"))
        self._notifier = sdnotify.SystemdNotifier() if self.enabled else None
        self.watchdog_interval: float | None = None
        usec = env.get("WATCHDOG_USEC")
        pid = env.get("WATCHDOG_PID")
        if usec and (not pid or pid == str(os.getpid())):
            try:
                seconds = int(usec) / 1_000_000
            except ValueError:
                log.warning("watchdog_usec_invalid", value=usec)
            else:
                if seconds > 0:
                    self.watchdog_interval = seconds / 2
        self._last_status = ""

    def send(self, *lines: str) -> None:
        if self._notifier is not None:
            self._notifier.notify("\n".join(lines))

    def ready(self, status: str) -> None:
        self.send("READY=1", f"STATUS={status}")
        self._last_status = status

    def reloading(self) -> None:
        self.send("RELOADING=1")

    def stopping(self) -> None:
        self.send("STOPPING=1")

    def status(self, text: str) -> None:
        if text != self._last_status:
            self.send(f"STATUS={text}")
            self._last_status = text

    def watchdog(self) -> None:
        self.send("WATCHDOG=1")
