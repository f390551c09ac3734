"""Opening the daemon's SQLite files (the uplink's spill, the sinks' outboxes) one way.

``open_sqlite`` creates the parent directory (0750) and the file (0640, and
an existing file is set to 0640: it may hold metric values and alert
texts), connects in autocommit mode usable from any thread (callers
serialise access), sets the busy timeout, switches to WAL and checks that
it took (a filesystem without shared memory cannot do WAL: that is an
``sqlite3.OperationalError``, not a corrupt file), and sets ``synchronous``.
Errors are ``sqlite3.Error``; the connection is closed before one is raised.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3

__all__ = ["open_sqlite"]

_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")


def open_sqlite(path: str, *, busy_timeout: float = 5.0, synchronous: str = "FULL",
                mode: int = 0o640, dir_mode: int = 0o750,
                first: tuple[str, ...] = ()) -> sqlite3.Connection:
    """Open ``path`` as described in the module docstring; ``first`` are PRAGMA
    statements run before WAL is set (``auto_vacuum`` must come first)."""
    if synchronous.upper() not in _SYNCHRONOUS:
        raise ValueError(f"synchronous: expected one of {_SYNCHRONOUS}, got {synchronous!r}")
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, mode=dir_mode, exist_ok=True)
    with contextlib.suppress(OSError):      # create it with its mode, not the umask's
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, mode))
    with contextlib.suppress(OSError):
        os.chmod(path, mode)
    db = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None,
                         check_same_thread=False)
    try:
        for statement in first:
            db.execute(statement)
        got = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(got).lower() != "wal":
            raise sqlite3.OperationalError(f"{path}: cannot use WAL journal mode (got {got})")
        db.execute(f"PRAGMA synchronous={synchronous.upper()}")
    except BaseException:
        db.close()
        raise
    return db
