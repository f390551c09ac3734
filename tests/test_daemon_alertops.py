"""Alert operations end to end, with a real ``pharosd run``: routing to two file sinks with
different filters, a reminder cadence, a silence added before its alert fires and kept
across a restart, a maintenance window open now, a metric that vanishes and returns, and
a trend that crosses its limit ahead.

The metrics are an exec probe's perfdata, from a small shell script that reads files the
test writes: ``value`` (a number, or no ``x`` at all when the file is missing) and the
wall clock (``t``, rising one per second: a trend).
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from pharosd.control.client import query_status
from tests.support.daemon import PharosProcess, read_events, wait_until

pytestmark = pytest.mark.timeout(120)

SCRIPT = """#!/bin/sh
x=""
if [ -f "$1/value" ]; then x=" x=$(cat "$1/value")"; fi
echo "OK | t=$(date +%s.%N)$x"
"""


def setup(tmp: Path, value: float | None) -> None:
    (tmp / "probe.sh").write_text(SCRIPT)
    set_value(tmp, value)


def set_value(tmp: Path, value: float | None) -> None:
    path = tmp / "value"
    if value is None:
        path.unlink(missing_ok=True)
    else:
        new = tmp / "value.new"
        new.write_text(f"{value}\n")
        new.replace(path)


def config(tmp: Path, thresholds: str, sinks: str, extra: str = "") -> str:
    return f"""
interval: 250ms
soak: 0s
cool: 0s
state_dir: {tmp}/state
statistics: []
probes:
  - {{name: v, kind: exec, command: [/bin/sh, {tmp}/probe.sh, {tmp}], every: 250ms}}
thresholds:
{thresholds}
sinks:
{sinks}
{extra}
"""


def start(daemons: list[PharosProcess], tmp: Path, text: str,
          env: dict[str, str] | None = None) -> PharosProcess:
    d = PharosProcess(tmp, text, env={"TZ": "UTC", **(env or {})})
    daemons.append(d)
    assert d.notify.wait_for(lambda m: "READY=1" in m), d.log()
    return d


def sock(tmp: Path) -> str:
    return str(tmp / "run" / "control.sock")


def status(tmp: Path) -> dict[str, Any]:
    return query_status(sock(tmp), 5.0)


def alert(tmp: Path, rule: str) -> dict[str, Any] | None:
    try:
        alerts = status(tmp).get("alerts") or []
    except Exception:
        return None
    return next((a for a in alerts if a["rule"] == rule), None)


def cli(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHAROS")}
    return subprocess.run([sys.executable, "-m", "pharosd", *args, "--socket", sock(tmp)],
                          capture_output=True, text=True, env=env, timeout=30)


def rules_of(events: list[dict[str, Any]]) -> list[tuple[str, str, bool]]:
    return [(e["status"], e["level"], e.get("reminder", False)) for e in events]


def test_two_sinks_with_filters_and_a_reminder_cadence(tmp_path, daemons):
    setup(tmp_path, 15)
    all_, crit = tmp_path / "all.jsonl", tmp_path / "crit.jsonl"
    d = start(daemons, tmp_path, config(
        tmp_path,
        "  - {name: x-high, metric: probe.v.x, above: {warning: 10, critical: 20}}",
        f"  - {{name: all, kind: file, path: {all_}, repeat: 1s}}\n"
        f"  - {{name: crit, kind: file, path: {crit}, filter: {{levels: [critical]}}}}"))
    # Warning: the unfiltered sink gets it and is reminded every second.
    assert wait_until(lambda: len(read_events(all_)) >= 4, 20), d.log()
    first, *reminders = read_events(all_)[:4]
    assert (first["status"], first["level"], first.get("reminder")) == ("firing", "warning",
                                                                        None)
    assert all(r["reminder"] is True and r["status"] == "firing" for r in reminders)
    assert {r["fingerprint"] for r in reminders} == {first["fingerprint"]}
    assert len({first["id"], *(r["id"] for r in reminders)}) == 4
    ats = [datetime.fromisoformat(e["at"].replace("Z", "+00:00")).timestamp()
           for e in [first, *reminders]]
    assert all(b - a >= 0.99 for a, b in itertools.pairwise(ats)), ats
    assert read_events(crit) == []

    # Critical: the escalation reaches the critical-only sink too ...
    set_value(tmp_path, 25)
    assert wait_until(lambda: read_events(crit), 20), d.log()
    assert rules_of(read_events(crit)) == [("firing", "critical", False)]
    # ... which then gets the de-escalation and the resolved, whatever their level.
    set_value(tmp_path, 15)
    assert wait_until(lambda: len(read_events(crit)) >= 2, 20), d.log()
    set_value(tmp_path, 1)
    assert wait_until(lambda: len(read_events(crit)) >= 3, 20), d.log()
    assert rules_of(read_events(crit)) == [("firing", "critical", False),
                                           ("firing", "warning", False),
                                           ("resolved", "warning", False)]
    assert wait_until(lambda: read_events(all_)[-1]["status"] == "resolved", 10)
    plain = [e for e in read_events(all_) if not e.get("reminder")]
    assert rules_of(plain) == [("firing", "warning", False), ("firing", "critical", False),
                               ("firing", "warning", False), ("resolved", "warning", False)]


def test_silence_before_firing_kept_across_restart_then_expired(tmp_path, daemons):
    setup(tmp_path, 1)
    alerts = tmp_path / "alerts.jsonl"
    text = config(tmp_path, "  - {name: x-high, metric: probe.v.x, above: 10}",
                  f"  - {{name: file, kind: file, path: {alerts}}}")
    d = start(daemons, tmp_path, text)
    added = cli(tmp_path, "silence", "add", "--rule", "x-*", "--label", "missing=*",
                "--for", "1h")
    assert added.returncode == 0, added.stderr
    added = cli(tmp_path, "silence", "add", "--rule", "x-*", "--for", "1h",
                "--comment", "planned work")
    assert added.returncode == 0, added.stderr
    sid = added.stdout.strip()
    assert len(sid) == 32 and "\n" not in sid
    assert d.wait_log("silence_added"), d.log()
    assert f"peer_uid={os.geteuid()}" in d.log()

    set_value(tmp_path, 50)
    held = wait_until(lambda: (a := alert(tmp_path, "x-high")) and a.get("silenced_by"), 20)
    assert held == {"kind": "silence", "id": sid, "comment": "planned work",
                    "until": held["until"]}, d.log()
    shown = cli(tmp_path, "status")
    assert f"silence {sid[:12]}: planned work" in shown.stdout, shown.stdout
    assert "Silences (2)" in shown.stdout

    # A restart keeps the silence (and the alert, still held).
    d.stop()
    d2 = start(daemons, tmp_path, text)
    assert d2.wait_log("silences_restored"), d2.log()
    listed = cli(tmp_path, "silence", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert sid in [s["id"] for s in json.loads(listed.stdout)]
    assert wait_until(lambda: (a := alert(tmp_path, "x-high")) and a.get("silenced_by"), 20)
    assert read_events(alerts) == []

    # Expired (by a prefix of its id): the firing event is delivered now.
    expired = cli(tmp_path, "silence", "expire", sid[:8])
    assert expired.returncode == 0 and expired.stdout.strip() == sid, expired.stderr
    assert wait_until(lambda: read_events(alerts), 20), d2.log()
    assert [e["status"] for e in read_events(alerts)] == ["firing"]
    assert "silence_expired" in d2.log()
    again = cli(tmp_path, "silence", "expire", sid)
    assert again.returncode == 1 and "already expired" in again.stderr


def test_silence_commands_without_a_daemon_and_with_bad_arguments(tmp_path):
    r = cli(tmp_path, "silence", "list")
    assert r.returncode == 3 and "not running" in r.stderr
    r = cli(tmp_path, "silence", "add", "--for", "1h")
    assert r.returncode == 1 and "--rule or --label" in r.stderr
    r = cli(tmp_path, "silence", "add", "--rule", "x", "--for", "soon")
    assert r.returncode == 1 and "--for: expected a duration" in r.stderr
    r = cli(tmp_path, "silence", "add", "--rule", "x", "--until", "yesterday")
    assert r.returncode == 1 and "--until: expected" in r.stderr
    r = cli(tmp_path, "silence", "add", "--rule", "x", "--label", "mount", "--for", "1h")
    assert r.returncode == 1 and "KEY=GLOB" in r.stderr


def test_maintenance_window_open_now_holds_matching_alerts_until_a_reload_ends_it(
        tmp_path, daemons):
    setup(tmp_path, 50)
    alerts = tmp_path / "alerts.jsonl"
    # Opened at the start of this minute, local time (the daemon runs with TZ=UTC).
    start_at = datetime.fromtimestamp(time.time(), UTC).strftime("%H:%M")
    window = (f"maintenance:\n  - {{name: patching, start: '{start_at}', duration: 1h, "
              "rules: [x-held]}")
    ths = ("  - {name: x-held, metric: probe.v.x, above: 10}\n"
           "  - {name: x-other, metric: probe.v.x, above: 10}")
    sinks = f"  - {{name: file, kind: file, path: {alerts}}}"
    d = start(daemons, tmp_path, config(tmp_path, ths, sinks, window))
    assert wait_until(lambda: read_events(alerts), 20), d.log()
    held = wait_until(lambda: (a := alert(tmp_path, "x-held")) and a.get("silenced_by"), 20)
    assert held["kind"] == "maintenance" and held["id"] == "patching", d.log()
    assert "for 1h" in held["comment"]
    assert [w["name"] for w in status(tmp_path)["maintenance"]] == ["patching"]
    assert "Maintenance windows in effect (1)" in cli(tmp_path, "status").stdout
    assert [e["rule"] for e in read_events(alerts)] == ["x-other"]
    # A reload without the window releases the held firing event.
    d.write_config(config(tmp_path, ths, sinks))
    d.signal(signal.SIGHUP)
    assert wait_until(lambda: len(read_events(alerts)) >= 2, 20), d.log()
    assert [e["rule"] for e in read_events(alerts)] == ["x-other", "x-held"]
    assert status(tmp_path)["maintenance"] == []


def test_absent_metric_and_a_trend_crossing_its_limit_ahead(tmp_path, daemons):
    setup(tmp_path, None)
    alerts = tmp_path / "alerts.jsonl"
    limit = time.time() + 30          # t is wall seconds: it reaches the limit in 30 s
    d = start(daemons, tmp_path, config(
        tmp_path,
        "  - {name: x-missing, metric: probe.v.x, absent: 1s}\n"
        f"  - {{name: t-soon, metric: probe.v.t, above: {limit:.0f}, "
        "window: {over: 2s, mode: predict, ahead: 1m}}",
        f"  - {{name: file, kind: file, path: {alerts}}}"))

    def of(rule: str) -> list[dict[str, Any]]:
        return [e for e in read_events(alerts) if e["rule"] == rule]

    # The trend fires well before the value itself gets there.
    assert wait_until(lambda: of("t-soon"), 20), d.log()
    (trend,) = of("t-soon")
    assert trend["status"] == "firing" and trend["value"] > trend["limit"]
    assert time.time() < limit
    assert "in 1m at the trend over 2s" in trend["summary"]

    # Nothing reported x since start: the rule as a whole has no data ...
    (whole,) = of("x-missing")
    assert whole["status"] == "firing" and whole["labels"] == {}
    assert whole["summary"].startswith("no data from probe.v.x for ")
    # ... until x arrives; then x vanishes (fires) and returns (resolves).
    set_value(tmp_path, 5)
    assert wait_until(lambda: len(of("x-missing")) >= 2, 20), d.log()
    set_value(tmp_path, None)
    assert wait_until(lambda: len(of("x-missing")) >= 3, 20), d.log()
    set_value(tmp_path, 6)
    assert wait_until(lambda: len(of("x-missing")) >= 4, 20), d.log()
    events = of("x-missing")
    assert [e["status"] for e in events] == ["firing", "resolved", "firing", "resolved"]
    assert events[3]["summary"].startswith("probe.v.x reports again, after ")
