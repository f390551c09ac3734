"""The file sink: one JSON alert event per line, with optional size rotation.

Each event is written as one line and flushed (and fsynced unless ``fsync:
false``) before ``deliver`` returns. ``reopen`` (SIGHUP) closes and reopens
the path, so logrotate can move the file away. With ``max_size``, a write
that would grow the file past it first rotates: ``alerts.jsonl`` becomes
``alerts.jsonl.1``, ``.1`` becomes ``.2`` ... up to ``keep`` files.
"""

from __future__ import annotations

import contextlib
import os
import threading
from typing import IO

from pharosd.errors import DeliveryError
from pharosd.model import AlertEvent


def rotated_names(path: str, keep: int) -> list[str]:
    """``[path.1, ..., path.keep]``, newest first."""
    return [f"{path}.{i}" for i in range(1, keep + 1)]


class FileSink:
    """Appends events to ``path``; thread-safe for ``reopen`` from another thread."""

    blocking_timeout = 10.0

    def __init__(self, name: str, path: str, *, max_size: int | None = None, keep: int = 5,
                 fsync: bool = True) -> None:
        self.name = name
        self.path = path
        self.max_size = max_size
        self.keep = keep
        self.fsync = fsync
        self._lock = threading.Lock()
        self._fh: IO[bytes] | None = None

    def deliver(self, event: AlertEvent) -> None:
        line = (event.to_json() + "\n").encode()
        with self._lock:
            try:
                fh = self._open()
                if self.max_size is not None:
                    size = fh.tell()
                    if size > 0 and size + len(line) > self.max_size:
                        self._rotate()
                        fh = self._open()
                fh.write(line)
                fh.flush()
                if self.fsync:
                    os.fsync(fh.fileno())
            except OSError as e:
                self._close()
                raise DeliveryError(f"cannot write {self.path}: {e.strerror or e}") from e

    def reopen(self) -> None:
        with self._lock:
            self._close()

    def close(self) -> None:
        with self._lock:
            self._close()

    def _open(self) -> IO[bytes]:
        if self._fh is None:
            d = os.path.dirname(self.path)
            if d:
                os.makedirs(d, exist_ok=True)
            self._fh = open(self.path, "ab")  # noqa: SIM115 - kept open across events
        return self._fh

    def _close(self) -> None:
        if self._fh is not None:
            with contextlib.suppress(OSError):
                self._fh.close()
            self._fh = None

    def _rotate(self) -> None:
        self._close()
        names = [self.path, *rotated_names(self.path, self.keep)]
        if os.path.exists(names[-1]):
            os.unlink(names[-1])
        for i in range(len(names) - 2, -1, -1):
            if os.path.exists(names[i]):
                os.replace(names[i], names[i + 1])
