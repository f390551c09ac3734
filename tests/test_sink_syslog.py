"""The syslog sink: pure RFC 5424/3164 formatters, then a real rsyslogd over
its unix socket, UDP and TCP, recording every field."""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from peers import wait_for
from peers.rsyslog import Rsyslog
from peers.sinktools import event

from pharosd.errors import DeliveryError
from pharosd.model import AlertEvent
from pharosd.sinks.syslog import (
    SyslogSink,
    format_number,
    format_rfc3164,
    format_rfc5424,
    frame_octet_counting,
    message_text,
    sd_escape,
    severity_name,
    structured_data,
)

AT = 1_700_000_000.25    # 2023-11-14T22:13:20.250Z


def fixed(**kw: object) -> AlertEvent:
    args: dict[str, object] = {"at": AT, "level": "critical", **kw}
    ev = event("mem-high", **args)  # type: ignore[arg-type]
    return AlertEvent(**{**{f: getattr(ev, f) for f in ev.__dataclass_fields__},
                         "id": "0123abcd", "fingerprint": "fp01"})


# -- pure formatters ---------------------------------------------------------------


def test_sd_escape_escapes_quote_backslash_and_bracket() -> None:
    assert sd_escape('a"b\\c]d') == 'a\\"b\\\\c\\]d'
    assert sd_escape("plain [x") == "plain [x"


@pytest.mark.parametrize(("level", "status", "severity"), [
    ("critical", "firing", "crit"), ("warning", "firing", "warning"),
    ("info", "firing", "info"), ("critical", "resolved", "notice"),
    ("info", "resolved", "notice"),
])
def test_severity_follows_the_level_and_resolved_is_notice(
        level: str, status: str, severity: str) -> None:
    assert severity_name(event(level=level, status=status)) == severity  # type: ignore[arg-type]


def test_rfc5424_message_exactly() -> None:
    ev = fixed()
    msg = format_rfc5424(ev, facility="daemon", hostname="web1", procid=42)
    assert msg == (
        b'<26>1 2023-11-14T22:13:20.250Z web1 pharosd 42 ALERT '
        b'[pharos@32473 rule="mem-high" status="firing" level="critical" value="93.5" '
        b'limit="90" metric="disk.used_percent" fingerprint="fp01" id="0123abcd"] '
        b'mem-high firing (critical): disk.used_percent is 93.5, above 90.0')
    local7 = format_rfc5424(fixed(status="resolved"), facility="local7", hostname="h",
                            procid=1)
    assert local7.startswith(b"<189>1 ")  # 23 * 8 + notice (5)


def test_rfc5424_header_fields_are_tokens_and_nil_when_empty() -> None:
    msg = format_rfc5424(fixed(), facility="user", hostname="", procid="a b")
    assert msg.split(b" ")[2:5] == [b"-", b"pharosd", b"a_b"]


def test_rfc3164_message_exactly_with_and_without_hostname() -> None:
    ev = fixed(at=AT - 9 * 86400)   # Nov  5: the day is space-padded
    assert format_rfc3164(ev, facility="daemon", hostname="web1", procid=42,
                          localtime=time.gmtime) == (
        b"<26>Nov  5 22:13:20 web1 pharosd[42]: "
        b"mem-high firing (critical): disk.used_percent is 93.5, above 90.0")
    local = format_rfc3164(ev, facility="daemon", hostname=None, procid=42,
                           localtime=time.gmtime)
    assert local.startswith(b"<26>Nov  5 22:13:20 pharosd[42]: mem-high")


def test_octet_counting_counts_bytes_not_characters() -> None:
    assert frame_octet_counting(b"hello") == b"5 hello"
    assert frame_octet_counting("é".encode()) == b"2 " + "é".encode()


def test_control_characters_never_reach_the_wire_and_length_is_capped() -> None:
    ev = fixed(summary="line1\nline2\r\x00tail " + "é" * 5000)
    msg5424 = format_rfc5424(ev, facility="daemon", hostname="h", procid=1)
    msg3164 = format_rfc3164(ev, facility="daemon", hostname="h", procid=1)
    for m in (msg5424, msg3164):
        assert not re.search(rb"[\x00-\x1f]", m)
        m.decode("utf-8")                      # cut on a character boundary
    assert len(msg3164) <= 1024 < len(msg5424) <= 8000


def test_numbers_read_like_people_write_them() -> None:
    assert [format_number(v) for v in (90.0, 93.25, 1e20, None, 0.1 + 0.2)] == \
        ["90", "93.25", "1e+20", "", "0.3"]


def _parse_sd(sd: str) -> dict[str, str]:
    """A strict RFC 5424 SD-ELEMENT parser (one element), for the property test."""
    assert sd.startswith("[pharos@32473 ") and sd.endswith("]")
    params: dict[str, str] = {}
    i = len("[pharos@32473 ")
    while sd[i] != "]":
        eq = sd.index("=", i)
        name = sd[i:eq]
        assert sd[eq + 1] == '"'
        j, value = eq + 2, []
        while sd[j] != '"':
            if sd[j] == "\\" and sd[j + 1] in '"\\]':
                value.append(sd[j + 1])
                j += 2
            else:
                assert sd[j] != "]", "unescaped ]"
                value.append(sd[j])
                j += 1
        params[name] = "".join(value)
        i = j + 1
        if sd[i] == " ":
            i += 1
    assert i == len(sd) - 1
    return params


@given(st.text(st.characters(min_codepoint=32, blacklist_categories=["Cs"]), min_size=1))
def test_structured_data_round_trips_any_rule_name(rule: str) -> None:
    ev = event(rule)
    params = _parse_sd(structured_data(ev))
    assert params["rule"] == rule.replace("\x7f", " ")
    assert (params["status"], params["level"], params["value"], params["limit"]) == \
        ("firing", "warning", "93.5", "90")


# -- a real rsyslogd ---------------------------------------------------------------


@pytest.fixture(scope="module")
def rsyslog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rsyslog]:
    rs = Rsyslog(tmp_path_factory.mktemp("rsyslog"))
    rs.start()
    try:
        yield rs
    finally:
        rs.stop()


def _sink(rs: Rsyslog, transport: str, fmt: str, **kw: object) -> SyslogSink:
    port = rs.udp_port if transport == "udp" else rs.tcp_port
    return SyslogSink("syslog", transport=transport, socket_path=rs.socket_path,
                      host="127.0.0.1", port=port, fmt=fmt, facility="local3",
                      hostname="pharos-host", **kw)  # type: ignore[arg-type]


def _records_for(rs: Rsyslog, ev: AlertEvent) -> list[dict[str, str]]:
    return [m for m in rs.messages() if ev.rule in m.get("msg", "")]


INPUT = {"unix": "imuxsock", "udp": "imudp", "tcp": "imtcp"}


@pytest.mark.peer("rsyslog")
@pytest.mark.parametrize("fmt", ["rfc5424", "rfc3164"])
@pytest.mark.parametrize("transport", ["unix", "udp", "tcp"])
def test_rsyslog_records_every_field(rsyslog: Rsyslog, transport: str, fmt: str) -> None:
    sink = _sink(rsyslog, transport, fmt)
    tag = f"{transport}-{fmt}-{time.monotonic_ns()}"
    firing = event(f'rule "{tag}" \\ [x]', level="critical", value=97.125, limit=95.0,
                   summary='disk / is "97%" full ] really')
    resolved = event(firing.rule, "resolved", level="critical", value=80.0, limit=95.0)
    try:
        sink.deliver(firing)
        sink.deliver(resolved)
    finally:
        sink.close()
    got = wait_for(lambda: len(_records_for(rsyslog, firing)) >= 2 and
                   _records_for(rsyslog, firing), timeout=10)
    assert got, f"rsyslogd recorded nothing for {tag}: {rsyslog.messages()[-3:]}"
    assert len(got) == 2
    for rec, ev, severity in ((got[0], firing, "crit"), (got[1], resolved, "notice")):
        assert rec["input"] == INPUT[transport]
        assert rec["facility"] == "local3"
        assert rec["severity"] == severity
        assert rec["app"] == "pharosd"
        assert rec["procid"] == str(os.getpid())
        stamp = datetime.fromisoformat(rec["timestamp"].replace("Z", "+00:00")).timestamp()
        if fmt == "rfc5424":
            assert rec["protocol"] == "1"
            assert rec["hostname"] == "pharos-host"
            assert rec["msgid"] == "ALERT"
            assert rec["sd"] == structured_data(ev)
            assert _parse_sd(rec["sd"])["rule"] == ev.rule
            assert _parse_sd(rec["sd"])["value"] == format_number(ev.value)
            assert rec["msg"] == message_text(ev)
            assert abs(stamp - ev.at) < 0.002
        else:
            assert rec["protocol"] == "0"
            # on the local socket the receiver names the host itself, as for syslog(3)
            local = socket.gethostname().split(".")[0]
            assert rec["hostname"] == (local if transport == "unix" else "pharos-host")
            assert (rec["msgid"], rec["sd"]) == ("-", "-")
            assert rec["msg"].strip() == message_text(ev)
            assert int(ev.at) - 1 <= stamp <= int(ev.at)


@pytest.mark.peer("rsyslog")
def test_tcp_frames_keep_back_to_back_messages_apart(rsyslog: Rsyslog) -> None:
    sink = _sink(rsyslog, "tcp", "rfc5424")
    evs = [event(f"burst-{time.monotonic_ns()}-{i}", summary="é ü " * i) for i in range(20)]
    try:
        for ev in evs:
            sink.deliver(ev)
    finally:
        sink.close()
    for ev in evs:
        recs: list[dict[str, str]] = wait_for(
            lambda ev=ev: _records_for(rsyslog, ev), timeout=10)  # type: ignore[misc]
        assert [r["msg"] for r in recs] == [message_text(ev)]


@pytest.mark.peer("rsyslog")
@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_the_sink_reconnects_after_rsyslogd_restarts(tmp_path: Path, transport: str) -> None:
    rs = Rsyslog(tmp_path / "rs")
    rs.start()
    sink = _sink(rs, transport, "rfc5424")
    try:
        before = event(f"before-{transport}")
        sink.deliver(before)
        assert wait_for(lambda: _records_for(rs, before), timeout=10)
        rs.stop()
        rs.start()
        after = event(f"after-{transport}")
        sink.deliver(after)                    # no DeliveryError: a fresh connection
        assert wait_for(lambda: _records_for(rs, after), timeout=10)
    finally:
        sink.close()
        rs.stop()


def test_unix_stream_socket_gets_one_message_per_line(tmp_path: Path) -> None:
    path = str(tmp_path / "stream.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    received = bytearray()

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            while chunk := conn.recv(65536):
                received.extend(chunk)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    sink = SyslogSink("s", transport="unix", socket_path=path, hostname="h")
    evs = [event("one"), event("two")]
    for ev in evs:
        sink.deliver(ev)
    sink.close()
    t.join(5)
    server.close()
    lines = bytes(received).split(b"\n")
    assert lines[-1] == b""
    assert [line.split(b"]", 1)[1].strip() for line in lines[:-1]] == \
        [message_text(e).encode() for e in evs]


def test_unreachable_receivers_raise_delivery_error(tmp_path: Path) -> None:
    missing = SyslogSink("s", transport="unix", socket_path=str(tmp_path / "none.sock"))
    with pytest.raises(DeliveryError, match=r"none\.sock"):
        missing.deliver(event())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]          # bound, never listening: refused
        refused = SyslogSink("s", transport="tcp", host="127.0.0.1", port=port, timeout=2)
        with pytest.raises(DeliveryError, match=f"tcp://127.0.0.1:{port}"):
            refused.deliver(event())
