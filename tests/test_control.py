"""The control socket: a real ControlServer worker in a thread, real unix sockets."""

from __future__ import annotations

import grp
import io
import json
import os
import shutil
import socket
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from pharosd.control.cli import EXIT_ERROR, EXIT_NOT_RUNNING, EXIT_OK, status_main
from pharosd.control.client import query_status
from pharosd.control.protocol import ControlError, NotRunning, default_socket_path, find_socket
from pharosd.control.render import render_status
from pharosd.control.server import ControlServer
from pharosd.worker import Worker, WorkerContext

pytestmark = pytest.mark.timeout(60)

NOW = 1_700_000_000.0

FAKE_STATE: dict[str, Any] = {
    "version": "0.1.0",
    "pid": 4242,
    "started_at": NOW - 3700,
    "config": {"source": "/etc/pharos.yaml", "loaded_at": NOW - 65, "digest": "0123456789abcdef"},
    "reload": {"ok": True, "at": NOW - 60, "errors": []},
    "workers": [
        {"name": "collector", "alive": True, "restarts": 0, "heartbeat_age": 0.25},
        {"name": "sink:webhook", "alive": False, "restarts": 3, "heartbeat_age": 42.0},
    ],
    "alerts": [
        {"rule": "root-full", "labels": {"mount": "/"}, "level": "critical",
         "status": "firing", "since": NOW - 300},
    ],
    "sinks": [
        {"name": "file", "backlog": 0, "last_error": None, "delivered": 12, "dropped": 0},
        {"name": "webhook", "backlog": 7, "last_error": "HTTP 503", "delivered": 3,
         "dropped": 1},
    ],
    "pipeline": {"buffer": {"depth": 10, "capacity": 100000}, "spill": {"bytes": 4096},
                 "uplink": {"up": False}},
}


def wait_until(pred: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.02)


@pytest.fixture
def sockdir() -> Iterator[str]:
    # Short on purpose: a unix socket path must fit in 108 bytes.
    d = tempfile.mkdtemp(prefix="phc", dir="/tmp")
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


class Running:
    """A ControlServer on its own thread, as the supervisor runs it."""

    def __init__(self, server: ControlServer) -> None:
        self.server = server
        self.ctx = WorkerContext()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.server.run(self.ctx)
        except BaseException as exc:  # surfaced by the test, not swallowed
            self.error = exc

    def stop(self) -> None:
        self.ctx.stop()
        self.thread.join(10)
        assert not self.thread.is_alive(), "control worker did not stop"
        assert self.error is None, repr(self.error)


@pytest.fixture
def serve(sockdir: str) -> Iterator[Callable[..., Running]]:
    running: list[Running] = []

    def start(state: Callable[[], Any] = lambda: FAKE_STATE, *, path: str | None = None,
              wait: bool = True, **kw: Any) -> Running:
        path = path or os.path.join(sockdir, "control.sock")
        kw.setdefault("tick", 0.1)
        r = Running(ControlServer(path, state, **kw))
        running.append(r)
        if wait:
            assert wait_until(lambda: _is_socket(path)), "socket never appeared"
        return r

    yield start
    for r in running:
        r.stop()


def _is_socket(path: str) -> bool:
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        return False


def raw(path: str, payload: bytes, timeout: float = 5.0) -> bytes:
    """Send bytes, half-close, read everything the server sends back."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


# -- the worker contract ----------------------------------------------------------


def test_server_is_a_worker_named_control(sockdir):
    server = ControlServer(os.path.join(sockdir, "c.sock"), dict)
    worker: Worker = server  # the Protocol, checked by mypy; and at run time:
    assert worker.name == "control"
    assert worker.heartbeat_timeout > 0


def test_status_round_trip(serve):
    r = serve()
    assert query_status(r.server.path, timeout=5) == FAKE_STATE
    assert r.server.served == 1


def test_socket_mode_0660(serve):
    r = serve(group=None)
    assert stat.S_IMODE(os.stat(r.server.path).st_mode) == 0o660


def test_socket_group_is_set_when_the_group_exists(serve):
    # The group the package creates is "pharos"; here any group we may chown to.
    group = grp.getgrgid(os.getegid() if os.geteuid() else 1).gr_name  # 1 = daemon as root
    r = serve(group=group)
    assert os.stat(r.server.path).st_gid == grp.getgrnam(group).gr_gid


def test_missing_group_is_not_an_error(serve):
    r = serve(group="no-such-group-pharos-test")
    assert query_status(r.server.path) == FAKE_STATE


def test_missing_parent_directory_is_created(serve, sockdir):
    path = os.path.join(sockdir, "run", "pharos", "control.sock")
    serve(path=path)
    assert query_status(path) == FAKE_STATE


def test_state_is_read_per_request(serve):
    calls = []

    def state() -> dict[str, Any]:
        calls.append(1)
        return {"pid": len(calls)}

    r = serve(state)
    assert query_status(r.server.path)["pid"] == 1
    assert query_status(r.server.path)["pid"] == 2


def test_heartbeat_advances_while_idle(serve):
    r = serve()
    first = r.ctx.last_beat
    assert wait_until(lambda: r.ctx.last_beat > first)


def test_stop_removes_the_socket(serve):
    r = serve()
    r.stop()
    assert not os.path.exists(r.server.path)
    with pytest.raises(NotRunning):
        query_status(r.server.path)


# -- protocol errors --------------------------------------------------------------------


def test_unknown_command_and_bad_json_are_answered_not_fatal(serve):
    r = serve()
    path = r.server.path
    bad = json.loads(raw(path, b'{"cmd":"reboot"}\n'))
    assert bad["ok"] is False and "reboot" in bad["error"]
    notjson = json.loads(raw(path, b"status please\n"))
    assert notjson["ok"] is False and "JSON" in notjson["error"]
    notobj = json.loads(raw(path, b"[1,2]\n"))
    assert notobj["ok"] is False and "object" in notobj["error"]
    assert r.server.errors == 3
    assert query_status(path) == FAKE_STATE


def test_deeply_nested_json_gets_a_clean_error_and_one_log_line(serve):
    r = serve()
    nested = b'{"cmd":' + b"[" * 2000 + b"]" * 2000 + b"}\n"       # within MAX_REQUEST
    with capture_logs() as logs:
        reply = json.loads(raw(r.server.path, nested))
    assert reply == {"ok": False,
                     "error": "expected one JSON object per line: nested too deeply"}
    assert [(e["event"], e["log_level"]) for e in logs] == [("control_bad_request", "warning")]
    assert "exc_info" not in logs[0]
    assert query_status(r.server.path) == FAKE_STATE


@pytest.fixture(scope="module")
def fuzz_server() -> Iterator[Running]:
    d = tempfile.mkdtemp(prefix="phf", dir="/tmp")
    r = Running(ControlServer(os.path.join(d, "control.sock"), lambda: FAKE_STATE, tick=0.1))
    try:
        assert wait_until(lambda: _is_socket(r.server.path)), "socket never appeared"
        yield r
    finally:
        r.stop()
        shutil.rmtree(d, ignore_errors=True)


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=5), kids,
                                                              max_size=4),
    max_leaves=20)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=st.one_of(
    st.binary(max_size=300),
    _json_values.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(st.sampled_from(["cmd", "args", "x"]),
                    st.one_of(st.sampled_from(["status", "reboot"]), _json_values),
                    max_size=3).map(lambda v: json.dumps(v).encode())))
def test_any_request_gets_one_json_answer_and_the_server_goes_on(fuzz_server, payload):
    path = fuzz_server.server.path
    reply = json.loads(raw(path, payload.replace(b"\n", b" ") + b"\n"))
    assert set(reply) in ({"ok", "state"}, {"ok", "error"})
    assert reply["ok"] is ("state" in reply)
    assert query_status(path) == FAKE_STATE
    assert fuzz_server.thread.is_alive() and fuzz_server.error is None


def test_request_without_newline_is_answered_at_eof(serve):
    r = serve()
    reply = json.loads(raw(r.server.path, b'{"cmd":"status"}'))
    assert reply == {"ok": True, "state": FAKE_STATE}


def test_oversized_request_is_refused(serve):
    r = serve(max_request=64)
    reply = json.loads(raw(r.server.path, b'{"cmd":"status","pad":"' + b"x" * 10_000 + b'"}\n'))
    assert reply["ok"] is False and "longer than 64 bytes" in reply["error"]
    assert query_status(r.server.path) == FAKE_STATE


def test_failing_state_is_reported_and_the_server_goes_on(serve):
    fail = [True]

    def state() -> dict[str, Any]:
        if fail[0]:
            raise RuntimeError("evaluator lock broken")
        return {"pid": 1}

    r = serve(state)
    with capture_logs() as logs, pytest.raises(ControlError, match="evaluator lock broken"):
        query_status(r.server.path)
    assert any(e["event"] == "control_state_failed" for e in logs)
    fail[0] = False
    assert query_status(r.server.path) == {"pid": 1}


# -- clients that misbehave --------------------------------------------------------------


def test_silent_client_does_not_block_others(serve):
    r = serve(client_timeout=60)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as silent:
        silent.connect(r.server.path)   # connects, never writes
        assert query_status(r.server.path, timeout=5) == FAKE_STATE


def test_client_that_never_reads_does_not_block_others(serve):
    big = {"alerts": [{"rule": f"r{i}", "labels": {"x": "y" * 200}} for i in range(20_000)]}
    r = serve(lambda: big, client_timeout=60)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as greedy:
        greedy.connect(r.server.path)
        greedy.sendall(b'{"cmd":"status"}\n')   # several MB queued; never read
        small = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        small.settimeout(10)
        small.connect(r.server.path)
        small.sendall(b'{"cmd":"status"}\n')
        got = b""
        while b"\n" not in got:
            chunk = small.recv(1 << 20)
            assert chunk, "server closed the second client early"
            got += chunk
        small.close()
    assert json.loads(got.partition(b"\n")[0])["state"] == big


def test_hanging_client_is_dropped_at_its_deadline(serve):
    r = serve(client_timeout=0.3)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as silent:
        silent.settimeout(10)
        silent.connect(r.server.path)
        silent.sendall(b'{"cmd":')           # half a request, then nothing
        assert silent.recv(100) == b""       # the server closed it
    assert r.server.timeouts == 1


def test_too_many_clients_are_refused_with_a_message(serve):
    r = serve(client_timeout=60, max_clients=2)
    held = []
    try:
        for _ in range(2):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(r.server.path)
            held.append(s)
        # Whether or not the server has accepted them yet, the listen queue is FIFO:
        # the two held connections take both slots and the third is refused.
        with pytest.raises(ControlError, match="busy"):
            query_status(r.server.path)
        assert r.server.refused == 1
    finally:
        for s in held:
            s.close()
    assert wait_until(lambda: _try_status(r.server.path) == FAKE_STATE)


def _try_status(path: str) -> Any:
    try:
        return query_status(path, timeout=2)
    except ControlError:
        return None


# -- socket file life cycle ------------------------------------------------------------------


def test_stale_socket_file_is_replaced(serve, sockdir):
    path = os.path.join(sockdir, "control.sock")
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(path)          # bound, never listening: what a killed daemon leaves
    dead.close()
    with pytest.raises(NotRunning):
        query_status(path)
    serve(path=path, wait=False)
    assert wait_until(lambda: _try_status(path) == FAKE_STATE)


def test_live_socket_is_not_stolen(serve, sockdir):
    first = serve()
    with capture_logs() as logs:
        serve(lambda: {"pid": 2}, path=first.server.path, wait=False, retry_bind=60)
        assert wait_until(
            lambda: any(e["event"] == "control_socket_unavailable" for e in logs))
    assert "already listens" in next(
        e["error"] for e in logs if e["event"] == "control_socket_unavailable")
    assert query_status(first.server.path) == FAKE_STATE


def test_path_that_is_not_a_socket_is_left_alone(serve, sockdir):
    path = os.path.join(sockdir, "control.sock")
    with open(path, "w") as f:
        f.write("precious")
    with capture_logs() as logs:
        r = serve(path=path, wait=False, retry_bind=60)
        assert wait_until(
            lambda: any(e["event"] == "control_socket_unavailable" for e in logs))
        first = r.ctx.last_beat
        assert wait_until(lambda: r.ctx.last_beat > first)   # still beating while it waits
    with open(path) as f:
        assert f.read() == "precious"


# -- client and `pharosd status` -------------------------------------------------------------


def test_missing_socket_is_not_running(sockdir):
    path = os.path.join(sockdir, "nope", "control.sock")
    with pytest.raises(NotRunning, match="not running"):
        query_status(path)
    out, err = io.StringIO(), io.StringIO()
    assert status_main(["--socket", path], stdout=out, stderr=err) == EXIT_NOT_RUNNING
    assert out.getvalue() == ""
    assert "pharosd is not running" in err.getvalue() and path in err.getvalue()


def test_refused_socket_is_not_running(sockdir):
    path = os.path.join(sockdir, "control.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.close()
    err = io.StringIO()
    assert status_main(["--socket", path], stdout=io.StringIO(), stderr=err) == EXIT_NOT_RUNNING
    assert "not running" in err.getvalue()


def test_server_that_never_answers_is_an_error_not_not_running(sockdir):
    path = os.path.join(sockdir, "control.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as mute:
        mute.bind(path)
        mute.listen(1)          # accepts in the kernel, never answers
        err = io.StringIO()
        code = status_main(["--socket", path, "--timeout", "0.5"], stdout=io.StringIO(),
                           stderr=err)
    assert code == EXIT_ERROR
    assert "did not answer" in err.getvalue()


def test_status_main_prints_table(serve):
    r = serve()
    out = io.StringIO()
    assert status_main(["--socket", r.server.path], stdout=out) == EXIT_OK
    text = out.getvalue()
    assert "root-full" in text and "critical" in text and "sink:webhook" in text
    assert "/etc/pharos.yaml" in text


def test_status_main_json(serve):
    r = serve()
    out = io.StringIO()
    assert status_main(["--socket", r.server.path, "--json"], stdout=out) == EXIT_OK
    assert json.loads(out.getvalue()) == FAKE_STATE


def test_status_main_takes_the_cli_namespace(serve):
    import argparse

    r = serve()
    out = io.StringIO()
    args = argparse.Namespace(json=True, socket=r.server.path)  # no --timeout: default
    assert status_main(args, stdout=out) == EXIT_OK
    assert json.loads(out.getvalue())["pid"] == 4242


# -- paths -----------------------------------------------------------------------------------


def test_default_socket_path_prefers_systemd_runtime_directory():
    env = {"RUNTIME_DIRECTORY": "/run/pharos:/run/other", "XDG_RUNTIME_DIR": "/run/user/1"}
    assert default_socket_path(env) == "/run/pharos/control.sock"


def test_default_socket_path_without_systemd():
    if os.geteuid() == 0:
        assert default_socket_path({}) == "/run/pharos/control.sock"
        assert default_socket_path({"XDG_RUNTIME_DIR": "/x"}, "/s") == "/run/pharos/control.sock"
    else:
        assert default_socket_path({"XDG_RUNTIME_DIR": "/x"}) == "/x/pharos/control.sock"
        assert default_socket_path({}, "/s") == "/s/control.sock"


def test_find_socket_picks_an_existing_socket(serve, sockdir):
    r = serve()
    assert find_socket({"RUNTIME_DIRECTORY": sockdir}) == r.server.path
    if not _is_socket("/run/pharos/control.sock"):   # a real daemon here would win
        assert find_socket({}, sockdir) == r.server.path


# -- rendering -------------------------------------------------------------------------------


def test_render_full_state():
    text = render_status(FAKE_STATE, now=NOW)
    lines = text.splitlines()
    assert lines[0] == "pharosd 0.1.0, pid 4242, started 2023-11-14T21:11:40.000Z (1h1m ago)"
    assert lines[1] == ("config:  /etc/pharos.yaml, loaded 2023-11-14T22:12:15.000Z (1m5s ago),"
                        " digest 0123456789ab")
    assert lines[2] == "reload:  ok 2023-11-14T22:12:20.000Z (1m ago)"
    assert "Workers (2)" in lines
    i = lines.index("Workers (2)")
    assert lines[i + 1].split() == ["NAME", "ALIVE", "RESTARTS", "HEARTBEAT"]
    assert lines[i + 2].split() == ["collector", "yes", "0", "250ms", "ago"]
    assert lines[i + 3].split() == ["sink:webhook", "NO", "3", "42s", "ago"]
    i = lines.index("Open alerts (1)")
    assert lines[i + 2].split() == ["root-full", "mount=/", "critical", "firing",
                                    "2023-11-14T22:08:20.000Z", "(5m", "ago)"]
    i = lines.index("Sinks (2)")
    assert lines[i + 1].split() == ["NAME", "BACKLOG", "DELIVERED", "DROPPED", "LAST", "ERROR"]
    assert lines[i + 2].split() == ["file", "0", "12", "0", "-"]
    assert lines[i + 3].split() == ["webhook", "7", "3", "1", "HTTP", "503"]
    i = lines.index("Pipeline")
    assert lines[i + 1].split() == ["buffer", "depth=10,", "capacity=100000"]
    assert lines[i + 3].split() == ["uplink", "up=False"]


def test_render_columns_line_up():
    text = render_status(FAKE_STATE, now=NOW)
    lines = text.splitlines()
    i = lines.index("Sinks (2)")
    header, row1, row2 = lines[i + 1:i + 4]
    col = header.index("BACKLOG")
    assert row1[col:].startswith("0 ") and row2[col:].startswith("7 ")


def test_render_tolerates_missing_and_odd_keys():
    assert render_status({}) == "pharosd\n"
    text = render_status({"workers": None, "alerts": [], "sinks": [{"name": "x"}, "junk"],
                          "pipeline": None, "reload": {"ok": None},
                          "config": {"source": None}})
    assert "Workers (0)" in text and "Open alerts (0)" in text
    assert "Sinks (1)" in text and "  x" in text
    assert "reload:  none since start" in text
    assert "config:  embedded default" in text
    assert "Pipeline" not in text


def test_render_failed_reload_lists_every_error():
    text = render_status({"reload": {"ok": False, "at": NOW, "errors": [
        "pharos.yaml:14:12: thresholds[2].above: expected a number, got 'ninety'",
        "pharos.yaml:20:3: sinks[0].kind: expected one of file, log"]}}, now=NOW)
    assert "reload:  FAILED 2023-11-14T22:13:20.000Z (0s ago), 2 error(s)" in text
    assert "pharos.yaml:14:12: thresholds[2].above" in text
    assert "pharos.yaml:20:3: sinks[0].kind" in text


def test_render_accepts_rfc3339_times_and_label_pairs():
    text = render_status({"alerts": [{"rule": "disk", "labels": [["mount", "/var"]],
                                      "since": "2023-11-14T22:12:20.000Z"}]}, now=NOW)
    assert "mount=/var" in text and "(1m ago)" in text


def test_render_neutralises_terminal_control_characters():
    text = render_status({"sinks": [{"name": "evil\x1b[2J\nFAKE ROW",
                                     "last_error": "x\ry"}]})
    assert "\x1b" not in text and "\r" not in text
    assert "FAKE ROW" in text and "\nFAKE ROW" not in text


def test_render_shows_unknown_sections():
    text = render_status({"host": "web1", "collector": {"sources": 7}, "note": "hi"})
    assert text.splitlines()[0] == "pharosd on web1"
    assert "Collector" in text and "sources  7" in text and "note: hi" in text


def test_render_collector_pipeline_and_http_as_tables():
    text = render_status({
        "collector": {"cpu": {"every": 10.0, "last_run": NOW - 3, "runs": 5, "failures": 1,
                              "skipped": 0, "missed": 2, "last_error": "OSError: x"}},
        "sinks": [{"name": "f", "dropped": {"a": 2, "b": 1}, "last_success": NOW - 100}],
        "pipeline": {"series": 10, "receivers": [
            {"name": "vm", "up": True, "buffer_samples": 5, "spill_samples": 0,
             "spill_bytes": 2048, "sent": 100, "dropped": {}, "seconds_since_success": 1.5}]},
        "http": {"listen": "127.0.0.1:9612", "tls": False, "basic_auth": True, "open": 1,
                 "requests": 5, "refused": 0, "timeouts": 2, "tls_errors": 0},
    }, now=NOW)
    lines = text.splitlines()
    i = lines.index("Sources (1)")
    assert lines[i + 1].split() == ["NAME", "EVERY", "LAST", "RUN", "RUNS", "FAILURES",
                                    "SKIPPED", "MISSED", "LAST", "ERROR"]
    assert lines[i + 2].split() == ["cpu", "10s", "3s", "ago", "5", "1", "0", "2",
                                    "OSError:", "x"]
    i = lines.index("Sinks (1)")
    assert lines[i + 2].split() == ["f", "3", "1m40s", "ago"]
    i = lines.index("Receivers (1)")
    assert lines[i + 2].split() == ["vm", "yes", "5", "0", "2KiB", "100", "0", "2s"]
    i = lines.index("HTTP listener")
    assert lines[i + 2].split() == ["127.0.0.1:9612", "off", "on", "1", "5", "0", "2", "0"]
    assert "1.7e+09" not in text and "every=" not in text
