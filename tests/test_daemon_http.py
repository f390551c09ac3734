"""End-to-end: a real ``pharosd run`` with its HTTP listener, and real clients.

Scraped by a real Prometheus 2.42 (series queried back through its API),
checked by ``promtool check metrics``, the status page rendered by a real
headless chromium, attacked by slow, oversized and very many connections
while an alert has to arrive, reloaded with a changed and a removed
listener, and started on a port already in use.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from peers.prometheus import Prometheus

from pharosd.model import parse_rfc3339
from tests.conftest import free_port, require_binary
from tests.support.daemon import PharosProcess, read_events, wait_until

pytestmark = pytest.mark.timeout(180)

HOSTILE = "CHECK OK - <b>bold</b> & <script>document.title='pwned'</script>"


def config(tmp: Path, port: int, *, extra: str = "", timeout: str = "10s") -> str:
    return f"""
interval: 250ms
soak: 0s
cool: 0s
state_dir: {tmp}/state
statistics: [cpu, memory, load, disk, uptime]
probes:
  - {{name: flag, kind: file, path: {tmp}/flag}}
  - name: hostile
    kind: exec
    command: [/bin/sh, -c, "echo \\"{HOSTILE}\\""]
    every: 1s
thresholds:
  - {{name: memory-used, metric: memory.used_percent, above: 0.001, level: info}}
sinks:
  - {{name: file, kind: file, path: {tmp}/alerts.jsonl}}
http: {{listen: "127.0.0.1:{port}", timeout: {timeout}}}
{extra}"""


def get(url: str, timeout: float = 5.0, headers: dict[str, str] | None = None
        ) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def serving(url: str) -> bool:
    try:
        return get(url, timeout=1)[0] == 200
    except OSError:
        return False


def start(tmp: Path, daemons: list[PharosProcess], port: int | None = None,
          **kw: str) -> tuple[PharosProcess, str]:
    """A daemon with the listener on ``port`` (default: a free one), once ready."""
    port = port or free_port()
    (tmp / "flag").write_text("here\n")
    d = PharosProcess(tmp, config(tmp, port, **kw))
    daemons.append(d)
    base = f"http://127.0.0.1:{port}"
    assert wait_until(lambda: serving(base + "/-/ready"), 30), d.log()
    return d, base


def test_prometheus_scrapes_and_promtool_finds_no_problem(tmp_path, daemons):
    d, base = start(tmp_path, daemons)
    target = base.removeprefix("http://")
    # The output a scraper sees passes promtool's lint.
    status, headers, body = get(base + "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    promtool = require_binary("promtool")
    check = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True,
                           timeout=30)
    assert check.returncode == 0 and not check.stdout.strip() and not check.stderr.strip(), \
        (check.stdout + check.stderr).decode()
    text = body.decode()
    assert '# TYPE pharos_memory_used_percent gauge' in text
    assert 'pharos_alert{level="info",rule="memory-used",state="firing"} 1' in text
    assert "pharos_probe_flag_status 0" in text
    assert "# HELP pharos_pharosd_rss_bytes" in text
    with Prometheus(tmp_path / "prom", scrape=[target]) as prom:
        got = wait_until(lambda: prom.query("pharos_memory_used_percent"), 30)
        assert got, prom.log()
        labels = got[0]["metric"]
        assert labels["job"] == "pharosd" and labels["instance"] == target
        assert 0 < float(got[0]["value"][1]) <= 100
        alerts = wait_until(lambda: prom.query('pharos_alert{state="firing"}'), 30)
        assert [a["metric"]["rule"] for a in alerts] == ["memory-used"]
        up = prom.query("up")
        assert [u["value"][1] for u in up] == ["1"], up
        # The scrape was healthy: no sample Prometheus had to drop.
        bad = prom.query("scrape_samples_post_metric_relabeling - scrape_samples_scraped")
        assert all(float(b["value"][1]) == 0 for b in bad)
    assert d.proc.poll() is None


def test_health_ready_and_json_api(tmp_path, daemons):
    d, base = start(tmp_path, daemons)
    assert get(base + "/-/healthy")[:1] == (200,)
    assert get(base + "/-/ready")[:1] == (200,)
    status, headers, body = get(base + "/api/v1/status")
    assert status == 200 and headers["Content-Type"] == "application/json"
    state = json.loads(body)
    cli = subprocess.run([sys.executable, "-m", "pharosd", "status", "--json", "--socket",
                          str(tmp_path / "run" / "control.sock")], capture_output=True,
                         timeout=30, text=True)
    assert cli.returncode == 0, cli.stderr
    from_cli = json.loads(cli.stdout)
    assert set(state) == set(from_cli)
    assert state["pid"] == from_cli["pid"] == d.proc.pid
    assert state["http"]["listen"] == base.removeprefix("http://")
    status, _, body = get(base + "/api/v1/alerts")
    rules = {a["rule"]: a for a in json.loads(body)["alerts"]}
    assert rules["memory-used"]["status"] == "firing"
    assert rules["memory-used"]["summary"].startswith("memory used ")
    assert get(base + "/nope")[0] == 404
    # HEAD: the headers of GET, no body.
    req = urllib.request.Request(base + "/metrics", method="HEAD")
    with urllib.request.urlopen(req, timeout=5) as r:
        assert r.status == 200 and int(r.headers["Content-Length"]) > 1000 and r.read() == b""


def test_status_page_in_a_real_browser(tmp_path, daemons):
    chromium = require_binary("chromium", "chromium-browser")
    _d, base = start(tmp_path, daemons)
    assert wait_until(lambda: b"hostile" in get(base + "/")[2], 30)
    dom = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", f"--user-data-dir={tmp_path / 'chromium'}", "--dump-dom",
         base + "/"], capture_output=True, text=True, timeout=90)
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    host = json.loads(get(base + "/api/v1/status")[2])["host"]
    assert f"<title>pharosd on {host}: 1 firing</title>" in html
    assert "Alerts: 1 firing, 0 pending" in html
    assert "memory-used" in html and "memory used " in html
    # Plugin output is shown as text: no element, no script ran.
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; &lt;script&gt;" in html
    assert "<b>bold</b>" not in html and "pwned" not in html.split("</title>")[0]
    for section in ("Probes", "Sinks", "Uplink", "Workers"):
        assert f"<h2>{section}</h2>" in html
    assert '<meta http-equiv="refresh" content="10">' in html
    assert "No uplink configured." in html


def test_auth_and_tls(tmp_path, daemons):
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "server.pem"))
    (tmp_path / "password").write_text("s3cret\n")
    port = free_port()
    extra = (f"  tls: {{cert_file: {tmp_path}/server.pem, key_file: {tmp_path}/server.pem}}\n"
             f"  basic_auth: {{username: prom, password_file: {tmp_path}/password}}\n")
    (tmp_path / "flag").write_text("here\n")
    text = config(tmp_path, port).replace(f'http: {{listen: "127.0.0.1:{port}", timeout: 10s}}',
                                           f'http:\n  listen: "127.0.0.1:{port}"\n{extra}')
    d = PharosProcess(tmp_path, text)
    daemons.append(d)
    import ssl

    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    base = f"https://127.0.0.1:{port}"

    def fetch(auth: str | None) -> int:
        req = urllib.request.Request(base + "/-/healthy",
                                     headers={"Authorization": auth} if auth else {})
        try:
            with urllib.request.urlopen(req, timeout=5, context=ctx) as r:
                return int(r.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except OSError:
            return 0

    import base64

    good = "Basic " + base64.b64encode(b"prom:s3cret").decode()
    assert wait_until(lambda: fetch(good) == 200, 30), d.log()
    assert fetch(None) == 401
    assert fetch("Basic " + base64.b64encode(b"prom:wrong").decode()) == 401
    # Plain HTTP on the TLS port gets nothing useful, and the daemon carries on.
    with contextlib.suppress(OSError):
        get(f"http://127.0.0.1:{port}/-/healthy", timeout=2)
    assert fetch(good) == 200


def _abuse(port: int, stop: threading.Event, opened: list[socket.socket]) -> None:
    """1000 connections at once; a slowloris trickle; an oversized head."""
    for _ in range(1000):
        with contextlib.suppress(OSError):
            s = socket.create_connection(("127.0.0.1", port), timeout=2)
            opened.append(s)
    while not stop.is_set():
        for s in list(opened[:50]):
            with contextlib.suppress(OSError):
                s.send(b"G")                 # slowloris: one byte now and then
        with contextlib.suppress(OSError), \
                socket.create_connection(("127.0.0.1", port), timeout=2) as big:
            big.sendall(b"GET /metrics HTTP/1.1\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
            big.recv(100)
        stop.wait(0.2)


def test_hostile_clients_do_not_delay_alerts(tmp_path, daemons):
    d, base = start(tmp_path, daemons, timeout="2s")
    port = int(base.rsplit(":", 1)[1])
    events = tmp_path / "alerts.jsonl"
    stop = threading.Event()
    opened: list[socket.socket] = []
    attacker = threading.Thread(target=_abuse, args=(port, stop, opened), daemon=True)
    attacker.start()
    try:
        assert wait_until(lambda: len(opened) >= 900, 60)
        # Meanwhile the flag file goes: the probe's alert must fire as usual.
        (tmp_path / "flag").unlink()
        removed = time.time()
        fired = wait_until(lambda: [e for e in read_events(events)
                                    if e["rule"] == "probe:flag" and e["status"] == "firing"],
                           30)
        assert fired, d.log()[-3000:]
        # A short request gets an answer or a 503, never a hang.
        status, _, body = get(f"{base}/-/healthy", timeout=15)
        assert status in (200, 503), body
        # The slow clients are cut off at their deadline.
        assert wait_until(lambda: _status(base).get("timeouts", 0) > 0, 30)
    finally:
        stop.set()
        attacker.join(10)
        for s in opened:
            s.close()
    assert d.proc.poll() is None
    # Afterwards everything answers again, and the listener counted what it refused.
    assert wait_until(lambda: serving(base + "/-/healthy"), 30)
    state = json.loads(get(base + "/api/v1/status")[2])
    http = state["http"]
    assert http["refused"] > 0 and http["timeouts"] > 0
    assert http["requests"] > 0
    collector = state["collector"]
    assert all(c["missed"] == 0 for c in collector.values()), collector
    # The alert is the one the removal caused, not an earlier one.
    assert parse_rfc3339(fired[0]["started_at"]) >= removed - 1
    # An oversized head gets its 431 (also when it is not refused as one too many).
    with socket.create_connection(("127.0.0.1", port), timeout=10) as big:
        big.sendall(b"GET /metrics HTTP/1.1\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
        assert big.recv(100).startswith(b"HTTP/1.1 431 ")
    metrics = get(base + "/metrics")[2].decode()
    assert 'pharos_pharosd_http_requests_total{code="431"}' in metrics


def _status(base: str) -> dict:
    try:
        return dict(json.loads(get(base + "/api/v1/status", timeout=3)[2])["http"])
    except (OSError, ValueError):
        return {}


def test_reload_moves_then_removes_the_listener(tmp_path, daemons):
    d, base = start(tmp_path, daemons)
    new_port = free_port()
    d.write_config(config(tmp_path, new_port))
    d.signal(signal.SIGHUP)
    new = f"http://127.0.0.1:{new_port}"
    assert wait_until(lambda: serving(new + "/-/healthy"), 30), d.log()
    assert wait_until(lambda: not serving(base + "/-/healthy"), 10)
    # Removed: nothing listens any more; the daemon runs on.
    d.write_config(config(tmp_path, new_port).replace(
        f'http: {{listen: "127.0.0.1:{new_port}", timeout: 10s}}', ""))
    d.signal(signal.SIGHUP)
    assert wait_until(lambda: not serving(new + "/-/healthy"), 30), d.log()
    assert d.wait_log("reload_done") and d.proc.poll() is None


def test_port_in_use_is_a_config_error_at_start_and_on_reload(tmp_path, daemons):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    taken = busy.getsockname()[1]
    try:
        (tmp_path / "flag").write_text("x")
        text = config(tmp_path, taken)
        path = tmp_path / "start.yaml"
        path.write_text(text)
        line = next(i for i, ln in enumerate(text.splitlines(), 1) if ln.startswith("http:"))
        r = subprocess.run([sys.executable, "-m", "pharosd", "run", "-c", str(path)],
                           capture_output=True, text=True, timeout=60,
                           env={**os.environ, "RUNTIME_DIRECTORY": str(tmp_path / "run0")})
        assert r.returncode == 1
        assert f"{path}:{line}:" in r.stdout + r.stderr
        assert f"http.listen: cannot listen on 127.0.0.1:{taken}: already in use" in \
            r.stdout + r.stderr
        # Running on a free port, a reload onto the busy one keeps the old listener.
        d, base = start(tmp_path, daemons)
        d.write_config(text)
        d.signal(signal.SIGHUP)
        assert d.wait_log("reload_failed"), d.log()
        assert "already in use" in d.log()
        assert serving(base + "/-/healthy")
        state = json.loads(get(base + "/api/v1/status")[2])
        assert state["reload"]["ok"] is False
        assert any("http.listen" in e for e in state["reload"]["errors"])
    finally:
        busy.close()
