"""The control server: the ``control`` worker that answers ``pharosd status``.

``ControlServer`` is a worker (``pharosd.worker``): one thread multiplexes
every client with ``selectors``, so a client that connects and never
writes, or never reads, only holds its own slot until its deadline.
Requests are bounded (``max_request`` bytes), so are concurrent clients
(``max_clients``; more are answered with an error and closed). The socket
is mode 0660 and group ``pharos`` when that group exists. Each connection's
peer credentials are read with ``SO_PEERCRED`` when it is accepted; commands
that change state check them (``pharosd.control.protocol.may_change``).

``{"cmd": "watch", "rule": GLOB}`` turns a connection into a watcher
(``pharosd.control.watch``): it is answered ``{"ok": true, "watching":
true}`` and then gets one line ``{"event": {...}}`` per alert event until it
closes; it has no deadline. ``publish`` is the bus subscriber that feeds
watchers; ``Connections.wake`` ends the selector's wait when events are queued
and when the worker is told to stop. ``first_bind`` is set once the first bind
was tried (bound or not): the daemon sends ``READY=1`` only after it, so
``pharosd status`` answers as soon as systemd reports the service started.

The ``state`` callable is called on the control thread, so it must be
thread-safe and quick; it returns a JSON-able dict with (all optional) keys
``config``, ``reload``, ``workers``, ``alerts``, ``sinks``, ``pipeline``,
``pid``, ``version``, ``started_at``. Times may be wall-clock seconds or
RFC 3339 strings.
"""

from __future__ import annotations

import contextlib
import grp
import json
import os
import selectors
import socket
import stat
import struct
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from pharosd.clock import Clock, SystemClock
from pharosd.connections import Connection, Connections
from pharosd.control.protocol import (
    SOCKET_GROUP,
    Command,
    ControlError,
    Peer,
    StateFn,
    answer,
    encode,
)
from pharosd.control.watch import Watcher, WatchHub
from pharosd.worker import IDLE_WAIT, WorkerContext

log = structlog.get_logger(__name__)

SOCKET_MODE = 0o660
MAX_REQUEST = 4096             # bytes of one request line
MAX_CLIENTS = 16               # connections served at once; more are refused
CLIENT_TIMEOUT = 2.0           # seconds a connection may take, all told
RETRY_BIND = 30.0              # seconds between attempts when the socket cannot be bound


@dataclass(eq=False)
class _Conn(Connection):
    answered: bool = False
    peer: Peer | None = None
    watcher: Watcher | None = None


_Table = Connections[_Conn]


_UCRED = struct.Struct("3i")


def peer_of(sock: socket.socket) -> Peer | None:
    """The credentials of the process at the other end of a unix socket, if known."""
    try:
        pid, uid, gid = _UCRED.unpack(
            sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
    except (OSError, struct.error):
        return None
    return Peer(pid, uid, gid)


class ControlServer:
    """The ``control`` worker: serves ``status`` on a unix stream socket."""

    name = "control"
    heartbeat_timeout = 10.0

    def __init__(self, path: str, state: StateFn, *, group: str | None = SOCKET_GROUP,
                 mode: int = SOCKET_MODE, client_timeout: float = CLIENT_TIMEOUT,
                 max_request: int = MAX_REQUEST, max_clients: int = MAX_CLIENTS,
                 tick: float = IDLE_WAIT, retry_bind: float = RETRY_BIND,
                 commands: Mapping[str, Command] | None = None,
                 clock: Clock | None = None) -> None:
        self.path = path
        self._clock: Clock = clock or SystemClock()
        self._state = state
        self._commands = dict(commands or {})
        self._group = group
        self._mode = mode
        self._client_timeout = client_timeout
        self._max_request = max_request
        self._max_clients = max_clients
        self._tick = tick
        self._retry_bind = retry_bind
        # Counters (monotonic; read by self-telemetry, never reset).
        self.served = 0          # requests answered with ok
        self.errors = 0          # requests answered with an error
        self.timeouts = 0        # connections closed at their deadline
        self.refused = 0         # connections refused because max_clients were busy
        self._bind_error: str | None = None
        self.first_bind = threading.Event()      # set once the first bind was tried
        self.watchers = WatchHub()
        self.publish = self.watchers.publish     # the bus subscriber

    # The listening socket lives only inside run(): a restarted worker binds anew.
    def run(self, ctx: WorkerContext) -> None:
        listener: socket.socket | None = None
        inode = 0
        while listener is None:
            ctx.beat()
            if ctx.stopping:
                return
            bound = self._bind()
            self.first_bind.set()
            if bound is None:
                # Keep beating while waiting: a missing socket is not a hung worker.
                retry_at = self._clock.monotonic() + self._retry_bind
                while not ctx.wait(min(self._tick, retry_at - self._clock.monotonic())):
                    ctx.beat()
                    if self._clock.monotonic() >= retry_at:
                        break
                continue
            listener, inode = bound
        table: _Table = Connections(listener, on_close=self._forget_watcher,
                                    on_wake=self._feed_watchers)
        try:
            self.watchers.set_waker(table.wake)
            ctx.on_stop(table.wake)
            while not ctx.stopping:
                ctx.beat()
                self._serve_once(table)
        finally:
            self.watchers.set_waker(lambda: None)
            table.close_all()
            listener.close()
            self._unlink_if_ours(inode)
            log.debug("control_socket_closed", path=self.path)

    def _bind(self) -> tuple[socket.socket, int] | None:
        """Bind and listen, or log why not (once per distinct reason) and return None."""
        try:
            parent = os.path.dirname(self.path) or "."
            os.makedirs(parent, mode=0o750, exist_ok=True)
            self._remove_stale()
            # Bind under a temporary name and rename once listening with the right
            # mode and group: the path never names a socket that refuses or is too open.
            tmp = self.path + ".new"
            with contextlib.suppress(FileNotFoundError):
                if stat.S_ISSOCK(os.lstat(tmp).st_mode):
                    os.unlink(tmp)          # left by a killed daemon
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.bind(tmp)
                try:
                    os.chmod(tmp, self._mode)
                    self._chgrp(tmp)
                    sock.listen(self._max_clients)
                    sock.setblocking(False)
                    inode = os.stat(tmp).st_ino
                    os.rename(tmp, self.path)
                except BaseException:
                    with contextlib.suppress(OSError):
                        os.unlink(tmp)
                    raise
            except BaseException:
                sock.close()
                raise
        except (OSError, ControlError) as exc:
            reason = str(exc)
            if reason != self._bind_error:
                log.error("control_socket_unavailable", path=self.path, error=reason,
                          retry_in=self._retry_bind)
                self._bind_error = reason
            return None
        self._bind_error = None
        log.info("control_socket_listening", path=self.path)
        return sock, inode

    def _remove_stale(self) -> None:
        """Remove a socket file no daemon answers on; refuse to steal a live one."""
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(st.st_mode):
            raise ControlError(f"{self.path} exists and is not a socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.settimeout(1.0)
        try:
            probe.connect(self.path)
        except (ConnectionRefusedError, FileNotFoundError):
            os.unlink(self.path)
            log.info("control_socket_stale_removed", path=self.path)
            return
        except OSError:
            pass
        finally:
            probe.close()
        raise ControlError(f"another process already listens on {self.path}")

    def _chgrp(self, path: str) -> None:
        if not self._group:
            return
        try:
            gid = grp.getgrnam(self._group).gr_gid
        except KeyError:
            return  # no such group here (a developer machine): mode alone applies
        if os.stat(path).st_gid == gid:
            return
        try:
            os.chown(path, -1, gid)
        except PermissionError as exc:
            log.warning("control_socket_chgrp_failed", path=path, group=self._group,
                        error=str(exc))

    def _unlink_if_ours(self, inode: int) -> None:
        with contextlib.suppress(OSError):
            if os.lstat(self.path).st_ino == inode:
                os.unlink(self.path)

    def _serve_once(self, table: _Table) -> None:
        for key, events in table.select(self._clock.monotonic(), self._tick):
            if key.data is None:
                self._accept(table)
                continue
            conn: _Conn = key.data
            if conn.watcher is not None:
                self._serve_watcher(table, conn, events)
            elif conn.draining:
                table.drain(conn)
            elif events & selectors.EVENT_READ and not conn.answered:
                self._read(table, conn)
            elif events & selectors.EVENT_WRITE:
                self._write(table, conn)
        for conn in table.expired(self._clock.monotonic()):
            if not conn.draining:
                self.timeouts += 1
                log.debug("control_client_timeout",
                          pending_bytes=len(conn.inbox) + len(conn.outbox))
            table.close(conn)

    def _accept(self, table: _Table) -> None:
        for sock in table.accept(self._max_clients, "control_accept_failed"):
            if len(table) >= self._max_clients:
                self.refused += 1
                with contextlib.suppress(OSError):
                    sock.send(encode({"ok": False, "error": "busy: too many clients"}))
                sock.close()
                continue
            table.add(_Conn(sock, self._clock.monotonic() + self._client_timeout,
                            peer=peer_of(sock)))

    def _read(self, table: _Table, conn: _Conn) -> None:
        try:
            data = conn.sock.recv(self._max_request + 1 - len(conn.inbox))
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            table.close(conn)
            return
        conn.inbox += data
        line, newline, _rest = bytes(conn.inbox).partition(b"\n")
        if newline or (not data and line.strip()):
            self._respond(table, conn, line)
        elif not data:
            table.close(conn)   # closed without asking anything
        elif len(conn.inbox) > self._max_request:
            self.errors += 1
            self._reply(table, conn, {"ok": False,
                                      "error": f"request longer than {self._max_request} bytes"})

    def _respond(self, table: _Table, conn: _Conn, line: bytes) -> None:
        is_watch, pattern = _watch_request(line)
        if is_watch:
            self._start_watch(table, conn, pattern)
            return
        try:
            response = answer(line, self._state, self._commands, conn.peer)
        except Exception as exc:
            log.error("control_state_failed", error=repr(exc), exc_info=True)
            response = {"ok": False, "error": f"state unavailable: {exc!r}"}
        if response.get("ok"):
            self.served += 1
        else:
            self.errors += 1
            log.warning("control_bad_request", error=str(response.get("error"))[:200])
        self._reply(table, conn, response)

    def _reply(self, table: _Table, conn: _Conn, response: Mapping[str, Any]) -> None:
        conn.answered = True
        conn.outbox = encode(response)
        table.want(conn, selectors.EVENT_WRITE)

    @staticmethod
    def _send(table: _Table, conn: _Conn) -> bool:
        """Send what the outbox holds; True once it is empty (False: later, or closed)."""
        try:
            sent = conn.sock.send(conn.outbox)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            table.close(conn)
            return False
        conn.outbox = conn.outbox[sent:]
        return not conn.outbox

    def _write(self, table: _Table, conn: _Conn) -> None:
        if self._send(table, conn):
            table.half_close(conn)

    # -- watchers --------------------------------------------------------------------

    def _start_watch(self, table: _Table, conn: _Conn, pattern: str | None) -> None:
        watcher = self.watchers.add(pattern)
        if watcher is None:
            self.errors += 1
            self._reply(table, conn, {"ok": False, "error": "busy: too many watchers"})
            return
        self.served += 1
        conn.watcher = watcher
        conn.answered = True
        conn.deadline = float("inf")
        conn.outbox = encode({"ok": True, "watching": True, "rule": pattern})
        table.want(conn, selectors.EVENT_READ | selectors.EVENT_WRITE)
        log.info("watcher_added", watcher=watcher.id, rule=pattern)

    def _feed_watchers(self, table: _Table) -> None:
        for conn in table:
            if conn.watcher is None:
                continue
            if conn.outbox and not conn.watcher.dropped:
                continue                  # still writing; its queue fills or waits
            self._feed(table, conn)

    def _feed(self, table: _Table, conn: _Conn) -> None:
        """Move the watcher's queued events to its outbox; end a watcher that fell behind."""
        assert conn.watcher is not None
        data, dropped = self.watchers.take(conn.watcher)
        if dropped:
            with contextlib.suppress(OSError):
                conn.sock.send(encode({"ok": False, "error": "dropped: too slow"}))
            table.close(conn)
        elif data:
            conn.outbox += data
            table.want(conn, selectors.EVENT_READ | selectors.EVENT_WRITE)

    def _serve_watcher(self, table: _Table, conn: _Conn, events: int) -> None:
        if events & selectors.EVENT_READ:
            try:
                data = conn.sock.recv(4096)
            except (BlockingIOError, InterruptedError):
                data = b"-"
            except OSError:
                data = b""
            if not data:                  # the client went: the subscription ends
                table.close(conn)
                return
        if events & selectors.EVENT_WRITE and conn.outbox and self._send(table, conn):
            table.want(conn, selectors.EVENT_READ)
            assert conn.watcher is not None
            if conn.watcher.queue:        # more arrived meanwhile
                self._feed(table, conn)

    def _forget_watcher(self, conn: _Conn) -> None:
        """``Connections``' on_close: a closing watcher leaves the hub."""
        if conn.watcher is not None:
            self.watchers.remove(conn.watcher)
            log.info("watcher_removed", watcher=conn.watcher.id, sent=conn.watcher.sent)
            conn.watcher = None


def _watch_request(line: bytes) -> tuple[bool, str | None]:
    """Whether ``line`` asks to watch, and its ``rule`` glob (None: every rule)."""
    try:
        req = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):   # answer() says what is wrong
        return False, None
    if not isinstance(req, dict) or req.get("cmd") != "watch":
        return False, None
    rule = req.get("rule")
    return True, (str(rule) if rule else None)
