"""The durable per-sink queue of alert events waiting for delivery (SQLite, WAL).

One database file per sink (``<state_dir>/outbox/<name>.db``) holds one
table of pending events in submit order (``seq`` never reused). A row is
written before delivery is tried and deleted only once the event is
delivered or given up, so pending events survive a restart and ``kill -9``.
The file is opened by ``pharosd.sqlitedb.open_sqlite`` (WAL checked, mode
0640); commits use ``synchronous=FULL``: a committed event also survives a
power cut. The queue is bounded (``max_rows``): when full, the oldest row is
dropped and counted.

A file that is not a readable database (``is_corrupt``) is moved aside
(``quarantine``: ``<name>.db.corrupt-<time>``, logged) and a fresh one
started.

This class is not thread-safe on its own; ``SinkWorker`` serialises access
with its lock. Errors are ``sqlite3.Error`` (the worker falls back to memory).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
import time
from dataclasses import dataclass

import structlog

from pharosd.model import AlertEvent
from pharosd.sqlitedb import open_sqlite

log = structlog.get_logger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    enqueued REAL NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_fingerprint ON events (fingerprint, seq);
CREATE INDEX IF NOT EXISTS events_by_id ON events (id);
"""

_HEADS = """
SELECT e.seq, e.id, e.fingerprint, e.enqueued, e.body
FROM events AS e
JOIN (SELECT MIN(seq) AS seq FROM events GROUP BY fingerprint) AS h ON e.seq = h.seq
ORDER BY e.seq
"""

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def outbox_path(state_dir: str, sink_name: str) -> str:
    """``<state_dir>/outbox/<name>.db``, the name made safe for a file name."""
    safe = _UNSAFE.sub("_", sink_name) or "_"
    if safe.startswith("."):
        safe = "_" + safe[1:]
    return os.path.join(state_dir, "outbox", safe + ".db")


def is_corrupt(e: BaseException) -> bool:
    """True when SQLite says the file itself is damaged or not a database (not a full
    disk, a lock or a read-only file: those heal without losing the file)."""
    healable = sqlite3.OperationalError | sqlite3.IntegrityError | sqlite3.ProgrammingError
    return isinstance(e, sqlite3.DatabaseError) and not isinstance(e, healable)


def quarantine(path: str, name: str) -> str:
    """Move a damaged database (and its -wal, -shm) aside as ``<path>.corrupt-<time>``."""
    aside = f"{path}.corrupt-{int(time.time())}"
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.replace(path + suffix, aside + suffix)
    log.error("outbox_corrupt", sink=name, path=path, moved_to=aside,
              note="a fresh outbox is started; the events in the old file are not delivered")
    return aside


@dataclass(frozen=True)
class Pending:
    """One queued event. ``seq`` is None for an event held in memory only."""

    seq: int | None
    id: str
    fingerprint: str
    enqueued: float          # wall seconds when submitted (max_age counts from here)
    body: str                # AlertEvent.to_json()

    def event(self) -> AlertEvent:
        return AlertEvent.from_dict(json.loads(self.body))

    @classmethod
    def of(cls, event: AlertEvent, enqueued: float) -> Pending:
        return cls(None, event.id, event.fingerprint, enqueued, event.to_json())


class Outbox:
    """A SQLite-backed FIFO of ``Pending`` events, ordered per fingerprint."""

    def __init__(self, path: str, *, max_rows: int = 10_000) -> None:
        self.path = path
        self.max_rows = max_rows
        try:
            self._conn, self._count = self._connect(path)
        except sqlite3.DatabaseError as e:
            if not is_corrupt(e):
                raise
            quarantine(path, os.path.basename(path))
            self._conn, self._count = self._connect(path)

    @staticmethod
    def _connect(path: str) -> tuple[sqlite3.Connection, int]:
        conn = open_sqlite(path, busy_timeout=5.0, synchronous="FULL")
        try:
            conn.executescript(_SCHEMA)
            count = int(conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])
            check = conn.execute("PRAGMA quick_check(1)").fetchone()
            if check is None or check[0] != "ok":
                raise sqlite3.DatabaseError(f"quick_check: {check[0] if check else '?'}")
        except sqlite3.Error:
            conn.close()
            raise
        return conn, count

    def __len__(self) -> int:
        return self._count

    def put(self, items: list[Pending]) -> int:
        """Append ``items`` in one transaction; return how many old rows were
        dropped to stay within ``max_rows``."""
        if not items:
            return 0
        c = self._conn
        c.execute("BEGIN IMMEDIATE")
        try:
            c.executemany(
                "INSERT INTO events (id, fingerprint, enqueued, body) VALUES (?, ?, ?, ?)",
                [(p.id, p.fingerprint, p.enqueued, p.body) for p in items],
            )
            count = self._count + len(items)
            dropped = 0
            if count > self.max_rows:
                excess = count - self.max_rows
                cur = c.execute(
                    "DELETE FROM events WHERE seq IN "
                    "(SELECT seq FROM events ORDER BY seq LIMIT ?)", (excess,))
                dropped = cur.rowcount
                count -= dropped
            c.execute("COMMIT")
        except BaseException:
            if c.in_transaction:
                c.execute("ROLLBACK")
            raise
        self._count = count
        return dropped

    def heads(self) -> list[Pending]:
        """The oldest pending event of every fingerprint, oldest first."""
        rows = self._conn.execute(_HEADS).fetchall()
        # another process (a worker being replaced) may have changed the table
        self._count = int(self._conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])
        return [Pending(int(r[0]), str(r[1]), str(r[2]), float(r[3]), str(r[4])) for r in rows]

    def delete(self, event_id: str) -> int:
        cur = self._conn.execute("DELETE FROM events WHERE id = ?", (event_id,))
        self._count = max(0, self._count - cur.rowcount)
        return cur.rowcount

    def all(self) -> list[Pending]:
        """Every pending row in submit order (status and tests)."""
        rows = self._conn.execute(
            "SELECT seq, id, fingerprint, enqueued, body FROM events ORDER BY seq").fetchall()
        return [Pending(int(r[0]), str(r[1]), str(r[2]), float(r[3]), str(r[4])) for r in rows]

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._conn.close()
