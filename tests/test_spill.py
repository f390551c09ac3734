"""The spill: SQLite WAL under state_dir, bounded by size and age, oldest first, always opens.

Killing a whole pipeline process while it spills is in
test_remote_write_victoriametrics.py; here the spill alone, on real files.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import structlog

from pharosd.clock import FakeClock
from pharosd.errors import UplinkError
from pharosd.pipeline.batch import Batch
from pharosd.pipeline.spill import Spill

NOW_MS = 1_700_000_000_000


def batch(start: int, n: int, series: int = 5) -> Batch:
    return Batch.of([((f"m{i % series}", (("k", "v"),)), NOW_MS + 1000 * (start + i),
                      float(start + i)) for i in range(n)])


class Drops:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, int]] = []

    def __call__(self, lane: str, reason: str, n: int) -> None:
        self.calls.append((lane, reason, n))

    def total(self, reason: str) -> int:
        return sum(n for _, r, n in self.calls if r == reason)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(wall=NOW_MS / 1000 + 3600)


def open_spill(tmp_path: Path, clock: FakeClock, drops: Drops | None = None,
               max_size: int = 64 * 1024 * 1024, max_age: float = 86400.0) -> Spill:
    sp = Spill(str(tmp_path / "state" / "spill.db"), max_size, max_age, on_drop=drops,
               clock=clock)
    sp.open()
    return sp


def test_batches_come_back_first_spilled_first_per_receiver(tmp_path, clock) -> None:
    sp = open_spill(tmp_path, clock)
    sp.put("a", batch(0, 10))
    sp.put("b", batch(100, 10))
    sp.put("a", batch(10, 10))
    rows, got = sp.oldest("a")                           # type: ignore[misc]
    assert got.rows() == batch(0, 10).rows()
    sp.delete(rows)
    rows2, got2 = sp.oldest("a")                         # type: ignore[misc]
    assert rows2[0] > rows[0] and list(got2.val) == [float(i) for i in range(10, 20)]
    assert sp.stats("a").samples == 10 and sp.stats("b").samples == 10
    assert sp.stats("a").oldest_ts == NOW_MS + 10_000
    sp.delete(rows2)
    assert sp.oldest("a") is None and not sp.has_rows("a")


def test_small_rows_are_merged_up_to_a_request_and_deleted_together(tmp_path, clock) -> None:
    sp = open_spill(tmp_path, clock)
    for k in range(10):
        sp.put("a", batch(10 * k, 10))
    rows, got = sp.oldest("a", 35)                       # type: ignore[misc]
    assert len(rows) == 3 and list(got.val) == [float(i) for i in range(30)]
    sp.delete(rows)
    assert sp.stats("a").rows == 7 and sp.stats("a").samples == 70
    rows, got = sp.oldest("a", 5)                        # type: ignore[misc]
    assert len(rows) == 1 and len(got) == 10, "at least one whole row"


def test_rows_and_counters_survive_reopening(tmp_path, clock) -> None:
    sp = open_spill(tmp_path, clock)
    for k in range(5):
        sp.put("a", batch(10 * k, 10))
    stats, total = sp.stats("a"), sp.total_bytes
    sp.close()
    sp2 = open_spill(tmp_path, clock)
    assert sp2.stats("a") == stats and sp2.total_bytes == total
    assert sp2.oldest("a")[1].rows() == batch(0, 10).rows()   # type: ignore[index]


def test_replace_keeps_what_is_left_of_a_row(tmp_path, clock) -> None:
    sp = open_spill(tmp_path, clock)
    sp.put("a", batch(0, 10))
    sp.put("a", batch(10, 10))
    rows, b = sp.oldest("a", 20)                         # type: ignore[misc]
    assert len(rows) == 2
    sp.replace(rows, b.slice(16, 20))
    rows2, left = sp.oldest("a", 100)                    # type: ignore[misc]
    assert rows2 == rows[:1] and list(left.val) == [16.0, 17.0, 18.0, 19.0]
    assert sp.stats("a").samples == 4 and sp.stats("a").rows == 1
    assert sp.stats("a").oldest_ts == NOW_MS + 16000


def test_past_max_size_the_oldest_rows_go_counted_and_logged(tmp_path, clock) -> None:
    drops = Drops()
    sp = open_spill(tmp_path, clock, drops, max_size=64 * 1024)
    with structlog.testing.capture_logs() as logs:
        for k in range(200):
            sp.put("a", batch(100 * k, 100, series=100))
    assert sp.total_bytes <= 64 * 1024
    kept = sp.stats("a").samples
    assert drops.total("spill_full") == 200 * 100 - kept > 0
    first = sp.oldest("a")[1]                            # type: ignore[index]
    assert min(first.val) > 0, "the oldest went first"
    assert sp.oldest("a") is not None
    assert any(e["event"] == "spill_full" for e in logs)


def test_a_single_row_bigger_than_max_size_is_kept(tmp_path, clock) -> None:
    drops = Drops()
    sp = open_spill(tmp_path, clock, drops, max_size=64 * 1024)
    big = Batch.of([((f"m{i}", (("k", "x" * 50),)), NOW_MS + i, float(i)) for i in range(5000)])
    sp.put("a", big)
    assert sp.stats("a").rows == 1
    sp.put("a", batch(0, 5))
    assert sp.stats("a").rows == 1 and drops.total("spill_full") == 5000


def test_rows_older_than_max_age_expire_counted(tmp_path, clock) -> None:
    drops = Drops()
    sp = open_spill(tmp_path, clock, drops, max_age=1800.0)
    sp.put("a", batch(0, 10))                     # an hour old (newest 9 s later)
    sp.put("a", batch(3000, 10))                  # ten minutes old
    assert sp.expire() == 10
    assert drops.calls == [("a", "spill_expired", 10)]
    assert sp.stats("a").samples == 10 and sp.stats("a").oldest_ts == NOW_MS + 3_000_000
    clock.advance(3600)
    assert sp.expire() == 10 and not sp.has_rows("a")


def test_dropping_a_receiver_removes_only_its_rows(tmp_path, clock) -> None:
    drops = Drops()
    sp = open_spill(tmp_path, clock, drops)
    sp.put("a", batch(0, 10))
    sp.put("b", batch(0, 7))
    assert sp.drop_lane("b", "receiver_removed") == 7
    assert sp.lanes() == ["a"] and drops.calls == [("b", "receiver_removed", 7)]


def test_a_file_that_is_not_a_database_is_moved_aside_and_the_spill_opens(tmp_path,
                                                                          clock) -> None:
    path = tmp_path / "state" / "spill.db"
    path.parent.mkdir()
    path.write_bytes(b"this is not sqlite" * 500)
    with structlog.testing.capture_logs() as logs:
        sp = open_spill(tmp_path, clock)
    sp.put("a", batch(0, 3))
    assert sp.stats("a").samples == 3
    assert [p.name for p in path.parent.glob("spill.db.corrupt-*")]
    assert any(e["event"] == "spill_corrupt" for e in logs)


def test_a_corrupt_row_is_dropped_and_counted_and_the_next_row_read(tmp_path, clock) -> None:
    drops = Drops()
    sp = open_spill(tmp_path, clock, drops)
    sp.put("a", batch(0, 4))
    sp.put("a", batch(4, 4))
    sp.close()
    db = sqlite3.connect(tmp_path / "state" / "spill.db")
    db.execute("UPDATE batches SET payload = x'00ff00' WHERE id = (SELECT MIN(id) FROM batches)")
    db.commit()
    db.close()
    sp = open_spill(tmp_path, clock, drops)
    _, b = sp.oldest("a")                                # type: ignore[misc]
    assert list(b.val) == [4.0, 5.0, 6.0, 7.0]
    assert drops.calls == [("a", "corrupt", 4)]


def test_an_unwritable_place_is_an_uplink_error_not_a_crash(tmp_path, clock) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    sp = Spill(str(blocker / "spill.db"), 1 << 20, 60.0, clock=clock)
    with pytest.raises(UplinkError, match="cannot open the spill"):
        sp.open()
    with pytest.raises(UplinkError):
        sp.put("a", batch(0, 1))


def test_the_journal_is_wal(tmp_path, clock) -> None:
    sp = open_spill(tmp_path, clock)
    sp.put("a", batch(0, 1))
    db = sqlite3.connect(tmp_path / "state" / "spill.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()
