"""Real peers for tests on 127.0.0.1: rsyslogd, Alertmanager, Prometheus,
VictoriaMetrics and an HTTP receiver; ``wait_for`` polls for a condition.

Each program helper starts its program with a private config in a temporary
directory, waits until it is ready, and stops it in ``stop()`` (use them as
context managers or from fixtures with ``finally``); the process handling
they share is ``peers.process.PeerProcess``. ``free_port`` and
``require_binary`` come from tests/conftest.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(pred: Callable[[], T], timeout: float = 20.0, step: float = 0.05) -> T:
    """Poll ``pred`` until it returns something truthy or ``timeout`` passes; return it."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (tests/conftest.py)."""
    from conftest import free_port as _free_port

    return int(_free_port())


def require_binary(name: str, *candidates: str) -> str:
    """A peer program's path; skipped when missing, failed with CI=true (tests/conftest.py)."""
    from conftest import require_binary as _require

    return str(_require(name, *candidates))
