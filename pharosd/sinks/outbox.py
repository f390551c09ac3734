"""The durable per-sink queue of alert events waiting for delivery (SQLite, WAL).

One database file per sink (``<state_dir>/outbox/<name>.db``) holds one
table of pending events in submit order (``seq`` never reused). A row is
written before delivery is tried and deleted only once the event is
delivered or given up, so pending events survive a restart and ``kill -9``.
The file is opened by ``pharosd.sqlitedb.open_sqlite`` (WAL checked, mode
0640); commits use ``synchronous=FULL``: a committed event also survives a
power cut. The queue is bounded (``max_rows``): when full, the oldest row is
dropped and counted.

This class is not thread-safe on its own; ``SinkWorker`` serialises access
with its lock. Errors are ``sqlite3.Error`` (the worker falls back to memory).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
from dataclasses import dataclass

from pharosd.model import AlertEvent
from pharosd.sqlitedb import open_sqlite

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
        self._conn = open_sqlite(path, busy_timeout=5.0, synchronous="FULL")
        try:
            self._conn.executescript(_SCHEMA)
            self._count = int(self._conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])
        except sqlite3.Error:
            self._conn.close()
            raise

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
