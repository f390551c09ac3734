"""End-to-end: a real ``pharosd run`` subprocess, real signals, a real NOTIFY_SOCKET."""

from __future__ import annotations

import json
import signal
import sqlite3
from pathlib import Path

import pytest

from pharosd.control.client import query_status
from pharosd.model import parse_rfc3339
from tests.support.daemon import PharosProcess, read_events, wait_until

pytestmark = pytest.mark.timeout(120)


def config(tmp: Path, limit: float = 1, *, soak: str = "1s", extra: str = "",
           max_restarts: int = 5) -> str:
    return f"""
interval: 250ms
soak: {soak}
cool: 1s
state_dir: {tmp}/state
statistics: [uptime, memory]
thresholds:
  - {{name: uptime-high, metric: uptime.seconds, above: {limit}}}
{extra}
sinks:
  - {{name: file, kind: file, path: {tmp}/alerts.jsonl}}
supervisor: {{max_restarts: {max_restarts}, period: 60s}}
"""


def start(daemons: list[PharosProcess], tmp: Path, text: str, **kw) -> PharosProcess:
    d = PharosProcess(tmp, text, **kw)
    daemons.append(d)
    return d


def stop_line(log: str) -> str:
    """The daemon's own ``daemon_stopped`` line (there is exactly one)."""
    lines = [line for line in log.splitlines() if "event=daemon_stopped" in line]
    assert len(lines) == 1, log
    return lines[0]


def test_ready_fire_resolve_on_reload_and_clean_stop(tmp_path, daemons):
    d = start(daemons, tmp_path, config(tmp_path))
    assert d.notify.wait_for(lambda m: "READY=1" in m), d.log()
    alerts = tmp_path / "alerts.jsonl"
    assert wait_until(lambda: read_events(alerts), 15), d.log()
    fired = read_events(alerts)
    assert [e["status"] for e in fired] == ["firing"]
    event = fired[0]
    assert event["rule"] == "uptime-high" and event["level"] == "warning"
    assert event["metric"] == "uptime.seconds" and event["op"] == "above"
    assert event["limit"] == 1 and event["value"] > 1
    assert event["version"] == 1 and event["id"] and event["fingerprint"]
    assert event["started_at"].endswith("Z") and "uptime" in event["summary"]

    # A reload to a limit no host reaches resolves the alert after the cool.
    d.write_config(config(tmp_path, limit=1e12))
    d.signal(signal.SIGHUP)
    assert d.notify.wait_for(lambda m: "RELOADING=1" in m)
    assert wait_until(lambda: len(read_events(alerts)) >= 2, 15), d.log()
    events = read_events(alerts)
    assert [e["status"] for e in events] == ["firing", "resolved"]
    assert events[1]["fingerprint"] == event["fingerprint"]
    assert events[1]["id"] != event["id"]
    assert d.notify.count("READY=1") >= 2

    d.signal(signal.SIGTERM)
    assert d.proc.wait(5) == 0
    assert "STOPPING=1" in d.notify.lines()


def test_unchanged_threshold_keeps_state_across_reload(tmp_path, daemons):
    d = start(daemons, tmp_path, config(tmp_path))
    alerts = tmp_path / "alerts.jsonl"
    assert wait_until(lambda: read_events(alerts), 15), d.log()
    # Same threshold, one more statistic: the open alert must neither refire nor resolve.
    d.write_config(config(tmp_path).replace("[uptime, memory]", "[uptime, memory, load]"))
    d.signal(signal.SIGHUP)
    assert d.wait_log("reload_done"), d.log()
    assert d.notify.wait_for(lambda m: m.count("READY=1") >= 2)
    wait_until(lambda: False, 2.0)  # a soak and a cool's worth of time for a wrong event
    assert [e["status"] for e in read_events(alerts)] == ["firing"]


def test_broken_reload_keeps_running_alerting_and_pinging(tmp_path, daemons):
    d = start(daemons, tmp_path, config(tmp_path, soak="3s"))
    assert d.notify.wait_for(lambda m: "READY=1" in m), d.log()
    d.write_config(config(tmp_path).replace("above: 1", "abvoe: ninety"))
    d.signal(signal.SIGHUP)
    assert d.wait_log("reload_failed"), d.log()
    assert "did you mean 'above'" in d.log()
    assert d.notify.wait_for(
        lambda m: any(x.startswith("STATUS=reload failed") for x in m)), d.notify.lines()
    pings_after = d.notify.count("WATCHDOG=1")
    # The old config still runs: its threshold fires after its soak, and pings go on.
    alerts = tmp_path / "alerts.jsonl"
    assert wait_until(lambda: read_events(alerts), 15), d.log()
    assert d.notify.wait_for(lambda m: m.count("WATCHDOG=1") >= pings_after + 2)
    assert d.proc.poll() is None


def test_crashed_worker_is_restarted(tmp_path, daemons):
    d = start(daemons, tmp_path, config(tmp_path),
              env={"PHAROSD_TEST_FAULTS": "evaluator:crash-once"})
    assert d.wait_log("worker_crashed"), d.log()
    assert d.wait_log("worker_restarted"), d.log()
    assert "InjectedFault" in d.log()
    alerts = tmp_path / "alerts.jsonl"
    assert wait_until(lambda: read_events(alerts), 15), d.log()
    assert d.proc.poll() is None


def test_worker_that_keeps_crashing_ends_the_process_with_70(tmp_path, daemons):
    d = start(daemons, tmp_path, config(tmp_path, max_restarts=2),
              env={"PHAROSD_TEST_FAULTS": "evaluator:crash-always"})
    assert d.proc.wait(30) == 70, d.log()
    assert "supervisor_gave_up" in d.log()
    assert d.log().count("worker_crashed") == 3
    # The stop that ends in 70 is an error (journal priority 3), not news.
    assert stop_line(d.log()).startswith("<3>") and "level=error" in stop_line(d.log())


def test_hung_worker_stops_watchdog_pings(tmp_path, daemons):
    d = start(daemons, tmp_path, config(tmp_path), env={"PHAROSD_TEST_FAULTS": "control:hang"},
              watchdog_usec=1_000_000)
    assert d.notify.wait_for(lambda m: "READY=1" in m), d.log()
    assert d.wait_log("watchdog_withheld"), d.log()
    withheld_at = d.notify.count("WATCHDOG=1")
    # Once withheld, no further pings: the hung worker never beats again.
    assert d.wait_log("hung_workers", 5)
    wait_until(lambda: False, 2.0)
    assert d.notify.count("WATCHDOG=1") == withheld_at


def test_sigint_also_stops_cleanly(tmp_path, daemons):
    d = start(daemons, tmp_path, config(tmp_path))
    assert d.notify.wait_for(lambda m: "READY=1" in m), d.log()
    d.signal(signal.SIGINT)
    assert d.proc.wait(5) == 0
    assert stop_line(d.log()).startswith("<6>") and "level=info" in stop_line(d.log())


def test_invalid_config_at_start_exits_1_with_positions(tmp_path, daemons):
    d = start(daemons, tmp_path, "interval: fast\nthresholds: 3\n")
    assert d.proc.wait(10) == 1
    out = d.log()
    assert "pharos.yaml:1:11: interval:" in out
    assert "pharos.yaml:2:13: thresholds:" in out


def test_restart_keeps_firing_alert_without_refiring(tmp_path, daemons):
    alerts = tmp_path / "alerts.jsonl"
    d = start(daemons, tmp_path, config(tmp_path))
    assert wait_until(lambda: read_events(alerts), 15), d.log()
    d.signal(signal.SIGTERM)
    assert d.proc.wait(5) == 0
    assert (tmp_path / "state" / "alert-state.json").exists()
    d2 = start(daemons, tmp_path, config(tmp_path))
    assert d2.wait_log("alert_state_restored"), d2.log()
    assert d2.notify.wait_for(lambda m: "READY=1" in m)
    wait_until(lambda: False, 3.0)  # three soaks' worth: a re-fire would show by now
    assert [e["status"] for e in read_events(alerts)] == ["firing"]


def _gone(pid: int) -> bool:
    """Dead or a zombie (PID 1 here may not reap orphans)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_stop_kills_a_plugin_still_running(tmp_path, daemons):
    pidfile = tmp_path / "plugin.pid"
    # $$ is the config's escape for a literal $, so the shell sees $$.
    probe = (f"probes:\n  - {{name: slow, kind: exec, timeout: 60s, command: "
             f"[/bin/sh, -c, 'echo $$$$ > {pidfile}; sleep 300; echo OK']}}\n")
    d = start(daemons, tmp_path, config(tmp_path, extra=probe))
    assert wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), 15), d.log()
    pid = int(pidfile.read_text())
    assert not _gone(pid)
    d.signal(signal.SIGTERM)
    assert d.proc.wait(5) == 0
    assert wait_until(lambda: _gone(pid), 5), "plugin outlived the daemon"
    assert "plugin_killed_on_stop" in d.log()


def _status(tmp: Path) -> dict:
    try:
        return query_status(str(tmp / "run" / "control.sock"), 5.0)
    except Exception:
        return {}


@pytest.mark.parametrize("point", ["journaled", "published"])
def test_kill_9_around_publishing_a_firing_neither_loses_nor_refires(tmp_path, daemons, point):
    """SIGKILL at the exact point (fault injection): after the evaluator saved the firing
    with its event, before it published it (``journaled``: the event reached no outbox);
    after the sink's outbox took it, before the state was saved again (``published``).
    The file sink cannot write in the first run (its directory is a file), so what the
    outbox holds at the kill is known."""
    blocked = tmp_path / "blocked"
    blocked.write_text("not a directory\n")
    alerts = blocked / "alerts.jsonl"
    text = config(tmp_path).replace(f"{tmp_path}/alerts.jsonl", str(alerts))
    state = tmp_path / "state" / "alert-state.json"
    d = start(daemons, tmp_path, text, env={"PHAROSD_TEST_FAULTS": f"evaluator:kill-at-{point}"})
    assert d.proc.wait(20) == -signal.SIGKILL, d.log()
    journal = json.loads(state.read_text())["events"]
    assert [e["status"] for e in journal] == ["firing"]
    with sqlite3.connect(tmp_path / "state" / "outbox" / "file.db") as db:
        queued = [r[0] for r in db.execute("SELECT id FROM events")]
    assert queued == ([] if point == "journaled" else [journal[0]["id"]])
    blocked.unlink()
    d2 = start(daemons, tmp_path, text)
    assert d2.wait_log("alert_state_restored"), d2.log()

    def settled() -> bool:
        st = _status(tmp_path)
        alert = next((a for a in st.get("alerts") or [] if a["rule"] == "uptime-high"), None)
        sink = next((s for s in st.get("sinks") or [] if s["name"] == "file"), None)
        return (alert is not None and alert["status"] == "firing" and sink is not None
                and sink["backlog"] == 0 and sink["delivered"] >= 1
                and st["notifier"]["duplicates"] == (point == "published"))

    assert wait_until(settled, 20), d2.log()
    # Once firing with the original start, the machine cannot fire again; the one event
    # in the file is the one saved in the journal (same id), delivered exactly once.
    events = read_events(alerts)
    assert [(e["status"], e["id"]) for e in events] == [("firing", journal[0]["id"])]
    alert = next(a for a in _status(tmp_path)["alerts"] if a["rule"] == "uptime-high")
    assert abs(alert["since"] - parse_rfc3339(events[0]["started_at"])) < 0.01
    assert "events" not in json.loads(state.read_text())
