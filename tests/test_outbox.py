"""The SQLite outbox: order per fingerprint, bounds, durability across reopen."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from peers.sinktools import event

from pharosd.sinks.outbox import Outbox, Pending, outbox_path


def test_outbox_path_is_per_sink_under_state_dir() -> None:
    assert outbox_path("/var/lib/pharos", "ops") == "/var/lib/pharos/outbox/ops.db"
    # a name never escapes the outbox directory
    assert outbox_path("/s", "../x/y") == "/s/outbox/_._x_y.db"
    assert outbox_path("/s", "") == "/s/outbox/_.db"


def test_heads_give_the_oldest_event_of_each_fingerprint(tmp_path: Path) -> None:
    box = Outbox(str(tmp_path / "o.db"))
    a1, b1, a2, c1, b2 = (event("a"), event("b"), event("a", "resolved"), event("c"),
                          event("b", "resolved"))
    box.put([Pending.of(e, 100.0) for e in (a1, b1, a2, c1, b2)])
    assert [p.id for p in box.heads()] == [a1.id, b1.id, c1.id]
    box.delete(a1.id)
    assert [p.id for p in box.heads()] == [b1.id, a2.id, c1.id]
    assert len(box) == 4
    box.close()


def test_rows_survive_reopen_with_their_ids_and_bodies(tmp_path: Path) -> None:
    path = str(tmp_path / "sub" / "o.db")
    box = Outbox(path)
    evs = [event("a"), event("a", "resolved")]
    box.put([Pending.of(e, 123.5) for e in evs])
    box.close()
    again = Outbox(path)
    rows = again.all()
    assert [r.id for r in rows] == [e.id for e in evs]
    assert [r.event().to_dict() for r in rows] == [e.to_dict() for e in evs]
    assert rows[0].enqueued == 123.5
    assert len(again) == 2
    mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    again.close()


def test_a_full_outbox_drops_the_oldest_rows(tmp_path: Path) -> None:
    box = Outbox(str(tmp_path / "o.db"), max_rows=3)
    evs = [event(f"r{i}") for i in range(5)]
    assert box.put([Pending.of(e, 1.0) for e in evs[:2]]) == 0
    assert box.put([Pending.of(e, 1.0) for e in evs[2:]]) == 2
    assert [r.id for r in box.all()] == [e.id for e in evs[2:]]
    assert len(box) == 3


def test_seq_is_never_reused_after_deletes(tmp_path: Path) -> None:
    """AUTOINCREMENT: a row put after the newest was deleted still sorts last."""
    box = Outbox(str(tmp_path / "o.db"))
    a, b = event("a"), event("a", "resolved")
    box.put([Pending.of(a, 1.0)])
    first = box.all()[0].seq
    box.delete(a.id)
    box.put([Pending.of(b, 1.0)])
    assert box.all()[0].seq > first  # type: ignore[operator]


def test_a_corrupt_file_is_set_aside_and_a_fresh_outbox_started(tmp_path: Path) -> None:
    p = tmp_path / "o.db"
    garbage = b"this is not a database" * 100
    p.write_bytes(garbage)
    box = Outbox(str(p))
    try:
        assert len(box) == 0
        box.put([Pending(None, "e1", "fp", 1.0, "{}")])
        assert [x.id for x in box.all()] == ["e1"]
    finally:
        box.close()
    aside = sorted(tmp_path.glob("o.db.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == garbage
    assert oct(p.stat().st_mode & 0o777) == oct(0o640)


def test_a_file_that_cannot_be_opened_is_an_sqlite_error_not_set_aside(tmp_path: Path) -> None:
    p = tmp_path / "o.db"
    p.mkdir()                    # a directory where the file should be: cannot heal by moving
    with pytest.raises(sqlite3.Error):
        Outbox(str(p))
    assert p.is_dir() and not list(tmp_path.glob("*.corrupt-*"))
