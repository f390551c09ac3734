"""Fuzz: random bytes and random JSON at a real daemon's control socket.

Whatever a client sends, the daemon answers one JSON line (``ok`` false with an
error for anything but ``{"cmd": "status"}``) or closes the connection, keeps
serving ``status`` afterwards, logs no traceback, and stays up.
"""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pharosd.control.client import query_status
from pharosd.control.protocol import SOCKET_NAME
from tests.support.daemon import PharosProcess

CONFIG = """\
interval: 1s
state_dir: {state}
statistics: [uptime]
sinks:
  - {{name: log, kind: log}}
"""


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PharosProcess]:
    tmp = tmp_path_factory.mktemp("control-fuzz")
    d = PharosProcess(tmp, CONFIG.format(state=tmp / "state"))
    try:
        assert d.wait_ready(), d.log()
        yield d
    finally:
        d.stop()


def exchange(d: PharosProcess, data: bytes) -> bytes:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(5.0)
    try:
        sock.connect(str(d.tmp / "run" / SOCKET_NAME))
        with contextlib.suppress(OSError):      # the daemon may hang up on a huge request
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        out = b""
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                out += chunk
        return out
    finally:
        sock.close()


def check_answer(out: bytes) -> None:
    if not out:
        return                                   # closed without an answer: allowed
    lines = out.splitlines()
    assert len(lines) == 1, out[:200]
    reply = json.loads(lines[0])
    assert isinstance(reply, dict) and isinstance(reply.get("ok"), bool)
    if not reply["ok"]:
        assert isinstance(reply.get("error"), str) and reply["error"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=30)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.binary(max_size=6000))
def test_random_bytes(daemon: PharosProcess, data: bytes) -> None:
    check_answer(exchange(daemon, data))


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(value=json_values | st.fixed_dictionaries({"cmd": json_values}))
def test_random_json(daemon: PharosProcess, value: object) -> None:
    check_answer(exchange(daemon, json.dumps(value).encode() + b"\n"))


def test_deeply_nested_json_and_the_daemon_still_serves(daemon: PharosProcess) -> None:
    check_answer(exchange(daemon, b"[" * 2000 + b"]" * 2000 + b"\n"))      # within 4 KiB
    check_answer(exchange(daemon, b"[" * 100_000 + b"]" * 100_000 + b"\n"))
    check_answer(exchange(daemon, b"{\"cmd\": " + b"[" * 1500 + b"]" * 1500 + b"}\n"))
    state = query_status(str(daemon.tmp / "run" / SOCKET_NAME))
    assert state["pid"] == daemon.proc.pid
    assert daemon.proc.poll() is None
    assert "Traceback" not in daemon.log(), daemon.log()[-3000:]
