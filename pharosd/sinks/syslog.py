"""The syslog sink: RFC 5424 or RFC 3164 messages over a unix socket, UDP or TCP.

The formatters are pure functions of an event (``format_rfc5424``,
``format_rfc3164``, ``frame_octet_counting``); ``SyslogSink`` only moves
bytes. Severity comes from the event (critical: crit, warning: warning,
info: info, any resolved event: notice). RFC 5424 messages carry the
structured data element ``[pharos@32473 rule=".." status=".." level=".."
value=".." limit=".." ...]`` with app-name ``pharosd``, procid = the pid and
msgid ``ALERT``.

Over the unix socket an RFC 3164 message has no HOSTNAME, like syslog(3)'s.

Transports: ``unix`` connects to a datagram socket (``/dev/log``) and falls
back to a stream socket (one message per line); ``udp`` sends one datagram
per message (fire and forget: a lost datagram is not noticed); ``tcp``
keeps one connection and frames messages with octet counting (RFC 6587).
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from pharosd.errors import DeliveryError
from pharosd.model import AlertEvent, rfc3339

FACILITIES = {
    "kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6,
    "news": 7, "uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11,
    "local0": 16, "local1": 17, "local2": 18, "local3": 19, "local4": 20, "local5": 21,
    "local6": 22, "local7": 23,
}
SEVERITIES = {"emerg": 0, "alert": 1, "crit": 2, "err": 3, "warning": 4, "notice": 5,
              "info": 6, "debug": 7}
_LEVEL_SEVERITY = {"critical": "crit", "warning": "warning", "info": "info"}

SD_ID = "pharos@32473"
APP_NAME = "pharosd"
MSGID = "ALERT"
MAX_5424 = 8000         # bytes: below rsyslog's default maxMessageSize (8k)
MAX_3164 = 1024         # bytes: RFC 3164 section 4.1
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def severity_name(event: AlertEvent) -> str:
    if event.status == "resolved":
        return "notice"
    return _LEVEL_SEVERITY.get(event.level, "warning")


def priority(facility: str, event: AlertEvent) -> int:
    return FACILITIES[facility] * 8 + SEVERITIES[severity_name(event)]


def sd_escape(value: str) -> str:
    """RFC 5424 PARAM-VALUE escaping: ``"``, ``\\`` and ``]`` get a backslash."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def format_number(v: float | None) -> str:
    """A sample value as people read it: ``90``, ``93.25``, ``1e+20``."""
    if v is None or v != v:
        return ""
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    return repr(round(v, 6))


def structured_data(event: AlertEvent) -> str:
    params = [("rule", event.rule), ("status", event.status), ("level", event.level),
              ("value", format_number(event.value)), ("limit", format_number(event.limit)),
              ("metric", event.metric), ("fingerprint", event.fingerprint), ("id", event.id)]
    body = " ".join(f'{k}="{sd_escape(_clean(v))}"' for k, v in params)
    return f"[{SD_ID} {body}]"


def message_text(event: AlertEvent) -> str:
    """The human part: ``memory-high firing (critical): memory.used_percent is 93 ...``."""
    return _clean(f"{event.rule} {event.status} ({event.level}): {event.summary}")


def format_rfc5424(event: AlertEvent, *, facility: str, hostname: str, procid: int | str,
                   app_name: str = APP_NAME, msgid: str = MSGID,
                   max_bytes: int = MAX_5424) -> bytes:
    """``<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD MSG`` (RFC 5424)."""
    header = " ".join((
        f"<{priority(facility, event)}>1",
        rfc3339(event.at),
        _token(hostname, 255),
        _token(app_name, 48),
        _token(str(procid), 128),
        _token(msgid, 32),
        structured_data(event),
    ))
    return _truncate(header.encode(), message_text(event), max_bytes)


def format_rfc3164(event: AlertEvent, *, facility: str, hostname: str | None,
                   procid: int | str, tag: str = APP_NAME, max_bytes: int = MAX_3164,
                   localtime: Callable[[float], time.struct_time] = time.localtime) -> bytes:
    """``<PRI>Mmm dd hh:mm:ss HOSTNAME TAG[PID]: MSG`` (RFC 3164, local time).

    ``hostname=None`` leaves the HOSTNAME out, as syslog(3) does on the local
    socket (the local daemon adds its own; it would read ours as the tag).
    """
    t = localtime(event.at)
    stamp = f"{_MONTHS[t.tm_mon - 1]} {t.tm_mday:2d} {t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
    host = "" if hostname is None else " " + _token(hostname, 255)
    header = f"<{priority(facility, event)}>{stamp}{host} {_token(tag, 32)}[{procid}]:"
    return _truncate(header.encode(), message_text(event), max_bytes)


def frame_octet_counting(message: bytes) -> bytes:
    """RFC 6587 octet-counting framing: ``LEN SP MSG``."""
    return str(len(message)).encode() + b" " + message


def _clean(text: str) -> str:
    """No control characters (a newline would split the message on some transports)."""
    return "".join(" " if (ord(c) < 32 or ord(c) == 127) else c for c in text)


def _token(text: str, limit: int) -> str:
    """A header field: printable US-ASCII without spaces, at most ``limit``; else ``-``."""
    out = "".join(c if 33 <= ord(c) <= 126 else "_" for c in text)[:limit]
    return out or "-"


def _truncate(header: bytes, msg: str, max_bytes: int) -> bytes:
    room = max(0, max_bytes - len(header) - 1)
    body = msg.encode()
    if len(body) > room:
        body = body[:room].decode("utf-8", "ignore").encode()
    return header + b" " + body


class SyslogSink:
    """Formats and sends one syslog message per event."""

    def __init__(self, name: str, *, transport: str = "unix", socket_path: str = "/dev/log",
                 host: str | None = None, port: int = 514, fmt: str = "rfc5424",
                 facility: str = "daemon", hostname: str = "localhost",
                 timeout: float = 5.0) -> None:
        if facility not in FACILITIES:
            raise ValueError(f"unknown syslog facility {facility!r}")
        self.name = name
        self.transport = transport
        self.socket_path = socket_path
        self.host = host
        self.port = port
        self.fmt = fmt
        self.facility = facility
        self.hostname = hostname
        self.timeout = timeout
        self.blocking_timeout = 2 * timeout + 1.0
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._stream = False
        self._udp_addr: Any = None

    def format(self, event: AlertEvent) -> bytes:
        if self.fmt == "rfc3164":
            local = self.transport == "unix"
            return format_rfc3164(event, facility=self.facility,
                                  hostname=None if local else self.hostname,
                                  procid=os.getpid())
        return format_rfc5424(event, facility=self.facility, hostname=self.hostname,
                              procid=os.getpid())

    def deliver(self, event: AlertEvent) -> None:
        message = self.format(event)
        with self._lock:
            try:
                self._send(message)
            except OSError:
                self._close()
                try:
                    self._send(message)  # once more on a fresh socket
                except OSError as e:
                    self._close()
                    raise DeliveryError(f"syslog {self._where()}: {e.strerror or e}") from e

    def reopen(self) -> None:
        with self._lock:
            self._close()

    def close(self) -> None:
        with self._lock:
            self._close()

    # -- transports -------------------------------------------------------------

    def _where(self) -> str:
        if self.transport == "unix":
            return self.socket_path
        return f"{self.transport}://{self.host}:{self.port}"

    def _send(self, message: bytes) -> None:
        if self.transport == "udp":
            self._send_udp(message)
            return
        sock = self._connect()
        if self.transport == "tcp":
            sock.sendall(frame_octet_counting(message))
        elif self._stream:
            sock.sendall(message + b"\n")
        else:
            sock.send(message)

    def _send_udp(self, message: bytes) -> None:
        if self._sock is None:
            infos = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_DGRAM)
            family, stype, proto, _, addr = infos[0]
            sock = socket.socket(family, stype, proto)
            sock.settimeout(self.timeout)
            self._sock = sock
            self._udp_addr = addr
        self._sock.sendto(message, self._udp_addr)

    def _connect(self) -> socket.socket:
        if self._sock is not None and self._stream and _peer_closed(self._sock):
            self._close()
        if self._sock is not None:
            return self._sock
        if self.transport == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sock.settimeout(self.timeout)
            try:
                sock.connect(self.socket_path)
                self._stream = False
            except OSError as e:
                sock.close()
                if e.errno != errno.EPROTOTYPE:
                    raise
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(self.timeout)
                try:
                    sock.connect(self.socket_path)
                except OSError:
                    sock.close()
                    raise
                self._stream = True
        else:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
            self._stream = True
        self._sock = sock
        return sock

    def _close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None


def _peer_closed(sock: socket.socket) -> bool:
    """True if a stream peer has hung up (readable with EOF), so we reconnect
    before writing into a dead connection."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            return False
        data = sock.recv(4096, socket.MSG_DONTWAIT | socket.MSG_PEEK)
        return data == b""
    except BlockingIOError:
        return False
    except OSError:
        return True
