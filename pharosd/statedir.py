"""The state directory's health: created at start, retried while it cannot be used.

``StateDir.check()`` makes the directory (0750) and tells whether it can be
written; a directory that cannot be (read-only, full, not a directory) is
logged once (``state_dir_unavailable``), kept in ``error`` for ``status``,
and tried again by ``maybe_retry()`` every ``RETRY`` seconds (and at once by
``check()``, on SIGHUP) until it works (``state_dir_recovered``). Nothing
here stops the daemon: the outboxes, the spill and the alert state each
fall back to memory meanwhile. ``problems`` words what is degraded for
``status`` and systemd's ``STATUS=``.
"""

from __future__ import annotations

import os
import time

import structlog

log = structlog.get_logger(__name__)

RETRY = 5.0                 # seconds between attempts while the directory is unusable


class StateDir:
    def __init__(self, path: str) -> None:
        self.path = path
        self.error: str | None = None
        self._next = 0.0

    def check(self) -> bool:
        """Create the directory if needed; True when it can be written."""
        self._next = time.monotonic() + RETRY
        try:
            os.makedirs(self.path, mode=0o750, exist_ok=True)
            if not os.access(self.path, os.W_OK):
                raise PermissionError(f"{self.path} is not writable")
        except OSError as e:
            error = e.strerror or str(e)
            if self.error is None:
                log.error("state_dir_unavailable", path=self.path, error=error,
                          note="running without durable state until it can be written")
            self.error = error
            return False
        if self.error is not None:
            log.info("state_dir_recovered", path=self.path)
        self.error = None
        return True

    def maybe_retry(self) -> None:
        """Called from the main loop: try again when unusable and the wait is over."""
        if self.error is not None and time.monotonic() >= self._next:
            self.check()


def problems(state: StateDir, spill_error: str | None,
             outboxes: dict[str, str | None]) -> list[str]:
    """The degraded parts, for ``status`` and ``STATUS=``: the state directory, the
    spill (``spill_error``) and each sink's outbox (name -> its trouble or None)."""
    out: list[str] = []
    if state.error is not None:
        out.append(f"state_dir {state.path}: {state.error}")
    if spill_error is not None:
        out.append(f"spill: {spill_error} (samples kept in memory)")
    out += [f"sink {name}: outbox {trouble} (events kept in memory)"
            for name, trouble in outboxes.items() if trouble is not None]
    return out
