"""The spill: batches the uplink could not send yet, in SQLite (WAL) under state_dir.

One table holds every receiver's batches (column ``lane`` names the
receiver); a row is one batch in ``Batch.to_bytes`` form, snappy-compressed.

* Durability: opened by ``pharosd.sqlitedb.open_sqlite`` (WAL checked, mode
  0640) with ``synchronous=FULL``, so every committed ``put``
  survives ``kill -9`` and power loss; SQLite recovers the WAL when the file
  is next opened. A file that is not a readable database is renamed
  ``<name>.corrupt-<time>`` and a fresh one started (logged), so the spill
  always opens.
* Bounds: ``max_size`` caps the stored payload bytes (the file adds a few %
  of page overhead; freed pages are returned to the filesystem with
  incremental vacuum) and ``max_age`` the age of a batch's newest sample.
  Past either bound the oldest rows go first; each drop is logged and
  reported through ``on_drop(lane, reason, samples)`` (reasons
  ``spill_full``, ``spill_expired``, ``corrupt``).
* Order: ``oldest(lane, n)`` gives the rows with the lowest ids (the first
  spilled), merged up to ``n`` samples so a catch-up sends full requests.
  A row is deleted only by ``delete`` (the receiver acknowledged it) or by
  the bounds; ``replace`` rewrites rows when part of them was acknowledged.

Thread-safe (one connection behind a lock); the uplink worker does the
writes, status readers only read the in-memory counters.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import structlog

from pharosd.clock import Clock, SystemClock
from pharosd.errors import UplinkError
from pharosd.pipeline import compression
from pharosd.pipeline.batch import Batch, SeriesKey
from pharosd.sqlitedb import open_sqlite

log = structlog.get_logger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    id INTEGER PRIMARY KEY,
    lane TEXT NOT NULL,
    spilled REAL NOT NULL,
    min_ts INTEGER NOT NULL,
    max_ts INTEGER NOT NULL,
    samples INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    payload BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS batches_lane ON batches(lane, id);
CREATE INDEX IF NOT EXISTS batches_max_ts ON batches(max_ts);
"""
_VACUUM_SLACK = 8 * 1024 * 1024    # free pages worth returning to the filesystem
KNOWN_SERIES_SETS = 64              # series lists of spilled rows remembered (decoded once)

DropCallback = Callable[[str, str, int], None]


@dataclass
class LaneStats:
    rows: int = 0
    samples: int = 0
    bytes: int = 0
    oldest_ts: int | None = None     # ms of the oldest sample of the first row


class Spill:
    def __init__(self, path: str, max_size: int, max_age: float, *,
                 on_drop: DropCallback | None = None, clock: Clock | None = None) -> None:
        self.path = path
        self.max_size = max_size
        self.max_age = max_age
        self._on_drop = on_drop or (lambda lane, reason, n: None)
        self._clock = clock or SystemClock()
        self._lock = threading.RLock()
        self._db: sqlite3.Connection | None = None
        self._lanes: dict[str, LaneStats] = {}
        self._known: dict[bytes, tuple[SeriesKey, ...]] = {}   # series of rows read
        self.total_bytes = 0
        self.writes = 0
        self.errors = 0
        self.last_error: str | None = None

    # -- opening ---------------------------------------------------------------

    def open(self) -> None:
        """Open (or create) the file; a corrupt one is moved aside and replaced."""
        with self._lock:
            if self._db is not None:
                return
            try:
                try:
                    self._db = self._connect()
                except sqlite3.DatabaseError as e:
                    if isinstance(e, sqlite3.OperationalError):
                        raise      # cannot open, locked: not the file's fault
                    aside = f"{self.path}.corrupt-{int(self._clock.wall())}"
                    log.error("spill_corrupt", path=self.path, error=str(e), moved_to=aside)
                    for suffix in ("", "-wal", "-shm"):
                        if os.path.exists(self.path + suffix):
                            os.replace(self.path + suffix, aside + suffix)
                    self._db = self._connect()
                self._load_stats()
            except (OSError, sqlite3.Error) as e:
                if self._db is not None:
                    self._db.close()
                    self._db = None
                raise UplinkError(f"cannot open the spill {self.path}: {e}") from None
            total = sum(s.samples for s in self._lanes.values())
            log.info("spill_opened", path=self.path, rows=sum(s.rows for s in self._lanes.values()),
                     samples=total, bytes=self.total_bytes)

    def _connect(self) -> sqlite3.Connection:
        # auto_vacuum only takes on a new file
        db = open_sqlite(self.path, busy_timeout=10.0, synchronous="FULL",
                         first=("PRAGMA auto_vacuum=INCREMENTAL",))
        try:
            db.execute("PRAGMA journal_size_limit=8388608")
            db.executescript(_SCHEMA)
            db.execute("SELECT COUNT(*) FROM batches").fetchone()
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    def _load_stats(self) -> None:
        db = self._conn()
        self._lanes = {}
        for lane, rows, samples, nbytes in db.execute(
                "SELECT lane, COUNT(*), SUM(samples), SUM(bytes) FROM batches GROUP BY lane"):
            self._lanes[lane] = LaneStats(rows, samples or 0, nbytes or 0)
            self._refresh_oldest(lane)
        self.total_bytes = sum(s.bytes for s in self._lanes.values())

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise UplinkError(f"spill {self.path} is not open")
        return self._db

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                self._db.close()
                self._db = None

    # -- reading state ---------------------------------------------------------

    def stats(self, lane: str) -> LaneStats:
        s = self._lanes.get(lane)
        return LaneStats(s.rows, s.samples, s.bytes, s.oldest_ts) if s else LaneStats()

    def lanes(self) -> list[str]:
        return list(self._lanes)

    def file_bytes(self) -> int:
        total = 0
        for suffix in ("", "-wal"):
            with contextlib.suppress(OSError):
                total += os.path.getsize(self.path + suffix)
        return total

    def has_rows(self, lane: str) -> bool:
        s = self._lanes.get(lane)
        return bool(s and s.rows)

    # -- writing ---------------------------------------------------------------

    def put(self, lane: str, batch: Batch) -> None:
        """Store one batch (committed and synced when this returns)."""
        if not len(batch):
            return
        payload = compression.compress(batch.to_bytes())
        with self._lock:
            try:
                self._conn().execute(
                    "INSERT INTO batches (lane, spilled, min_ts, max_ts, samples, bytes, payload)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (lane, self._clock.wall(), batch.min_ts, batch.max_ts, len(batch),
                     len(payload), payload))
            except sqlite3.Error as e:
                self._failed("spill_write_failed", e)
                raise UplinkError(f"spill write failed: {e}") from None
            self.writes += 1
            s = self._lanes.setdefault(lane, LaneStats())
            s.rows += 1
            s.samples += len(batch)
            s.bytes += len(payload)
            if s.oldest_ts is None:
                s.oldest_ts = batch.min_ts
            self.total_bytes += len(payload)
            if self.total_bytes > self.max_size:
                try:
                    self._enforce_size()
                except sqlite3.Error as e:      # the row is written; the bound waits
                    self._failed("spill_bound_failed", e)

    def oldest(self, lane: str, max_samples: int = 1) -> tuple[list[int], Batch] | None:
        """The first-spilled rows of ``lane``, merged into one batch of at least one row and
        at most ``max_samples`` samples beyond it, with their row ids (corrupt rows are
        dropped and counted)."""
        with self._lock:
            while True:
                try:
                    rows = self._conn().execute(
                        "SELECT id, samples FROM batches WHERE lane = ? ORDER BY id LIMIT 256",
                        (lane,)).fetchall()
                except sqlite3.Error as e:
                    self._failed("spill_read_failed", e)
                    raise UplinkError(f"spill read failed: {e}") from None
                if not rows:
                    return None
                ids: list[int] = []
                total = 0
                for row_id, samples in rows:
                    if ids and total + samples > max_samples:
                        break
                    ids.append(row_id)
                    total += samples
                parts: list[Batch] = []
                bad: list[int] = []
                with self._guard("spill_read_failed"):
                    for row_id in ids:
                        (payload,) = self._conn().execute(
                            "SELECT payload FROM batches WHERE id = ?", (row_id,)).fetchone()
                        try:
                            if len(self._known) >= KNOWN_SERIES_SETS:
                                self._known.clear()
                            parts.append(Batch.from_bytes(compression.decompress(payload),
                                                          self._known))
                        except UplinkError as e:
                            log.error("spill_row_corrupt", lane=lane, row=row_id, error=str(e))
                            bad.append(row_id)
                    if bad:
                        self._delete_rows(bad, "corrupt")
                if bad:
                    continue
                return ids, parts[0] if len(parts) == 1 else Batch.concat(parts)

    def delete(self, ids: list[int]) -> None:
        """The receiver acknowledged these rows."""
        with self._lock, self._guard("spill_delete_failed"):
            self._delete_rows(list(ids), None)

    def replace(self, ids: list[int], batch: Batch) -> None:
        """Keep only ``batch`` (what is still unacknowledged of rows ``ids``): it goes into
        the first row, the others are deleted."""
        if not ids:
            return
        if not len(batch):
            self.delete(ids)
            return
        payload = compression.compress(batch.to_bytes())
        row_id = ids[0]
        with self._lock:
            db = self._conn()
            try:
                row = db.execute("SELECT lane, samples, bytes FROM batches WHERE id = ?",
                                 (row_id,)).fetchone()
                if row is None:
                    return
                lane, old_samples, old_bytes = row
                db.execute("UPDATE batches SET min_ts = ?, max_ts = ?, samples = ?, bytes = ?, "
                           "payload = ? WHERE id = ?",
                           (batch.min_ts, batch.max_ts, len(batch), len(payload), payload,
                            row_id))
            except sqlite3.Error as e:
                self._failed("spill_write_failed", e)
                raise UplinkError(f"spill write failed: {e}") from None
            s = self._lanes.setdefault(lane, LaneStats())
            s.samples += len(batch) - old_samples
            s.bytes += len(payload) - old_bytes
            self.total_bytes += len(payload) - old_bytes
            with self._guard("spill_write_failed"):
                self._delete_rows(list(ids[1:]), None)
                self._refresh_oldest(lane)

    def drop_lane(self, lane: str, reason: str) -> int:
        """Delete every row of ``lane`` (a receiver removed from the config)."""
        with self._lock, self._guard("spill_delete_failed"):
            ids = [r[0] for r in self._conn().execute(
                "SELECT id FROM batches WHERE lane = ?", (lane,))]
            return self._delete_rows(ids, reason)

    def expire(self) -> int:
        """Drop rows whose newest sample is older than ``max_age``; returns samples dropped."""
        cutoff = int((self._clock.wall() - self.max_age) * 1000)
        with self._lock:
            try:
                ids = [r[0] for r in self._conn().execute(
                    "SELECT id FROM batches WHERE max_ts < ?", (cutoff,))]
                n = self._delete_rows(ids, "spill_expired")
                self._vacuum()
            except (sqlite3.Error, UplinkError) as e:
                self._failed("spill_expire_failed", e)
                return 0
        if n:
            log.warning("spill_expired", samples=n, rows=len(ids), max_age=self.max_age)
        return n

    # -- internals ---------------------------------------------------------------

    def _enforce_size(self) -> None:
        """Drop the first-spilled rows until the payload fits ``max_size`` (never the
        newest row: a bound must not eat what was just written)."""
        db = self._conn()
        dropped = rows = 0
        while self.total_bytes > self.max_size:
            cand = db.execute("SELECT id, bytes FROM batches ORDER BY id LIMIT 64").fetchall()
            if len(cand) < 64:
                cand = cand[:-1]
            if not cand:
                break
            excess = self.total_bytes - self.max_size
            take: list[int] = []
            freed = 0
            for row_id, nbytes in cand:
                if freed >= excess:
                    break
                take.append(row_id)
                freed += nbytes
            rows += len(take)
            dropped += self._delete_rows(take, "spill_full")
        if rows:
            log.warning("spill_full", dropped_samples=dropped, dropped_rows=rows,
                        max_size=self.max_size, bytes=self.total_bytes)

    def _delete_rows(self, ids: list[int], reason: str | None) -> int:
        if not ids:
            return 0
        db = self._conn()
        samples_by_lane: dict[str, list[int]] = {}
        for chunk_start in range(0, len(ids), 500):
            chunk = ids[chunk_start:chunk_start + 500]
            marks = ",".join("?" * len(chunk))
            rows = db.execute(f"SELECT lane, samples, bytes FROM batches WHERE id IN ({marks})",
                              chunk).fetchall()
            db.execute(f"DELETE FROM batches WHERE id IN ({marks})", chunk)
            for lane, samples, nbytes in rows:
                acc = samples_by_lane.setdefault(lane, [0, 0, 0])
                acc[0] += 1
                acc[1] += samples
                acc[2] += nbytes
        total = 0
        for lane, (nrows, samples, nbytes) in samples_by_lane.items():
            s = self._lanes.setdefault(lane, LaneStats())
            s.rows -= nrows
            s.samples -= samples
            s.bytes -= nbytes
            self.total_bytes -= nbytes
            total += samples
            if s.rows <= 0:
                del self._lanes[lane]
            else:
                self._refresh_oldest(lane)
            if reason is not None:
                self._on_drop(lane, reason, samples)
        return total

    def _refresh_oldest(self, lane: str) -> None:
        row = self._conn().execute(
            "SELECT min_ts FROM batches WHERE lane = ? ORDER BY id LIMIT 1", (lane,)).fetchone()
        s = self._lanes.get(lane)
        if s is not None:
            s.oldest_ts = row[0] if row else None

    def _vacuum(self) -> None:
        db = self._conn()
        free = db.execute("PRAGMA freelist_count").fetchone()[0]
        page = db.execute("PRAGMA page_size").fetchone()[0]
        if free * page >= _VACUUM_SLACK:
            db.execute("PRAGMA incremental_vacuum")

    @contextlib.contextmanager
    def _guard(self, event: str) -> Iterator[None]:
        """SQLite errors become a logged, counted ``UplinkError``."""
        try:
            yield
        except sqlite3.Error as e:
            self._failed(event, e)
            raise UplinkError(f"{event.replace('_', ' ')}: {e}") from None

    def _failed(self, event: str, e: Exception) -> None:
        self.errors += 1
        self.last_error = str(e)
        log.error(event, path=self.path, error=str(e))
