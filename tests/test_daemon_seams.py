"""End-to-end: where the alerting features meet, with a real ``pharosd run``.

An exec probe the test controls (a flag file makes it CRITICAL) fires one alert into a file
sink; the test then reads the same facts from every place the daemon shows them (status
JSON over the control socket, `pharosd status`, `/api/v1/status`, the status page) across
reloads and restarts.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from pharosd.control.client import query_status
from pharosd.errors import PharosError
from tests.conftest import free_port
from tests.support.daemon import PharosProcess, read_events, wait_until

pytestmark = pytest.mark.timeout(120)

SCRIPT = """#!/bin/sh
if [ -e "$1/bad" ]; then echo "CRITICAL - flag is up"; exit 2; fi
echo "OK - flag is down"
"""


def config(tmp: Path, port: int, *, sink_extra: str = "", extra: str = "") -> str:
    return f"""
interval: 250ms
soak: 0s
cool: 0s
state_dir: {tmp}/state
statistics: []
probes:
  - {{name: flag, kind: exec, command: [/bin/sh, {tmp}/probe.sh, {tmp}], every: 250ms}}
sinks:
  - {{name: local, kind: file, path: {tmp}/alerts.jsonl{sink_extra}}}
http: {{listen: "127.0.0.1:{port}"}}
{extra}"""


def setup(tmp: Path, bad: bool) -> None:
    (tmp / "probe.sh").write_text(SCRIPT)
    flag(tmp, bad)


def flag(tmp: Path, bad: bool) -> None:
    if bad:
        (tmp / "bad").write_text("1\n")
    else:
        (tmp / "bad").unlink(missing_ok=True)


def sock(tmp: Path) -> str:
    return str(tmp / "run" / "control.sock")


def start(daemons: list[PharosProcess], tmp: Path, text: str,
          env: dict[str, str] | None = None) -> PharosProcess:
    d = PharosProcess(tmp, text, env=env)
    daemons.append(d)
    assert d.notify.wait_for(lambda m: "READY=1" in m), d.log()
    return d


def http_get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as r:
        return bytes(r.read())


def sink_views(tmp: Path, port: int) -> dict[str, tuple[int, int]]:
    """(delivered, backlog) of sink ``local`` as each view shows it."""
    views: dict[str, tuple[int, int]] = {}
    js = next(s for s in query_status(sock(tmp), 5.0)["sinks"] if s["name"] == "local")
    views["control"] = (js["delivered"], js["backlog"])
    api = json.loads(http_get(f"http://127.0.0.1:{port}/api/v1/status"))
    js = next(s for s in api["sinks"] if s["name"] == "local")
    views["api"] = (js["delivered"], js["backlog"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHAROS")}
    text = subprocess.run([sys.executable, "-m", "pharosd", "status", "--socket", sock(tmp)],
                          capture_output=True, text=True, env=env, timeout=30).stdout
    row = re.search(r"^\s+local\s+(\d+)\s+(\d+)\s", text, re.M)
    assert row, text
    views["cli"] = (int(row.group(2)), int(row.group(1)))
    page = http_get(f"http://127.0.0.1:{port}/").decode()
    cells = re.search(r"<strong>local</strong></td><td class=\"num\">(\d+)</td>"
                      r"<td class=\"num\">(\d+)</td>", page)
    assert cells, page
    views["page"] = (int(cells.group(2)), int(cells.group(1)))
    return views


def agreed(tmp: Path, port: int, delivered: int) -> dict[str, tuple[int, int]]:
    """Wait until every view says ``delivered`` and an empty backlog; the views last seen."""
    seen: dict[str, tuple[int, int]] = {}

    def check() -> bool:
        seen.update(sink_views(tmp, port))
        return set(seen.values()) == {(delivered, 0)}

    wait_until(check, 15)
    return seen


def documented_status_keys() -> set[str]:
    """The keys of ``pharosd status --json`` in docs/operations.md's table."""
    doc = (Path(__file__).parent.parent / "docs" / "operations.md").read_text()
    table = doc.split("`pharosd status --json` (and", 1)[1].split("\n\n", 2)[1]
    keys: set[str] = set()
    for row in table.splitlines()[2:]:
        keys |= set(re.findall(r"`(\w+)`", row.split("|")[1]))
    return keys


def test_delivered_counts_agree_everywhere_across_reloads(tmp_path, daemons):
    setup(tmp_path, bad=True)
    port = free_port()
    alerts = tmp_path / "alerts.jsonl"
    d = start(daemons, tmp_path, config(tmp_path, port))
    assert wait_until(lambda: read_events(alerts), 15), d.log()
    assert set(agreed(tmp_path, port, 1).values()) == {(1, 0)}
    state = query_status(sock(tmp_path), 5.0)
    assert set(state) == documented_status_keys()
    assert set(state["notifier"]) == {"held", "filtered", "reminders", "duplicates",
                                      "reconciled"}
    # A reload that changes only what the notifier reads (repeat, filter) keeps the sink.
    d.reload(config(tmp_path, port, sink_extra=", repeat: 1h, filter: {levels: [critical]}"))
    assert set(agreed(tmp_path, port, 1).values()) == {(1, 0)}
    # A reload that rebuilds the sink (a delivery setting changed) keeps its counts.
    d.reload(config(tmp_path, port, sink_extra=", repeat: 1h, fsync: false"))
    assert set(agreed(tmp_path, port, 1).values()) == {(1, 0)}
    flag(tmp_path, bad=False)
    assert wait_until(lambda: len(read_events(alerts)) == 2, 15), d.log()
    assert [e["status"] for e in read_events(alerts)] == ["firing", "resolved"]
    assert set(agreed(tmp_path, port, 2).values()) == {(2, 0)}


def test_lost_alert_state_resolves_what_the_notifier_still_tracks(tmp_path, daemons):
    """alert-state.json lost while pharosd was down, the probe recovered meanwhile: the
    evaluator has no open alert, so the notifier closes its own record (a resolved to
    the sink that had the firing) instead of reminding of it for ever."""
    setup(tmp_path, bad=True)
    port = free_port()
    alerts = tmp_path / "alerts.jsonl"
    text = config(tmp_path, port, sink_extra=", repeat: 1s")
    d = start(daemons, tmp_path, text)
    assert wait_until(lambda: any(e.get("reminder") for e in read_events(alerts)), 15), d.log()
    d.signal(signal.SIGTERM)
    assert d.proc.wait(10) == 0
    state = tmp_path / "state"
    assert json.loads((state / "notifier-state.json").read_text())["alerts"]
    (state / "alert-state.json").unlink()
    flag(tmp_path, bad=False)
    before = read_events(alerts)
    d2 = start(daemons, tmp_path, text)
    assert wait_until(lambda: len(read_events(alerts)) > len(before), 15), d2.log()
    assert d2.wait_log("alert_reconciled"), d2.log()
    closing = read_events(alerts)[len(before)]
    assert closing["status"] == "resolved"
    assert closing["fingerprint"] == before[0]["fingerprint"]
    assert "no longer evaluated" in closing["summary"]
    # The notifier forgot it (saved), so no reminder can follow.
    assert wait_until(lambda: json.loads(
        (state / "notifier-state.json").read_text())["alerts"] == [], 10)
    assert query_status(sock(tmp_path), 5.0)["notifier"]["reconciled"] == 1
    assert read_events(alerts)[len(before):] == [closing]


def test_a_reload_carries_each_rebuilt_sinks_counts_from_its_own_worker(tmp_path, daemons):
    """Two sinks, both rebuilt by one reload: each keeps its own counts (none added to
    the other, none lost)."""
    setup(tmp_path, bad=True)
    port = free_port()

    def two_sinks(sink_extra: str = "") -> str:
        second = f"  - {{name: second, kind: file, path: {tmp_path}/second.jsonl{sink_extra}}}\n"
        text = config(tmp_path, port, sink_extra=sink_extra)
        return text.replace("http:", second + "http:", 1)

    d = start(daemons, tmp_path, two_sinks())
    sock_path = sock(tmp_path)

    def delivered() -> dict[str, int]:
        try:
            return {s["name"]: s["delivered"]
                    for s in query_status(sock_path, 5.0)["sinks"]}
        except PharosError:         # not answering yet
            return {}

    assert wait_until(lambda: delivered() == {"local": 1, "second": 1}, 15), d.log()
    d.reload(two_sinks(sink_extra=", fsync: false"))     # rebuilds both
    assert wait_until(lambda: delivered() == {"local": 1, "second": 1}, 10), \
        (delivered(), d.log())
