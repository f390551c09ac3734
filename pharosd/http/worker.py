"""The ``http`` worker: one selector thread serving every connection of the listener.

Bounded by design (not ``http.server.ThreadingHTTPServer``, which starts a
thread per connection): one thread multiplexes at most ``max_connections``
connections; more are refused at once (a short 503 on plain HTTP, a close
on TLS) and counted. Each connection has one deadline, ``timeout`` from
its start and again after each answer, for the whole request head, the
TLS handshake, a slow reader and an idle keep-alive alike, so a client that
sends one byte a second (slowloris) is closed at its deadline however it
trickles. A request head is at most ``protocol.MAX_HEAD`` bytes. Answers
are rendered on this thread from data other workers keep up to date, so
nothing here can stall collection or alerting. The deadlines, accepting and
the half-close at the end are ``pharosd.connections``' (as the control
server's); TLS and HTTP are this module's.

``open_listener(cfg)`` binds the socket and reads the TLS files and the
password before anything runs, so a port in use or an unreadable file is an
error of the config (``ListenerError`` names the key), at start and on
reload. ``HttpWorker.reconfigure(listener)`` swaps TLS and auth in place when
the address is unchanged; the daemon replaces the worker when it changes.
"""

from __future__ import annotations

import contextlib
import errno
import selectors
import socket
import ssl
from dataclasses import dataclass, field
from typing import Any

import structlog

from pharosd.clock import Clock, SystemClock
from pharosd.connections import Connection, Connections
from pharosd.errors import PharosError
from pharosd.http.config import HttpConfig, is_loopback, split_listen
from pharosd.http.protocol import (
    HttpError,
    Reply,
    check_partial,
    encode_reply,
    error_reply,
    head_end,
    parse_head,
)
from pharosd.http.routes import View, credentials_ok, route, unauthorized
from pharosd.worker import IDLE_WAIT, WorkerContext

log = structlog.get_logger(__name__)

TICK = IDLE_WAIT       # the longest an idle listener waits (a stop wakes it)
DRAIN = 1.0            # seconds to read a client's leftovers after a closing answer
BACKLOG = 128
ACCEPT_BURST = 64


class ListenerError(PharosError):
    """The listener cannot be opened; ``key`` is the config key to blame (``http.listen``)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


@dataclass
class Listener:
    """A bound, listening socket and how to serve it."""

    sock: socket.socket
    address: tuple[str, int]
    tls: ssl.SSLContext | None
    username: str | None
    password: str | None = field(repr=False)
    cfg: HttpConfig

    def close(self) -> None:
        self.sock.close()


def _read_password(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().rstrip("\r\n")
    except OSError as exc:
        raise ListenerError("http.basic_auth.password_file",
                            f"cannot read the password file {path}: {exc.strerror or exc}"
                            ) from None


def _tls_context(cfg: HttpConfig) -> ssl.SSLContext | None:
    if cfg.tls is None:
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(cfg.tls.cert_file, cfg.tls.key_file)
    except FileNotFoundError as exc:
        raise ListenerError("http.tls", f"cannot read {exc.filename}: {exc.strerror}") from None
    except (OSError, ssl.SSLError) as exc:
        raise ListenerError("http.tls.cert_file", f"cannot load the certificate "
                            f"{cfg.tls.cert_file} with key {cfg.tls.key_file}: {exc}") from None
    return ctx


def bind(address: tuple[str, int]) -> socket.socket:
    """A non-blocking listening socket on ``address``; raises ``ListenerError``."""
    host, port = address
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ListenerError("http.listen", f"cannot resolve {host!r}: {exc.strerror}") from None
    family, _, _, _, sockaddr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(sockaddr)
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        what = "already in use" if exc.errno == errno.EADDRINUSE else exc.strerror or str(exc)
        raise ListenerError("http.listen", f"cannot listen on {host}:{port}: {what}") from None
    return sock


def open_listener(cfg: HttpConfig, sock: socket.socket | None = None) -> Listener:
    """Read the TLS files and the password, then bind (or keep ``sock``, already bound to
    the same address); raises ``ListenerError``."""
    assert cfg.listen is not None
    address = split_listen(cfg.listen)
    tls = _tls_context(cfg)
    auth = cfg.basic_auth
    password = _read_password(auth.password_file) if auth is not None else None
    if sock is None:
        sock = bind(address)
    return Listener(sock, address, tls, auth.username if auth else None, password, cfg)


def exposure_warning(cfg: HttpConfig) -> str | None:
    """Why a listener is open to others without protection, or None."""
    if cfg.listen is None:
        return None
    host, _ = split_listen(cfg.listen)
    if is_loopback(host) or (cfg.tls is not None and cfg.basic_auth is not None):
        return None
    missing = [w for w, c in (("TLS", cfg.tls), ("basic auth", cfg.basic_auth)) if c is None]
    return f"listening on {cfg.listen}, beyond this host, without {' or '.join(missing)}"


@dataclass(eq=False)
class _Conn(Connection):
    handshaking: bool = False
    close_after: bool = False
    answered: int = 0          # requests answered on this connection


_Table = Connections[_Conn]


def _wants(exc: OSError, tls: bool) -> int | None:
    """What a non-blocking ``recv``/``send`` that raised ``exc`` waits for: 0 (try again
    on the same readiness), ``EVENT_READ``/``EVENT_WRITE`` (TLS wants the other
    direction first), or None (the connection is broken). ``ssl``'s classes are looked
    at only on a TLS listener, so a plain one never loads OpenSSL."""
    if isinstance(exc, BlockingIOError | InterruptedError):
        return 0
    if tls:
        if isinstance(exc, ssl.SSLWantReadError):
            return selectors.EVENT_READ
        if isinstance(exc, ssl.SSLWantWriteError):
            return selectors.EVENT_WRITE
    return None


class HttpWorker:
    """The ``http`` worker; see the module docstring."""

    name = "http"
    heartbeat_timeout = 10.0

    def __init__(self, listener: Listener, view: View, *, tick: float = TICK,
                 clock: Clock | None = None) -> None:
        self._clock: Clock = clock or SystemClock()
        self._listener = listener
        self._view = view
        self._tick = tick
        # Counters (monotonic, never reset; read by /metrics and status).
        self.requests: dict[int, int] = {}
        self.refused = 0        # connections over max_connections
        self.timeouts = 0       # connections closed at their deadline, not idle keep-alives
        self.tls_errors = 0     # failed handshakes
        self.open = 0           # connections now

    @property
    def address(self) -> tuple[str, int]:
        return self._listener.address

    @property
    def cfg(self) -> HttpConfig:
        return self._listener.cfg

    @property
    def listening_socket(self) -> socket.socket:
        return self._listener.sock

    def reconfigure(self, listener: Listener) -> None:
        """Take TLS, auth and limits from ``listener``, opened on this worker's socket."""
        assert listener.sock is self._listener.sock
        self._listener = listener

    def close(self) -> None:
        self._listener.close()

    def status(self) -> dict[str, Any]:
        return {"listen": self.cfg.listen, "tls": self.cfg.tls is not None,
                "basic_auth": self.cfg.basic_auth is not None, "open": self.open,
                "requests": sum(self.requests.values()), "refused": self.refused,
                "timeouts": self.timeouts, "tls_errors": self.tls_errors}

    # -- the thread ------------------------------------------------------------

    def run(self, ctx: WorkerContext) -> None:
        table: _Table = Connections(self._listener.sock)
        log.info("http_listening", listen=self.cfg.listen, tls=self.cfg.tls is not None,
                 basic_auth=self.cfg.basic_auth is not None)
        ctx.on_stop(table.wake)
        try:
            while not ctx.stopping:
                ctx.beat()
                self._serve_once(table)
        finally:
            table.close_all()
            self.open = 0

    def _serve_once(self, table: _Table) -> None:
        for key, events in table.select(self._clock.monotonic(), self._tick):
            if key.data is None:
                self._accept(table)
                continue
            conn: _Conn = key.data
            if conn.sock.fileno() < 0:
                continue
            if conn.draining:
                table.drain(conn)
            elif conn.handshaking:
                self._handshake(table, conn)
            elif events & selectors.EVENT_WRITE and conn.outbox:
                self._write(table, conn)
            elif events & selectors.EVENT_READ:
                self._read(table, conn)
        for conn in table.expired(self._clock.monotonic()):
            if not conn.draining and (not conn.answered or conn.inbox or conn.outbox):
                self.timeouts += 1      # not an idle keep-alive: a slow or silent client
            table.close(conn)
        self.open = len(table)

    def _accept(self, table: _Table) -> None:
        lst = self._listener
        for sock in table.accept(ACCEPT_BURST, "http_accept_failed"):
            if len(table) >= lst.cfg.max_connections:
                self.refused += 1
                if lst.tls is None:
                    with contextlib.suppress(OSError):
                        sock.send(encode_reply(error_reply(503, "busy: too many connections"),
                                               head_only=False, keep_alive=False))
                sock.close()
                continue
            conn = _Conn(sock, self._clock.monotonic() + float(lst.cfg.timeout))
            if lst.tls is not None:
                try:
                    conn.sock = lst.tls.wrap_socket(sock, server_side=True,
                                                    do_handshake_on_connect=False)
                except OSError:             # ssl.SSLError is an OSError
                    self.tls_errors += 1
                    sock.close()
                    continue
                conn.handshaking = True
            table.add(conn)

    def _handshake(self, table: _Table, conn: _Conn) -> None:
        sock = conn.sock
        assert isinstance(sock, ssl.SSLSocket)
        try:
            sock.do_handshake()
        except ssl.SSLWantReadError:
            table.want(conn, selectors.EVENT_READ)
            return
        except ssl.SSLWantWriteError:
            table.want(conn, selectors.EVENT_WRITE)
            return
        except (OSError, ssl.SSLError) as exc:
            self.tls_errors += 1
            log.debug("http_tls_handshake_failed", error=str(exc))
            table.close(conn)
            return
        conn.handshaking = False
        table.want(conn, selectors.EVENT_READ)

    def _read(self, table: _Table, conn: _Conn) -> None:
        tls = self._listener.tls is not None
        try:
            data = conn.sock.recv(16384)
            while tls and conn.sock.pending():          # type: ignore[attr-defined]
                data += conn.sock.recv(16384)
        except OSError as exc:
            wait = _wants(exc, tls)
            if wait == selectors.EVENT_WRITE:
                table.want(conn, wait)
            elif wait is None:
                table.close(conn)
            return
        if not data:
            table.close(conn)
            return
        conn.inbox += data
        self._maybe_answer(table, conn)

    def _maybe_answer(self, table: _Table, conn: _Conn) -> None:
        end = head_end(conn.inbox)
        try:
            if end < 0:
                check_partial(conn.inbox)
                return
            head = bytes(conn.inbox[:end])
            del conn.inbox[:end]
            request = parse_head(head)
        except HttpError as exc:
            self._count(exc.status)
            conn.inbox.clear()
            self._reply(table, conn, encode_reply(error_reply(exc.status, str(exc)),
                                                  head_only=False, keep_alive=False),
                        close=True)
            return
        reply = self._answer(request)
        self._count(reply.status)
        conn.answered += 1
        keep = request.keep_alive
        self._reply(table, conn, encode_reply(reply, head_only=request.method == "HEAD",
                                              keep_alive=keep), close=not keep)

    def _answer(self, request: Any) -> Reply:
        lst = self._listener
        if lst.username is not None and not credentials_ok(
                request.headers.get("authorization"), lst.username, lst.password or ""):
            return unauthorized()
        try:
            return route(request, self._view)
        except Exception as exc:
            log.error("http_handler_failed", path=request.path[:200], error=repr(exc),
                      exc_info=True)
            return error_reply(500, "internal error; see the daemon's log")

    def _count(self, status: int) -> None:
        self.requests[status] = self.requests.get(status, 0) + 1

    def _reply(self, table: _Table, conn: _Conn, data: bytes, *,
               close: bool) -> None:
        conn.outbox = data
        conn.close_after = close
        conn.deadline = self._clock.monotonic() + float(self._listener.cfg.timeout)
        table.want(conn, selectors.EVENT_WRITE)

    def _write(self, table: _Table, conn: _Conn) -> None:
        try:
            sent = conn.sock.send(conn.outbox)
        except OSError as exc:
            wait = _wants(exc, self._listener.tls is not None)
            if wait == selectors.EVENT_READ:
                table.want(conn, wait)
            elif wait is None:
                table.close(conn)
            return
        conn.outbox = conn.outbox[sent:]
        if conn.outbox:
            table.want(conn, selectors.EVENT_WRITE)
            return
        if conn.close_after:
            self._finish(table, conn)
            return
        conn.deadline = self._clock.monotonic() + float(self._listener.cfg.timeout)
        table.want(conn, selectors.EVENT_READ)
        if conn.inbox:                 # a pipelined request already arrived
            self._maybe_answer(table, conn)

    def _finish(self, table: _Table, conn: _Conn) -> None:
        """Half-close and read the client's leftovers, so it sees our answer, not a reset."""
        if self._listener.tls is not None:
            table.close(conn)
            return
        table.half_close(conn, self._clock.monotonic() + DRAIN)
