"""The log sink: one structlog ``alert`` record per event, at a level from the alert."""

from __future__ import annotations

import pytest
import structlog
from peers.sinktools import event

from pharosd.sinks.config import LogSinkConfig
from pharosd.sinks.factory import build_sink


@pytest.mark.parametrize(("level", "status", "log_level"), [
    ("critical", "firing", "error"), ("warning", "firing", "warning"),
    ("info", "firing", "info"), ("critical", "resolved", "info"),
])
def test_alert_record_carries_the_event(level: str, status: str, log_level: str) -> None:
    sink = build_sink(LogSinkConfig(name="journal", kind="log"), state_dir="/nonexistent",
                      host="h")
    ev = event("mem", status, level=level, labels={"mount": "/"})  # type: ignore[arg-type]
    with structlog.testing.capture_logs() as logs:
        sink.deliver(ev)
    (rec,) = logs
    assert rec["event"] == "alert"
    assert rec["log_level"] == log_level
    assert rec["alert_level"] == level
    expected = ev.to_dict()
    expected.pop("version")
    expected.pop("level")
    for key, value in expected.items():
        assert rec[key] == value, key
    assert rec["sink"] == "journal"
