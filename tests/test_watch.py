"""``pharosd watch``: the watcher hub, the control server's stream, and a real daemon.

The hub never blocks the bus and drops a watcher whose queue is full; the
server streams events to a watcher and drops one that does not read; a
real ``pharosd watch`` subprocess prints the events of a real daemon, across
a reload, and its subscription ends when it goes.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest

from pharosd.control.protocol import encode
from pharosd.control.render import render_event
from pharosd.control.server import ControlServer
from pharosd.control.watch import WatchHub, matches
from pharosd.model import AlertEvent
from pharosd.worker import WorkerContext
from tests.support.daemon import PharosProcess, wait_until

pytestmark = pytest.mark.timeout(120)


def event(rule: str = "disk", status: str = "firing", n: int = 0) -> AlertEvent:
    return AlertEvent(status=status, rule=rule, level="warning", metric="disk.used_percent",  # type: ignore[arg-type]
                      labels=(("mount", "/"),), value=93.0 + n, limit=90.0, op="above",
                      host="h", started_at=1_700_000_000.0, at=1_700_000_060.0,
                      summary=f"disk / used {93 + n}% > 90%", fingerprint="f")


def test_hub_filters_and_drops_a_full_watcher_without_blocking():
    hub = WatchHub(max_watchers=2, max_queue=3)
    wakes: list[int] = []
    hub.set_waker(lambda: wakes.append(1))
    fast, slow = hub.add(None), hub.add("probe:*")
    assert fast is not None and slow is not None and hub.add(None) is None
    hub.publish(event("probe:web"))
    data, dropped = hub.take(fast)
    assert json.loads(data)["event"]["rule"] == "probe:web" and not dropped
    got = 0
    for i in range(5):                 # the slow one never takes: dropped at the 4th
        hub.publish(event("probe:web", n=i))
        data, dropped = hub.take(fast)  # the fast one keeps up
        got += data.count(b"\n")
        assert not dropped
    hub.publish(event("disk"))         # not the slow one's rule
    assert hub.dropped == 1
    assert hub.take(slow) == (b"", True)
    assert got + hub.take(fast)[0].count(b"\n") == 6
    assert wakes
    assert matches("probe:web", "probe:*") and not matches("disk", "probe:*")
    assert matches("x", None)


def test_readable_line():
    line = render_event(event().to_dict())
    assert line.split() == ["2023-11-14T22:14:20.000Z", "FIRING", "warning", "disk{mount=/}",
                            "disk", "/", "used", "93%", ">", "90%"]


def test_server_streams_and_drops_a_watcher_that_does_not_read():
    d = tempfile.mkdtemp(prefix="phw", dir="/tmp")
    path = os.path.join(d, "c.sock")
    server = ControlServer(path, lambda: {}, tick=0.05)
    server.watchers.max_queue = 5
    ctx = WorkerContext()
    t = threading.Thread(target=server.run, args=(ctx,), daemon=True)
    t.start()
    try:
        assert wait_until(lambda: os.path.exists(path))
        reader = socket.socket(socket.AF_UNIX)
        reader.connect(path)
        reader.sendall(encode({"cmd": "watch", "rule": "disk"}))
        stream = reader.makefile("rb")
        assert json.loads(stream.readline())["watching"] is True
        stuck = socket.socket(socket.AF_UNIX)
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stuck.connect(path)
        stuck.sendall(encode({"cmd": "watch"}))
        assert wait_until(lambda: server.watchers.count() == 2)
        server.publish(event("disk", n=1))
        got = json.loads(stream.readline())["event"]
        assert got["rule"] == "disk" and got["value"] == 94.0
        # The stuck one never reads: its socket fills, then its queue; it is dropped,
        # and every publish returned at once (they run on this thread).
        for i in range(3000):
            server.publish(event("other", n=i))
        assert wait_until(lambda: server.watchers.dropped == 1)
        assert wait_until(lambda: server.watchers.count() == 1)
        server.publish(event("disk", n=2))
        assert json.loads(stream.readline())["event"]["value"] == 95.0
        stream.close()                     # the client goes: its subscription ends
        reader.close()
        assert wait_until(lambda: server.watchers.count() == 0)
        stuck.close()
    finally:
        ctx.stop()
        t.join(5)


def config(tmp: Path, extra: str = "") -> str:
    return f"""
interval: 250ms
soak: 0s
cool: 0s
state_dir: {tmp}/state
statistics: [memory]
probes:
  - {{name: flag, kind: file, path: {tmp}/flag}}
sinks:
  - {{name: file, kind: file, path: {tmp}/alerts.jsonl}}
{extra}"""


def test_watch_prints_events_across_a_reload(tmp_path, daemons):
    (tmp_path / "flag").write_text("x")
    d = PharosProcess(tmp_path, config(tmp_path))
    daemons.append(d)
    sock = tmp_path / "run" / "control.sock"
    assert wait_until(lambda: sock.exists(), 30), d.log()
    cmd = [sys.executable, "-m", "pharosd", "watch", "--socket", str(sock)]
    as_json = subprocess.Popen([*cmd, "--json", "--rule", "probe:*"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    readable = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_until(lambda: "watcher_added" in d.log() and
                          d.log().count("watcher_added") == 2, 30), d.log()
        (tmp_path / "flag").unlink()
        assert as_json.stdout is not None and readable.stdout is not None
        first = json.loads(as_json.stdout.readline())
        assert (first["rule"], first["status"]) == ("probe:flag", "firing")
        line = readable.stdout.readline().split()
        assert line[1:4] == ["FIRING", "critical", "probe:flag"]
        # A reload (a new threshold) keeps the subscription.
        d.write_config(config(tmp_path, "thresholds:\n  - {name: mem, metric: "
                                        "memory.used_percent, above: 1000}\n"))
        d.signal(signal.SIGHUP)
        assert d.wait_log("reload_done"), d.log()
        (tmp_path / "flag").write_text("back")
        second = json.loads(as_json.stdout.readline())
        assert (second["rule"], second["status"]) == ("probe:flag", "resolved")
        assert second["fingerprint"] == first["fingerprint"]
    finally:
        for p in (as_json, readable):
            p.send_signal(signal.SIGINT)
            p.wait(10)
    assert as_json.returncode == 0 and readable.returncode == 0
    assert wait_until(lambda: d.log().count("watcher_removed") == 2, 30), d.log()
    # Without a daemon: exit 3, as `status`.
    r = subprocess.run([*cmd[:-1], str(tmp_path / "none.sock")], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 3 and "not running" in r.stderr
