"""The file sink: one JSON event per line, reopen for logrotate, size rotation."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from peers.sinktools import event

from pharosd.errors import DeliveryError
from pharosd.sinks.config import FileSinkConfig
from pharosd.sinks.factory import build_sink
from pharosd.sinks.file import FileSink


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_one_json_event_per_line_visible_at_once(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "alerts.jsonl"
    sink = FileSink("f", str(path))
    evs = [event("a"), event("a", "resolved")]
    for ev in evs:
        sink.deliver(ev)
        # flushed per event: another reader sees it before close
        assert lines(path)[-1] == ev.to_dict()
    assert lines(path) == [e.to_dict() for e in evs]
    sink.close()


def test_default_path_is_under_state_dir(tmp_path: Path) -> None:
    cfg = FileSinkConfig(name="local", kind="file")
    sink = build_sink(cfg, state_dir=str(tmp_path), host="h")
    sink.deliver(event())
    sink.close()
    assert len(lines(tmp_path / "alerts.jsonl")) == 1


def test_reopen_follows_logrotate(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    sink = FileSink("f", str(path))
    first, second = event("one"), event("two")
    sink.deliver(first)
    os.rename(path, tmp_path / "alerts.jsonl.1")     # logrotate moves the file
    sink.reopen()                                     # SIGHUP
    sink.deliver(second)
    sink.close()
    assert [x["rule"] for x in lines(tmp_path / "alerts.jsonl.1")] == ["one"]
    assert [x["rule"] for x in lines(path)] == ["two"]


def test_size_rotation_keeps_n_files(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    one_line = len(event().to_json()) + 1
    sink = FileSink("f", str(path), max_size=2 * one_line + 10, keep=2)
    evs = [event(f"r{i}") for i in range(7)]          # same rule length: same line size
    for ev in evs:
        sink.deliver(ev)
    sink.close()
    rules = [[x["rule"] for x in lines(p)] for p in
             (path, Path(f"{path}.1"), Path(f"{path}.2"))]
    assert rules == [["r6"], ["r4", "r5"], ["r2", "r3"]]
    assert not Path(f"{path}.3").exists()
    for p in (path, Path(f"{path}.1"), Path(f"{path}.2")):
        assert p.stat().st_size <= 2 * one_line + 10


def test_an_event_bigger_than_max_size_is_still_written(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    sink = FileSink("f", str(path), max_size=10, keep=1)
    sink.deliver(event("a"))
    sink.deliver(event("b"))
    sink.close()
    assert [x["rule"] for x in lines(path)] == ["b"]
    assert [x["rule"] for x in lines(Path(f"{path}.1"))] == ["a"]


def test_an_unwritable_path_is_a_retryable_error(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("")
    sink = FileSink("f", str(tmp_path / "blocker" / "alerts.jsonl"))
    with pytest.raises(DeliveryError, match="blocker"):
        sink.deliver(event())
