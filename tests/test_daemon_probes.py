"""Whole-daemon checks of the probes (issue 5): Debian's monitoring-plugins through `pharosd run`.

Each test starts a real ``pharosd run`` (``tests.support.daemon.PharosProcess``)
with exec probes running the real plugins of ``monitoring-plugins-basic``
(check_load, check_disk, check_procs, check_tcp, check_http) against loopback
servers the test starts, and reads the alert events from the file sink:

* a probe's WARNING / CRITICAL fires ``probe:<name>`` at that level with the
  plugin's first line (its text, without perfdata) as summary, and resolves
  with the passing text after a SIGHUP to a passing config, or when the world
  the plugin looks at changes (a process or a port appears);
* UNKNOWN (a bad argument: exit 3), a foreign exit code and death by a signal
  raise the probe's ``unknown`` level with ``check failed: ...``;
* perfdata samples are checked through ordinary thresholds that always breach,
  so the firing event's ``value`` is the sample: load1 against the kernel's
  load averages seen meanwhile, the root file system's bytes against
  ``os.statvfs``, the plugins' ranges and the HTTP size exactly, ``ms`` and
  ``KB`` converted to seconds and bytes;
* a plugin that hangs with children is killed at its timeout with all of
  them, other probes keep running meanwhile, the next run goes on, watchdog
  pings continue and SIGTERM still stops the daemon with 0.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port, require_binary
from tests.support.daemon import PharosProcess, wait_until

pytestmark = pytest.mark.timeout(180)

PLUGINS = Path("/usr/lib/nagios/plugins")
HANG = Path(__file__).parent / "probe_plugins" / "hang.sh"
MIB = 1024 * 1024
EVENT_WAIT = 20.0       # seconds to wait for an expected event (a failure, not a pace)


def plugin(name: str) -> str:
    """Full path of a monitoring-plugins-basic plugin; with CI=true a missing one fails."""
    return require_binary(str(PLUGINS / name))


# -- config and events ---------------------------------------------------------------------


def config(tmp: Path, probes: list[dict[str, Any]],
           thresholds: list[dict[str, Any]] | None = None) -> str:
    """A pharos.yaml (JSON is YAML) with only these probes and thresholds and a file sink."""
    doc = {
        "interval": "250ms",
        "soak": "250ms",
        "cool": "500ms",
        "state_dir": str(tmp / "state"),
        "statistics": [],
        "probes": probes,
        "thresholds": thresholds or [],
        "sinks": [{"name": "file", "kind": "file", "path": str(tmp / "alerts.jsonl")}],
    }
    return json.dumps(doc, indent=1)


def probe(name: str, *argv: str, **keys: Any) -> dict[str, Any]:
    return {"name": name, "kind": "exec", "command": list(argv), **keys}


def always(name: str, metric: str) -> dict[str, Any]:
    """A threshold every value here breaches: its firing event shows the sample's value."""
    return {"name": name, "metric": metric, "below": 1e15}


def events(tmp: Path) -> list[dict[str, Any]]:
    """The complete lines of the file sink (a line being written is left for later)."""
    path = tmp / "alerts.jsonl"
    if not path.exists():
        return []
    text = path.read_text()
    return [json.loads(line) for line in text.split("\n")[:-1] if line.strip()]


def by_rule(tmp: Path) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for e in events(tmp):
        out.setdefault(e["rule"], []).append(e)
    return out


def wait_events(d: PharosProcess, tmp: Path, expected: dict[str, int],
                timeout: float = EVENT_WAIT) -> dict[str, list[dict[str, Any]]]:
    """Wait until each rule has at least ``expected[rule]`` events; all events by rule."""

    def done() -> bool:
        got = by_rule(tmp)
        return all(len(got.get(rule, [])) >= n for rule, n in expected.items())

    assert wait_until(done, timeout), (
        f"expected {expected}, got {json.dumps(by_rule(tmp), indent=1)}\n"
        f"--- daemon log (tail) ---\n{d.log()[-6000:]}")
    return by_rule(tmp)


def statuses(evs: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["status"], e["level"]) for e in evs]


def assert_status_event(e: dict[str, Any], probe_name: str, status: str, level: str) -> None:
    """Shape of an event of a probe's own status threshold."""
    assert e["rule"] == f"probe:{probe_name}"
    assert e["metric"] == f"probe.{probe_name}.state"
    assert (e["status"], e["level"], e["op"]) == (status, level, "above")
    assert e["labels"] == {}
    if status == "firing":
        assert e["value"] == {"warning": 1.0, "critical": 2.0}[level]
        assert e["limit"] == {"warning": 0.5, "critical": 1.5}[level]
    else:
        assert e["value"] == 0.0


# -- the daemon and loopback peers ---------------------------------------------------------


def start(daemons: list[PharosProcess], tmp: Path, text: str) -> PharosProcess:
    d = PharosProcess(tmp, text)
    daemons.append(d)
    assert d.notify.wait_for(lambda m: "READY=1" in m), d.log()
    return d


class TcpServer:
    """Accepts connections on 127.0.0.1:port and closes them at once."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(64)
        self.sock.settimeout(0.1)
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def tcp_servers() -> Iterator[list[TcpServer]]:
    servers: list[TcpServer] = []
    yield servers
    for s in servers:
        s.close()


# The loopback web server writes whole responses itself, so their size is known exactly.
PAGES = {
    "/ok": (200, "OK", b"pharos says hello\n"),
    "/boom": (500, "Internal Server Error", b"it broke\n"),
}
MISSING = (404, "Not Found", b"no such page\n")
OK_BODY = "pharos says hello"


def raw_response(path: str) -> bytes:
    code, reason, body = PAGES.get(path, MISSING)
    head = (f"HTTP/1.0 {code} {reason}\r\nContent-Type: text/plain\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    return head.encode() + body


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.wfile.write(raw_response(self.path))
        self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def web() -> Iterator[int]:
    """A loopback HTTP server (``PAGES``, else 404) in a thread; yields its port."""
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test starts for a plugin to find; killed at the end."""
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for p in procs:
        p.kill()
        p.wait(5)


class LoadWatch:
    """Records every 1-minute load average the kernel shows while it runs.

    The kernel recomputes the load averages every 5 s and shows them with two
    decimals, so polling every 20 ms sees every value a plugin can have read.
    """

    def __init__(self) -> None:
        self.seen: set[float] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while True:
            self.seen.add(os.getloadavg()[0])
            if self._stop.wait(0.02):
                return

    def __enter__(self) -> LoadWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2)
        self.seen.add(os.getloadavg()[0])


def root_usage() -> tuple[int, int]:
    """``(used, total)`` bytes of / as check_disk counts them (blocks minus free blocks)."""
    st = os.statvfs("/")
    return (st.f_blocks - st.f_bfree) * st.f_frsize, st.f_blocks * st.f_frsize


# -- check_load and check_disk: fire, resolve on reload, perfdata values -----------------


LOAD_TEXT = r"LOAD {} - total load average: \d+\.\d\d, \d+\.\d\d, \d+\.\d\d"
DISK_TEXT = r"DISK {} - free space: / \d+MiB \(\d+% inode=[^)]*\);"


def test_check_load_and_check_disk_fire_with_their_text_and_resolve_on_reload(tmp_path,
                                                                              daemons):
    load, disk = plugin("check_load"), plugin("check_disk")
    thresholds = [
        always("load1", "probe.load.load1"),
        {"name": "load1-crit", "metric": "probe.load.load1.crit", "above": 1},
        always("root-used", "probe.disk._"),
        {"name": "root-size", "metric": "probe.disk._.max", "above": 0},
    ]
    # WARNING: any load average above 0 (the daemon and pytest are running);
    # CRITICAL: less than 100% of / free.
    failing = [probe("load", load, "-w", "0,0,0", "-c", "1000,1000,1000"),
               probe("disk", disk, "-w", "100%", "-c", "100%", "-p", "/")]
    passing = [probe("load", load, "-w", "1000,1000,1000", "-c", "2000,2000,2000"),
               probe("disk", disk, "-w", "0", "-c", "0", "-p", "/")]
    used_before, total = root_usage()
    with LoadWatch() as watch:
        d = start(daemons, tmp_path, config(tmp_path, failing, thresholds))
        got = wait_events(d, tmp_path, {"probe:load": 1, "probe:disk": 1, "load1": 1,
                                        "load1-crit": 1, "root-used": 1, "root-size": 1})
    used_after, _ = root_usage()

    (load_fired,) = got["probe:load"]
    assert_status_event(load_fired, "load", "firing", "warning")
    assert re.fullmatch(LOAD_TEXT.format("WARNING"), load_fired["summary"]), load_fired
    (disk_fired,) = got["probe:disk"]
    assert_status_event(disk_fired, "disk", "firing", "critical")
    assert re.fullmatch(DISK_TEXT.format("CRITICAL"), disk_fired["summary"]), disk_fired

    # Perfdata: load1 is one of the 1-minute averages the kernel showed meanwhile
    # (check_load prints them with three decimals of a two-decimal figure).
    load1 = got["load1"][0]["value"]
    assert any(abs(load1 - seen) < 0.006 for seen in watch.seen), (load1, watch.seen)
    assert got["load1-crit"][0]["value"] == 1000.0            # `-c 1000,...`, the upper end
    # check_disk's perfdata is in B, rounded down to whole MiB: used and total of /.
    used = got["root-used"][0]["value"]
    slack = max(256 * MIB, total // 100)     # other writers on the same file system
    assert min(used_before, used_after) - MIB - slack <= used <= max(used_before,
                                                                       used_after) + slack
    assert 0 <= total - got["root-size"][0]["value"] < MIB

    d.reload(config(tmp_path, passing, thresholds))
    got = wait_events(d, tmp_path, {"probe:load": 2, "probe:disk": 2})
    load_ok, disk_ok = got["probe:load"][1], got["probe:disk"][1]
    assert_status_event(load_ok, "load", "resolved", "warning")
    assert re.fullmatch(LOAD_TEXT.format("OK"), load_ok["summary"]), load_ok
    assert load_ok["fingerprint"] == load_fired["fingerprint"]
    assert_status_event(disk_ok, "disk", "resolved", "critical")
    assert re.fullmatch(DISK_TEXT.format("OK"), disk_ok["summary"]), disk_ok
    assert disk_ok["fingerprint"] == disk_fired["fingerprint"]
    # The perfdata thresholds kept their state across the reload: no second event.
    assert all(len(got[r]) == 1 for r in ("load1", "load1-crit", "root-used", "root-size"))


# -- check_procs: the alert follows the processes it counts, escalating and resolving ------


def test_check_procs_alert_follows_the_processes_without_a_reload(tmp_path, daemons,
                                                                  children):
    procs = plugin("check_procs")
    marker = f"{random.randrange(10**6, 10**7)}.5"      # `sleep <marker>`: ours alone
    what = f"with command name 'sleep', args '{marker}'"
    thresholds = [always("procs-count", "probe.procs.procs"),
                  always("procs-crit-low", "probe.procs.procs.crit_low"),
                  always("procs-warn-low", "probe.procs.procs.warn_low")]
    probes = [probe("procs", procs, "-C", "sleep", "-a", marker, "-w", "2:", "-c", "1:")]
    d = start(daemons, tmp_path, config(tmp_path, probes, thresholds))

    got = wait_events(d, tmp_path, {"probe:procs": 1, "procs-count": 1,
                                    "procs-crit-low": 1, "procs-warn-low": 1})
    (fired,) = got["probe:procs"]
    assert_status_event(fired, "procs", "firing", "critical")
    assert fired["summary"] == f"PROCS CRITICAL: 0 processes {what}"
    assert got["procs-count"][0]["value"] == 0.0
    assert got["procs-crit-low"][0]["value"] == 1.0      # `-c 1:`: alert below 1
    assert got["procs-warn-low"][0]["value"] == 2.0      # `-w 2:`

    children.append(subprocess.Popen(["sleep", marker]))
    got = wait_events(d, tmp_path, {"probe:procs": 2})
    lower = got["probe:procs"][1]
    assert_status_event(lower, "procs", "firing", "warning")
    assert lower["previous_level"] == "critical"
    assert lower["summary"] == f"PROCS WARNING: 1 process {what}"

    children.append(subprocess.Popen(["sleep", marker]))
    got = wait_events(d, tmp_path, {"probe:procs": 3})
    resolved = got["probe:procs"][2]
    assert_status_event(resolved, "procs", "resolved", "warning")
    assert resolved["summary"] == f"PROCS OK: 2 processes {what}"
    assert resolved["fingerprint"] == fired["fingerprint"]


# -- check_tcp: a listening and a closed port ----------------------------------------------


def test_check_tcp_closed_port_fires_and_resolves_when_it_opens(tmp_path, daemons,
                                                              tcp_servers):
    tcp = plugin("check_tcp")
    up = TcpServer(free_port())
    tcp_servers.append(up)
    closed = free_port()
    probes = [probe("tcpup", tcp, "-H", "127.0.0.1", "-p", str(up.port), "-w", "1", "-c", "2"),
              probe("tcpdown", tcp, "-H", "127.0.0.1", "-p", str(closed))]
    thresholds = [always("tcp-time", "probe.tcpup.time"),
                  always("tcp-time-warn", "probe.tcpup.time.warn"),
                  always("tcp-time-crit", "probe.tcpup.time.crit"),
                  always("tcp-time-max", "probe.tcpup.time.max")]
    d = start(daemons, tmp_path, config(tmp_path, probes, thresholds))

    got = wait_events(d, tmp_path, {"probe:tcpdown": 1, "tcp-time": 1, "tcp-time-warn": 1,
                                    "tcp-time-crit": 1, "tcp-time-max": 1})
    (fired,) = got["probe:tcpdown"]
    assert_status_event(fired, "tcpdown", "firing", "critical")
    assert fired["summary"] == f"connect to address 127.0.0.1 and port {closed}: " \
                               "Connection refused"
    # `time=0.000123s;1.000000;2.000000;0.000000;10.000000`: seconds stay seconds.
    assert 0 < got["tcp-time"][0]["value"] < 1      # below -w 1, or the probe had warned
    assert got["tcp-time-warn"][0]["value"] == 1.0
    assert got["tcp-time-crit"][0]["value"] == 2.0
    assert got["tcp-time-max"][0]["value"] == 10.0  # check_tcp's default timeout
    assert up.accepted > 0

    tcp_servers.append(TcpServer(closed))
    got = wait_events(d, tmp_path, {"probe:tcpdown": 2})
    resolved = got["probe:tcpdown"][1]
    assert_status_event(resolved, "tcpdown", "resolved", "critical")
    assert re.fullmatch(rf"TCP OK - \d+\.\d{{3}} second response time on 127\.0\.0\.1 "
                        rf"port {closed}", resolved["summary"]), resolved
    assert "probe:tcpup" not in got                 # OK all along: never an alert


# -- check_http: 404, 500, a missing string, a slow answer ---------------------------------


def http_text(status: str, page: str, extra: str = "") -> str:
    code, reason, _ = PAGES.get(page, MISSING)
    size = len(raw_response(page))
    return (rf"HTTP {status}: HTTP/1\.0 {code} {re.escape(reason)} - {extra}"
            rf"{size} bytes in \d+\.\d{{3}} second response time")


def test_check_http_statuses_fire_with_their_text_and_resolve_on_reload(tmp_path, daemons,
                                                                        web):
    http = plugin("check_http")
    base = [http, "-I", "127.0.0.1", "-p", str(web)]
    missing_text = "not in the body"

    def probes(fixed: bool) -> list[dict[str, Any]]:
        return [
            probe("webok", *base, "-u", "/ok", "-s", OK_BODY, "-w", "1", "-c", "2"),
            probe("webmissing", *base, "-u", "/ok" if fixed else "/missing"),
            probe("webboom", *base, "-u", "/ok" if fixed else "/boom"),
            probe("webstring", *base, "-u", "/ok", "-s", OK_BODY if fixed else missing_text),
            # -w 0: any response time is above it.
            probe("webslow", *base, "-u", "/ok", "-w", "5" if fixed else "0"),
        ]

    thresholds = [always("web-size", "probe.webok.size"),
                  always("web-time", "probe.webok.time"),
                  always("web-time-crit", "probe.webok.time.crit"),
                  always("web-time-max", "probe.webok.time.max")]
    d = start(daemons, tmp_path, config(tmp_path, probes(fixed=False), thresholds))
    failing = {"probe:webmissing": ("warning", http_text("WARNING", "/missing")),
               "probe:webboom": ("critical", http_text("CRITICAL", "/boom")),
               "probe:webstring": ("critical", http_text(
                   "CRITICAL", "/ok", re.escape(f"string '{missing_text}' not found on "
                                                f"'http://127.0.0.1:{web}/ok' - "))),
               "probe:webslow": ("warning", http_text("WARNING", "/ok"))}
    got = wait_events(d, tmp_path, {**dict.fromkeys(failing, 1), "web-size": 1,
                                    "web-time": 1, "web-time-crit": 1, "web-time-max": 1})
    for rule, (level, text) in failing.items():
        (fired,) = got[rule]
        assert_status_event(fired, rule.removeprefix("probe:"), "firing", level)
        assert re.fullmatch(text, fired["summary"]), fired
    # `size=NB`: the whole response in bytes, as the server wrote it; `time` in seconds.
    assert got["web-size"][0]["value"] == len(raw_response("/ok"))
    assert 0 < got["web-time"][0]["value"] < 1
    assert got["web-time-crit"][0]["value"] == 2.0
    assert got["web-time-max"][0]["value"] == 10.0

    d.reload(config(tmp_path, probes(fixed=True), thresholds))
    got = wait_events(d, tmp_path, dict.fromkeys(failing, 2))
    for rule, (level, _) in failing.items():
        fired, resolved = got[rule]
        assert_status_event(resolved, rule.removeprefix("probe:"), "resolved", level)
        assert re.fullmatch(http_text("OK", "/ok"), resolved["summary"]), resolved
        assert resolved["fingerprint"] == fired["fingerprint"]
    assert "probe:webok" not in got


# -- UNKNOWN, foreign exit codes, signals; ms and KB in perfdata ---------------------------


def scripted(tmp: Path) -> tuple[str, Path]:
    """A plugin answering what a file says: its first line the exit code, the rest output."""
    script = tmp / "check_scripted"
    script.write_text('#!/bin/sh\n{ read code; cat; } < "$1"\nexit "$code"\n')
    script.chmod(0o755)
    return str(script), tmp / "answer"


def answer(path: Path, code: int, output: str) -> None:
    tmp = path.with_suffix(".new")
    tmp.write_text(f"{code}\n{output}\n")
    tmp.replace(path)


def test_unknown_results_raise_the_configured_level_and_resolve(tmp_path, daemons,
                                                               tcp_servers):
    load, tcp, disk = plugin("check_load"), plugin("check_tcp"), plugin("check_disk")
    server = TcpServer(free_port())
    tcp_servers.append(server)
    port = str(server.port)
    script, answer_file = scripted(tmp_path)
    answer(answer_file, 7, "SVC FLAKY - half broken | t=250ms;500;1000;0; sz=2KB;;;0;4KB")
    killed = tmp_path / "check_killed"
    killed.write_text('#!/bin/sh\necho "about to go"\nkill -KILL $$\n')
    killed.chmod(0o755)

    def probes(fixed: bool) -> list[dict[str, Any]]:
        return [
            # Bad arguments: the plugins answer UNKNOWN (exit 3) with a reason.
            probe("loadbad", load, "-w", "1000,1000,1000" if fixed else "abc",
                  "-c", "2000,2000,2000"),
            probe("tcpbad", tcp, "-H", "127.0.0.1", "-p", port, "-t", "5" if fixed else "x",
                  unknown="critical"),
            probe("diskbad", disk, "-p", "/", unknown="ok"),
            probe("script", script, str(answer_file)),
            probe("killed", str(killed), unknown="critical"),
        ]

    thresholds = [
        {"name": "diskbad-status", "metric": "probe.diskbad.status", "above": 2.5},
        always("script-t", "probe.script.t"),
        always("script-t-crit", "probe.script.t.crit"),
        always("script-sz", "probe.script.sz"),
        always("script-sz-max", "probe.script.sz.max"),
    ]
    d = start(daemons, tmp_path, config(tmp_path, probes(fixed=False), thresholds))
    got = wait_events(d, tmp_path, {"probe:loadbad": 1, "probe:tcpbad": 1, "probe:script": 1,
                                    "probe:killed": 1, "diskbad-status": 1, "script-t": 1,
                                    "script-t-crit": 1, "script-sz": 1, "script-sz-max": 1})
    expected = {
        "loadbad": ("warning", "check failed: Warning threshold must be float or float triplet!"),
        "tcpbad": ("critical",
                   "check failed: check_tcp: Timeout interval must be a positive integer"),
        "script": ("warning", "check failed: exit code 7: SVC FLAKY - half broken"),
        "killed": ("critical", "check failed: killed by signal SIGKILL: about to go"),
    }
    for name, (level, text) in expected.items():
        (fired,) = got[f"probe:{name}"]
        assert_status_event(fired, name, "firing", level)
        assert fired["summary"] == text
    # unknown: ok: the status sample says UNKNOWN (3), yet no alert of its own.
    status = got["diskbad-status"][0]
    assert status["value"] == 3.0
    assert status["summary"].endswith(
        "check failed: DISK UNKNOWN: Must set a threshold value before using -p"), status
    # ms and KB in perfdata arrive as seconds and bytes (1 KB = 1024 B).
    assert got["script-t"][0]["value"] == 0.25
    assert got["script-t-crit"][0]["value"] == 1.0
    assert got["script-sz"][0]["value"] == 2048.0
    assert got["script-sz-max"][0]["value"] == 4096.0

    # The scripted plugin recovers by itself; the others by a reload.
    answer(answer_file, 0, "SVC OK - whole again | t=5ms")
    got = wait_events(d, tmp_path, {"probe:script": 2})
    assert_status_event(got["probe:script"][1], "script", "resolved", "warning")
    assert got["probe:script"][1]["summary"] == "SVC OK - whole again"

    d.reload(config(tmp_path, probes(fixed=True), thresholds))
    got = wait_events(d, tmp_path, {"probe:loadbad": 2, "probe:tcpbad": 2})
    assert_status_event(got["probe:loadbad"][1], "loadbad", "resolved", "warning")
    assert re.fullmatch(LOAD_TEXT.format("OK"), got["probe:loadbad"][1]["summary"])
    assert_status_event(got["probe:tcpbad"][1], "tcpbad", "resolved", "critical")
    assert re.fullmatch(rf"TCP OK - \d+\.\d{{3}} second response time on 127\.0\.0\.1 "
                        rf"port {port}", got["probe:tcpbad"][1]["summary"])
    assert "probe:diskbad" not in got
    assert len(got["probe:killed"]) == 1            # still killed: still firing


# -- a hanging plugin with children --------------------------------------------------------


def proc_state(pid: int) -> str | None:
    """The state letter of ``pid`` (``Z`` for a zombie), None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    return stat[stat.rfind(b")") + 2:].split()[0].decode()


def alive(pid: int) -> bool:
    return proc_state(pid) not in (None, "Z", "X")


def read_pids(path: Path) -> list[int]:
    try:
        return [int(x) for x in path.read_text().split()]
    except (OSError, ValueError):
        return []


@pytest.fixture
def hang_files(tmp_path) -> Iterator[tuple[Path, Path]]:
    """hang.sh's pidfile and flag; whatever a failed test left hanging is killed."""
    pidfile, flag = tmp_path / "hang.pids", tmp_path / "hang.flag"
    yield pidfile, flag
    flag.unlink(missing_ok=True)
    for pid in read_pids(pidfile):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if alive(pid) and (b"hang" in cmdline or b"sleep\x00300" in cmdline):
            os.kill(pid, signal.SIGKILL)


def test_hanging_plugin_is_killed_with_its_children_and_the_daemon_stays_healthy(
        tmp_path, daemons, hang_files):
    require_binary(str(HANG))
    pidfile, flag = hang_files
    flag.touch()
    script, answer_file = scripted(tmp_path)
    answer(answer_file, 2, "BEAT CRITICAL - before")
    probes = [probe("hang", str(HANG), str(pidfile), str(flag), timeout="1s"),
              probe("beat", script, str(answer_file))]
    d = start(daemons, tmp_path, config(tmp_path, probes))

    got = wait_events(d, tmp_path, {"probe:hang": 1, "probe:beat": 1})
    (fired,) = got["probe:hang"]
    assert_status_event(fired, "hang", "firing", "warning")
    assert fired["summary"] == "check failed: timed out after 1s"
    assert (tmp_path / "hang.flag.started").exists()
    pings = d.notify.count("WATCHDOG=1")

    # While the plugin hangs (it runs again at once), other probes still run.
    answer(answer_file, 0, "BEAT OK - after")
    got = wait_events(d, tmp_path, {"probe:beat": 2})
    assert got["probe:beat"][1]["summary"] == "BEAT OK - after"

    # Let it answer: the run in flight is killed at its timeout, the next one passes.
    flag.unlink()
    got = wait_events(d, tmp_path, {"probe:hang": 2})
    resolved = got["probe:hang"][1]
    assert_status_event(resolved, "hang", "resolved", "warning")
    assert resolved["summary"] == "HANG OK - not hanging"
    # The last hanging run's leader (it ignored SIGTERM), its two children and the
    # grandchild are all gone (or zombies left to an init that does not reap).
    pids = read_pids(pidfile)
    assert len(pids) == 4, pids
    assert [p for p in pids if alive(p)] == [], [(p, proc_state(p)) for p in pids]

    assert d.notify.wait_for(lambda m: m.count("WATCHDOG=1") >= pings + 2), d.notify.lines()
    assert "watchdog_withheld" not in d.log()
    d.signal(signal.SIGTERM)
    assert d.proc.wait(5) == 0, d.log()
    assert "STOPPING=1" in d.notify.lines()
