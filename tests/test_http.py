"""The HTTP listener's pure parts, and its worker in-process over real sockets.

Exposition (escaping, types promtool accepts, merged families, alerts),
request parsing and its limits, the latest-value store on a fake clock,
the page's escaping, basic auth, the config's positioned errors, and the
selector worker: keep-alive, pipelining, the connection bound.
"""

from __future__ import annotations

import base64
import math
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from pharosd.config import parse_config
from pharosd.errors import ConfigError
from pharosd.http.config import HttpConfig, split_listen
from pharosd.http.exposition import (
    Exposition,
    Family,
    alert_family,
    format_value,
    kind_of,
    sample_families,
    silenced_family,
)
from pharosd.http.page import probes_from, render_page
from pharosd.http.protocol import HttpError, head_end, parse_head
from pharosd.http.routes import credentials_ok
from pharosd.http.store import LatestValues
from pharosd.http.worker import HttpWorker, ListenerError, exposure_warning, open_listener
from pharosd.model import Sample
from pharosd.worker import WorkerContext
from tests.conftest import free_port, require_binary

# -- exposition ------------------------------------------------------------------------


def render(*families: Family) -> str:
    return Exposition().render(families).decode()


def test_values_and_escaping():
    assert [format_value(v) for v in (0.0, -0.0, 3.0, 2.5, math.nan, math.inf, -math.inf,
                                      1e20)] == ["0", "0", "3", "2.5", "NaN", "+Inf", "-Inf",
                                                 "1e+20"]
    text = render(Family("odd.value", "gauge", 'help \\ with\nnewline "quoted"',
                         [((("path", 'C:\\x "y"\nz'), ("x-label", "ü"), ("é", "gone")),
                           1.0)]))
    assert text.splitlines() == [
        '# HELP pharos_odd_value help \\\\ with\\nnewline "quoted"',
        "# TYPE pharos_odd_value gauge",
        'pharos_odd_value{_="gone",path="C:\\\\x \\"y\\"\\nz",x_label="ü"} 1',
    ]


def test_names_labels_and_merging_follow_remote_write():
    text = render(
        Family("probe.a-b.status", "gauge", "first", [((("x", "1"),), 1.0)]),
        Family("probe.a_b.status", "gauge", "second", [((("x", "1"),), 2.0),
                                                       ((("x", "2"),), 3.0)]),
        Family("m", "gauge", "h", [((("a", ""), ("__hidden", "v"), ("b", "1")), 4.0)]))
    lines = text.splitlines()
    # One family per wire name; the first HELP; a repeated label set written once.
    assert lines.count("# TYPE pharos_probe_a_b_status gauge") == 1
    assert "# HELP pharos_probe_a_b_status first" in lines
    assert 'pharos_probe_a_b_status{x="1"} 1' in lines
    assert 'pharos_probe_a_b_status{x="1"} 2' not in lines
    assert 'pharos_probe_a_b_status{x="2"} 3' in lines
    # Empty values and reserved names are left out, as on the wire.
    assert 'pharos_m{b="1"} 4' in lines


def test_types_that_promtool_accepts():
    assert kind_of("memory.used_percent") == "gauge"
    assert kind_of("processes.total") == "untyped"
    assert kind_of("disk.inodes_total") == "untyped"
    assert kind_of("pharosd.samples_sent_total") == "counter"
    assert kind_of("probe.flag.count") == "untyped"
    assert kind_of("probe.x.time", {"le"}) == "untyped"


def test_alerts_like_prometheus_alerts():
    fam = alert_family([
        {"rule": "disk", "level": "critical", "status": "firing",
         "labels": {"mount": "/", "rule": "spoofed", "bad-name": "x"}},
        {"rule": "load", "level": "warning", "status": "pending", "labels": {}},
        {"rule": "cpu", "level": "info", "status": "resolving", "labels": {}},
        {"rule": "ok", "level": "info", "status": "ok", "labels": {}},
    ])
    text = render(fam)
    assert 'pharos_alert{bad_name="x",level="critical",mount="/",rule="disk",' \
           'state="firing"} 1' in text
    assert 'pharos_alert{level="warning",rule="load",state="pending"} 1' in text
    assert 'pharos_alert{level="info",rule="cpu",state="firing"} 1' in text
    assert 'rule="ok"' not in text and "spoofed" not in text


def test_silenced_alerts_are_a_family_of_their_own():
    held = {"kind": "silence", "id": "3f2a", "comment": "swap", "until": 1.0}
    alerts = [
        {"rule": "disk", "level": "critical", "status": "firing", "silenced_by": held,
         "labels": {"mount": "/", "by": "spoofed"}},
        {"rule": "load", "level": "warning", "status": "pending", "labels": {},
         "silenced_by": {**held, "kind": "maintenance"}},
        {"rule": "cpu", "level": "info", "status": "firing", "labels": {}},
    ]
    text = render(silenced_family(alerts))
    assert 'pharos_alert_silenced{by="silence",mount="/",rule="disk"} 1' in text
    assert 'pharos_alert_silenced{by="maintenance",rule="load"} 1' in text
    assert 'rule="cpu"' not in text and "spoofed" not in text
    # pharos_alert is unchanged by a silence (as ALERTS): same series either way.
    plain = [{k: v for k, v in a.items() if k != "silenced_by"} for a in alerts]
    assert render(alert_family(alerts)) == render(alert_family(plain))


def test_promtool_accepts_a_full_exposition():
    promtool = require_binary("promtool")
    store = LatestValues()
    store.offer([Sample("memory.used_percent", (), 42.5, 0.0),
                 Sample("processes.total", (), 300.0, 0.0),
                 Sample("probe.flag.count", (), 1.0, 0.0),
                 Sample("disk.used_percent", (("mount", '/we"ird\\'),), math.nan, 0.0),
                 Sample("uptime.seconds", (), math.inf, 0.0)])
    families = sample_families(store.snapshot(), lambda m: f"help of {m}\nsecond line")
    families.append(alert_family([{"rule": "r", "level": "info", "status": "firing",
                                   "labels": {"mount": "/"}}]))
    families.append(silenced_family([{"rule": "r", "level": "info", "status": "firing",
                                      "labels": {"mount": "/"},
                                      "silenced_by": {"kind": "silence"}}]))
    families.append(Family("pharosd.http_requests_total", "counter", "requests",
                           [((("code", "200"),), 5.0)]))
    body = Exposition().render(families)
    check = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True,
                           timeout=30)
    assert check.returncode == 0, (check.stdout + check.stderr).decode()


def test_prefix_cache_follows_the_series():
    exp = Exposition()
    first = exp.render([Family("a", "gauge", "h", [((("x", "1"),), 1.0)])])
    second = exp.render([Family("a", "gauge", "h", [((("x", "1"),), 2.0)])])
    assert first.endswith(b'pharos_a{x="1"} 1\n') and second.endswith(b'pharos_a{x="1"} 2\n')


# -- the store ---------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_store_forgets_series_that_stop_and_stays_bounded():
    clock = Clock()
    store = LatestValues(max_series=3, min_stale=5.0, forget_after=60.0, monotonic=clock)
    for _ in range(2):              # two arrivals 10 s apart: cadence 10 s
        store.offer([Sample("a", (), 1.0, 0.0), Sample("b", (), 2.0, 0.0)])
        clock.t += 10
    store.offer([Sample("a", (), 3.0, 0.0), Sample("once", (), 1.0, 0.0),
                 Sample("over", (), 1.0, 0.0)])
    assert store.dropped == 1
    assert {s.metric: s.value for s in store.snapshot()} == {"a": 3.0, "b": 2.0, "once": 1.0}
    clock.t += 20                   # b last seen 30 s ago: past 2.5 x 10 s
    assert {s.metric for s in store.snapshot()} == {"a", "once"}
    clock.t += 10                   # a: 30 s too
    assert {s.metric for s in store.snapshot()} == {"once"}
    clock.t += 60                   # seen once: forgotten after forget_after
    assert store.snapshot() == []


# -- requests ------------------------------------------------------------------------------


def test_request_heads_and_their_limits():
    req = parse_head(b"GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\nAccept: x\r\nAccept: y\r\n\r\n")
    assert (req.method, req.path, req.query, req.keep_alive) == ("GET", "/metrics", "x=1", True)
    assert req.headers["accept"] == "x, y"
    assert not parse_head(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n").keep_alive
    assert not parse_head(b"GET / HTTP/1.0\n\n").keep_alive
    assert head_end(b"GET / HTTP/1.1\r\n\r\nGET") == 18
    cases = {
        b"POST / HTTP/1.1\r\n\r\n": 405,
        b"GET / HTTP/2.0\r\n\r\n": 505,
        b"GET /\r\n\r\n": 400,
        b"GET / HTTP/1.1\r\nContent-Length: 5\r\n\r\n": 413,
        b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n": 413,
        b"GET / HTTP/1.1\r\n folded\r\n\r\n": 400,
        b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n": 431,
        b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\n\r\n": 414,
        b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 70 + b"\r\n": 431,
        b"GET http://other/ HTTP/1.1\r\n\r\n": 400,
    }
    for head, status in cases.items():
        with pytest.raises(HttpError) as err:
            parse_head(head)
        assert err.value.status == status, head[:40]


def test_basic_auth_credentials():
    ok = "Basic " + base64.b64encode(b"prom:pw:with:colons").decode()
    assert credentials_ok(ok, "prom", "pw:with:colons")
    assert not credentials_ok(ok, "prom", "pw")
    assert not credentials_ok(None, "prom", "pw")
    assert not credentials_ok("Bearer abc", "prom", "pw")
    assert not credentials_ok("Basic !!!", "prom", "pw")


# -- the page ----------------------------------------------------------------------------


def test_page_escapes_everything_and_counts_alerts():
    store = LatestValues()
    store.offer([Sample("probe.web.status", (), 2.0, 990.0, note="<img src=x onerror=1>"),
                 Sample("probe.web.state", (), 2.0, 990.0)])
    state: Mapping[str, Any] = {
        "host": "<h>", "version": "1", "pid": 7, "started_at": 900.0,
        "alerts": [{"rule": "r<1>", "labels": {"m": '"/"'}, "level": "critical",
                    "status": "firing", "since": 940.0, "summary": "a & b"},
                   {"rule": "p", "labels": {}, "level": "info", "status": "pending",
                    "since": 990.0}],
        "sinks": [{"name": "s", "backlog": 3, "delivered": 1, "dropped": {"x": 2},
                   "last_error": "<boom>"}],
        "pipeline": None, "workers": [{"name": "w", "alive": True, "restarts": 0}],
        "reload": {"ok": False, "errors": ["f.yaml:1:1: <bad>"]},
    }
    html = render_page(state, probes_from(store.snapshot()), 1000.0, 5)
    assert "<title>pharosd on &lt;h&gt;: 1 firing, 1 pending</title>" in html
    for raw in ("<img", "<boom>", "<bad>", "r<1>", "<h>"):
        assert raw not in html
    assert "&lt;img src=x onerror=1&gt;" in html and "CRITICAL" in html
    assert "a &amp; b" in html and "<td>1m</td>" in html and "the previous config" in html
    assert '<meta http-equiv="refresh" content="5">' in html
    assert "<script" not in html and "http://" not in html and "https://" not in html


# -- config ------------------------------------------------------------------------------


def test_listen_errors_are_positioned():
    with pytest.raises(ConfigError) as err:
        parse_config("interval: 1s\nhttp:\n  listen: 9612\n", "p.yaml")
    assert str(err.value).startswith("p.yaml:3:11: http.listen: expected HOST:PORT")
    with pytest.raises(ConfigError) as err:
        parse_config("http: {listen: '127.0.0.1:99999'}\n", "p.yaml")
    assert "p.yaml:1:16: http.listen: expected a port from 1 to 65535, got '99999'" in \
        str(err.value)
    with pytest.raises(ConfigError) as err:
        parse_config("http: {listen: '127.0.0.1:1', bogus: 1}\n", "p.yaml")
    assert "unknown key 'bogus'" in str(err.value)
    assert split_listen("[::1]:9612") == ("::1", 9612)
    assert parse_config("http: {listen: 'localhost:1'}\n").http.listen == "localhost:1"


def test_exposure_warning():
    assert exposure_warning(HttpConfig(listen="127.0.0.1:9612")) is None
    assert exposure_warning(HttpConfig(listen="[::1]:9612")) is None
    assert "without TLS or basic auth" in (exposure_warning(HttpConfig(listen="0.0.0.0:1"))
                                            or "")


def test_missing_password_file_names_its_key(tmp_path):
    cfg = parse_config(f"http:\n  listen: 127.0.0.1:{free_port()}\n  basic_auth: "
                       f"{{username: u, password_file: {tmp_path}/nope}}\n").http
    with pytest.raises(ListenerError) as err:
        open_listener(cfg)
    assert err.value.key == "http.basic_auth.password_file"


# -- the worker, in-process --------------------------------------------------------------


class FakeView:
    def metrics(self) -> bytes:
        return b"# HELP x y\n# TYPE x gauge\nx 1\n"

    def healthy(self) -> bool:
        return True

    def ready(self) -> bool:
        return False

    def state(self) -> Mapping[str, Any]:
        return {"alerts": [{"rule": "r", "value": math.nan}]}

    def page(self) -> str:
        return "<p>page</p>"


@pytest.fixture
def worker() -> Iterator[tuple[HttpWorker, int]]:
    port = free_port()
    cfg = HttpConfig(listen=f"127.0.0.1:{port}", max_connections=3, timeout=1.0)
    w = HttpWorker(open_listener(cfg), FakeView(), tick=0.05)
    ctx = WorkerContext()
    t = threading.Thread(target=w.run, args=(ctx,), daemon=True)
    t.start()
    yield w, port
    ctx.stop()
    t.join(5)
    w.close()


def read_all(sock: socket.socket) -> bytes:
    sock.settimeout(5)
    out = b""
    while chunk := sock.recv(65536):
        out += chunk
    return out


def test_keep_alive_pipelining_and_json(worker):
    _, port = worker
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"GET /-/ready HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET /api/v1/alerts HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n")
        data = read_all(s)
    parts = data.split(b"HTTP/1.1 ")[1:]
    assert [p.split(b" ", 1)[0] for p in parts] == [b"503", b"200", b"200"]
    assert b'{"alerts":[{"rule":"r","value":null}]}' in parts[1]
    assert b"Connection: close" in parts[2] and parts[2].endswith(b"x 1\n")


def test_connection_bound_refuses_and_deadline_closes(worker):
    w, port = worker
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
    try:
        assert _wait(lambda: w.open == 3)
        with socket.create_connection(("127.0.0.1", port)) as extra:
            assert read_all(extra).startswith(b"HTTP/1.1 503 ")
        assert w.refused == 1
        # The silent ones are closed at their deadline (timeout 1 s) and counted.
        assert all(read_all(s) == b"" for s in idle)
        assert w.timeouts == 3
    finally:
        for s in idle:
            s.close()
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"GET / HTTP/1.1\r\nX: " + b"a" * 10000 + b"\r\n\r\n")
        assert read_all(s).startswith(b"HTTP/1.1 431 ")


def _wait(pred: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True
