"""Locks on what every process on this machine shares: ``machine_lock(name)``.

`make test` runs its two suite runs at the same time, each on several xdist
workers. Tests that change the machine itself (installing the .deb puts
``/etc/pharos.yaml`` in place) or depend on it being unchanged hold the same
named lock, an ``flock`` on a file in the temporary directory, so they take
turns across every worker and both runs.
"""

from __future__ import annotations

import contextlib
import fcntl
import tempfile
from collections.abc import Iterator
from pathlib import Path

# Held while the pharosd package is installed, and by tests that need it absent.
PACKAGE = "pharosd-package"


@contextlib.contextmanager
def machine_lock(name: str) -> Iterator[None]:
    """Hold the machine-wide lock ``name`` (blocking until it is free)."""
    with open(Path(tempfile.gettempdir()) / f"pharosd-tests-{name}.lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
