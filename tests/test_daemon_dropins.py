"""A real ``pharosd run`` with drop-ins: a reload reads every file again; a drop-in added,
changed or removed applies like an edit of the main file, and the alerts of unchanged
thresholds keep their state (a firing alert stays firing, with no new event)."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from tests.support.daemon import PharosProcess, read_events, wait_until
from tests.test_cli import pharosd

pytestmark = pytest.mark.timeout(120)


def main_config(tmp: Path) -> str:
    return f"""
interval: 250ms
soak: 0s
cool: 1s
state_dir: {tmp}/state
include: [pharos.d/*.yaml]
statistics: [uptime, memory]
sinks:
  - {{name: file, kind: file, path: {tmp}/alerts.jsonl}}
"""


UPTIME = "thresholds:\n  - {name: uptime-high, metric: uptime.seconds, above: 1}\n"


def memory(limit: float) -> str:
    return f"thresholds:\n  - {{name: memory-any, metric: memory.used_percent, above: {limit}}}\n"


def statuses(path: Path) -> list[tuple[str, str]]:
    return [(e["rule"], e["status"]) for e in read_events(path)]


def reload(d: PharosProcess, n: int) -> None:
    """SIGHUP, and wait for the ``n``-th reload to be done."""
    d.signal(signal.SIGHUP)
    assert wait_until(lambda: d.log().count("reload_done") >= n, 20), d.log()


def test_reload_applies_drop_ins_added_changed_and_removed(tmp_path, daemons):
    dropins = tmp_path / "pharos.d"
    dropins.mkdir()
    (dropins / "10-uptime.yaml").write_text(UPTIME)
    d = PharosProcess(tmp_path, main_config(tmp_path))
    daemons.append(d)
    alerts = tmp_path / "alerts.jsonl"
    assert wait_until(lambda: statuses(alerts) == [("uptime-high", "firing")], 20), d.log()

    # Added: its threshold fires; uptime-high, unchanged, neither re-fires nor resolves.
    (dropins / "20-memory.yaml").write_text(memory(0))
    reload(d, 1)
    assert wait_until(lambda: ("memory-any", "firing") in statuses(alerts), 20), d.log()
    r = pharosd("status", "--json", "--socket", str(tmp_path / "run" / "control.sock"))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["config"]["files"] == [
        str(d.config), str(dropins / "10-uptime.yaml"), str(dropins / "20-memory.yaml")]

    # Changed: the old memory-any resolves (its threshold changed), the new one stays OK.
    (dropins / "20-memory.yaml").write_text(memory(100))
    reload(d, 2)
    assert wait_until(lambda: ("memory-any", "resolved") in statuses(alerts), 20), d.log()

    # Broken: the reload fails naming the drop-in, and the running config stays.
    (dropins / "30-bad.yaml").write_text("interval: 1s\n")
    d.signal(signal.SIGHUP)
    assert d.wait_log("reload_failed"), d.log()
    assert f"{dropins / '30-bad.yaml'}:1:1: interval" in d.log()
    (dropins / "30-bad.yaml").unlink()

    # Removed: uptime-high resolves (threshold removed).
    (dropins / "10-uptime.yaml").unlink()
    reload(d, 3)
    assert wait_until(lambda: ("uptime-high", "resolved") in statuses(alerts), 20), d.log()
    wait_until(lambda: False, 1.5)      # a cool's worth of time for a wrong event
    assert statuses(alerts) == [
        ("uptime-high", "firing"),
        ("memory-any", "firing"),
        ("memory-any", "resolved"),
        ("uptime-high", "resolved"),
    ]
    resolved = read_events(alerts)[-1]
    assert "removed" in resolved["summary"], resolved
    assert d.proc.poll() is None
