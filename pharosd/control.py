"""The control socket: ``pharosd status`` asks the running daemon for its state.

Owns both ends of one tiny protocol over a unix stream socket
(``<RUNTIME_DIRECTORY>/control.sock``, else ``/run/pharos/control.sock``;
see ``default_socket_path`` for a daemon run by hand as a user):
the client sends one JSON line ``{"cmd": "status"}`` and the daemon answers
one JSON line ``{"ok": true, "state": {...}}`` (or ``{"ok": false, "error":
"..."}``), then closes the connection.

* ``ControlServer`` is a worker (``pharosd.worker``): one thread multiplexes
  every client with ``selectors``, so a client that connects and never
  writes, or never reads, only holds its own slot until its deadline.
  Requests are bounded (``max_request`` bytes), so are concurrent clients
  (``max_clients``; more are answered with an error and closed). The socket
  is mode 0660 and group ``pharos`` when that group exists.
* ``query_status`` / ``render_status`` / ``status_main`` are the client:
  ``pharosd status [--json] [--socket PATH]`` prints a table (or the JSON
  state) and exits 0, or exits 3 (LSB "program is not running") when no
  daemon answers, or 1 when it could not ask (permission, timeout, bad
  answer).

The ``state`` callable is called on the control thread, so it must be
thread-safe and quick; it returns a JSON-able dict with (all optional) keys
``config``, ``reload``, ``workers``, ``alerts``, ``sinks``, ``pipeline``,
``pid``, ``version``, ``started_at``. Times may be wall-clock seconds or
RFC 3339 strings.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import grp
import json
import os
import selectors
import socket
import stat
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

import structlog

from pharosd.errors import PharosError
from pharosd.model import parse_rfc3339, rfc3339
from pharosd.worker import WorkerContext

log = structlog.get_logger(__name__)

SOCKET_NAME = "control.sock"
SYSTEM_RUNTIME_DIR = "/run/pharos"
SOCKET_GROUP = "pharos"
SOCKET_MODE = 0o660

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_NOT_RUNNING = 3   # LSB init-script "program is not running"

MAX_REQUEST = 4096             # bytes of one request line
MAX_RESPONSE = 16 * 1024 * 1024  # bytes the client accepts
MAX_CLIENTS = 16               # connections served at once; more are refused
CLIENT_TIMEOUT = 2.0           # seconds a connection may take, all told
RETRY_BIND = 30.0              # seconds between attempts when the socket cannot be bound

StateFn = Callable[[], Mapping[str, Any]]


class ControlError(PharosError):
    """``pharosd status`` could not get an answer from the daemon."""


class NotRunning(ControlError):
    """No daemon listens on the control socket (missing or refused)."""


# -- paths --------------------------------------------------------------------


def default_socket_path(environ: Mapping[str, str] | None = None,
                        state_dir: str | None = None) -> str:
    """Where the daemon binds: ``$RUNTIME_DIRECTORY`` (systemd), else
    /run/pharos as root; not root: ``$XDG_RUNTIME_DIR/pharos``, else
    ``state_dir``, else /run/pharos."""
    env = os.environ if environ is None else environ
    runtime = env.get("RUNTIME_DIRECTORY")
    if runtime:
        return os.path.join(runtime.split(":")[0], SOCKET_NAME)
    if os.geteuid() != 0:
        xdg = env.get("XDG_RUNTIME_DIR")
        if xdg:
            return os.path.join(xdg, "pharos", SOCKET_NAME)
        if state_dir:
            return os.path.join(state_dir, SOCKET_NAME)
    return os.path.join(SYSTEM_RUNTIME_DIR, SOCKET_NAME)


def find_socket(environ: Mapping[str, str] | None = None,
                state_dir: str | None = None) -> str:
    """Where a client looks: the first of $RUNTIME_DIRECTORY, /run/pharos,
    $XDG_RUNTIME_DIR/pharos and ``state_dir`` that holds a socket, else the
    daemon's default."""
    env = os.environ if environ is None else environ
    dirs = [env.get("RUNTIME_DIRECTORY", "").split(":")[0], SYSTEM_RUNTIME_DIR]
    if env.get("XDG_RUNTIME_DIR"):
        dirs.append(os.path.join(env["XDG_RUNTIME_DIR"], "pharos"))
    dirs.append(state_dir or "")
    for d in dirs:
        if not d:
            continue
        path = os.path.join(d, SOCKET_NAME)
        with contextlib.suppress(OSError):
            if stat.S_ISSOCK(os.stat(path).st_mode):
                return path
    return default_socket_path(env, state_dir)


# -- protocol (pure) --------------------------------------------------------------


def encode(obj: Mapping[str, Any]) -> bytes:
    """One JSON line; anything not JSON-able becomes its ``str``."""
    return (json.dumps(obj, separators=(",", ":"), default=str) + "\n").encode()


def answer(request: bytes, state: StateFn) -> dict[str, Any]:
    """The response object for one raw request line."""
    try:
        req = json.loads(request.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        return {"ok": False, "error": f"expected one JSON object per line: {exc}"}
    except RecursionError:      # [[[[...]]]] thousands deep: the parser recurses
        return {"ok": False, "error": "expected one JSON object per line: nested too deeply"}
    if not isinstance(req, dict):
        return {"ok": False, "error": f"expected a JSON object, got {type(req).__name__}"}
    cmd = req.get("cmd")
    if cmd == "status":
        return {"ok": True, "state": dict(state())}
    return {"ok": False, "error": f"unknown cmd {cmd!r}: expected 'status'"}


# -- server -------------------------------------------------------------------------


@dataclass
class _Conn:
    sock: socket.socket
    deadline: float
    inbox: bytearray = field(default_factory=bytearray)
    outbox: bytes = b""
    answered: bool = False
    draining: bool = False   # answered and half-closed; reading the client's leftovers


class ControlServer:
    """The ``control`` worker: serves ``status`` on a unix stream socket."""

    name = "control"
    heartbeat_timeout = 10.0

    def __init__(self, path: str, state: StateFn, *, group: str | None = SOCKET_GROUP,
                 mode: int = SOCKET_MODE, client_timeout: float = CLIENT_TIMEOUT,
                 max_request: int = MAX_REQUEST, max_clients: int = MAX_CLIENTS,
                 tick: float = 0.5, retry_bind: float = RETRY_BIND) -> None:
        self.path = path
        self._state = state
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

    # The listening socket lives only inside run(): a restarted worker binds anew.
    def run(self, ctx: WorkerContext) -> None:
        listener: socket.socket | None = None
        inode = 0
        while listener is None:
            ctx.beat()
            if ctx.stopping:
                return
            bound = self._bind()
            if bound is None:
                # Keep beating while waiting: a missing socket is not a hung worker.
                retry_at = time.monotonic() + self._retry_bind
                while not ctx.wait(min(self._tick, retry_at - time.monotonic())):
                    ctx.beat()
                    if time.monotonic() >= retry_at:
                        break
                continue
            listener, inode = bound
        sel = selectors.DefaultSelector()
        conns: dict[int, _Conn] = {}
        try:
            sel.register(listener, selectors.EVENT_READ, None)
            while not ctx.stopping:
                ctx.beat()
                self._serve_once(sel, listener, conns)
        finally:
            for conn in list(conns.values()):
                self._close(sel, conns, conn)
            sel.close()
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

    def _serve_once(self, sel: selectors.BaseSelector, listener: socket.socket,
                    conns: dict[int, _Conn]) -> None:
        now = time.monotonic()
        timeout = self._tick
        if conns:
            timeout = min(timeout, max(0.0, min(c.deadline for c in conns.values()) - now))
        for key, events in sel.select(timeout):
            if key.data is None:
                self._accept(sel, listener, conns)
                continue
            conn: _Conn = key.data
            if conn.draining:
                self._drain(sel, conns, conn)
            elif events & selectors.EVENT_READ and not conn.answered:
                self._read(sel, conns, conn)
            elif events & selectors.EVENT_WRITE:
                self._write(sel, conns, conn)
        now = time.monotonic()
        for conn in [c for c in conns.values() if c.deadline <= now]:
            if not conn.draining:
                self.timeouts += 1
                log.debug("control_client_timeout",
                          pending_bytes=len(conn.inbox) + len(conn.outbox))
            self._close(sel, conns, conn)

    def _accept(self, sel: selectors.BaseSelector, listener: socket.socket,
                conns: dict[int, _Conn]) -> None:
        for _ in range(self._max_clients):
            try:
                sock, _addr = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("control_accept_failed", error=str(exc))
                return
            sock.setblocking(False)
            if len(conns) >= self._max_clients:
                self.refused += 1
                with contextlib.suppress(OSError):
                    sock.send(encode({"ok": False, "error": "busy: too many clients"}))
                sock.close()
                continue
            conn = _Conn(sock, time.monotonic() + self._client_timeout)
            conns[sock.fileno()] = conn
            sel.register(sock, selectors.EVENT_READ, conn)

    def _read(self, sel: selectors.BaseSelector, conns: dict[int, _Conn], conn: _Conn) -> None:
        try:
            data = conn.sock.recv(self._max_request + 1 - len(conn.inbox))
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(sel, conns, conn)
            return
        conn.inbox += data
        line, newline, _rest = bytes(conn.inbox).partition(b"\n")
        if newline or (not data and line.strip()):
            self._respond(sel, conn, line)
        elif not data:
            self._close(sel, conns, conn)   # closed without asking anything
        elif len(conn.inbox) > self._max_request:
            self.errors += 1
            self._reply(sel, conn, {"ok": False,
                                    "error": f"request longer than {self._max_request} bytes"})

    def _respond(self, sel: selectors.BaseSelector, conn: _Conn, line: bytes) -> None:
        try:
            response = answer(line, self._state)
        except Exception as exc:
            log.error("control_state_failed", error=repr(exc), exc_info=True)
            response = {"ok": False, "error": f"state unavailable: {exc!r}"}
        if response.get("ok"):
            self.served += 1
        else:
            self.errors += 1
            log.warning("control_bad_request", error=str(response.get("error"))[:200])
        self._reply(sel, conn, response)

    def _reply(self, sel: selectors.BaseSelector, conn: _Conn, response: Mapping[str, Any]) -> None:
        conn.answered = True
        conn.outbox = encode(response)
        sel.modify(conn.sock, selectors.EVENT_WRITE, conn)

    def _write(self, sel: selectors.BaseSelector, conns: dict[int, _Conn], conn: _Conn) -> None:
        try:
            sent = conn.sock.send(conn.outbox)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(sel, conns, conn)
            return
        conn.outbox = conn.outbox[sent:]
        if conn.outbox:
            return
        # Closing a unix socket that still holds unread bytes resets the peer
        # before it reads our answer: half-close, then read until its EOF.
        try:
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._close(sel, conns, conn)
            return
        conn.draining = True
        sel.modify(conn.sock, selectors.EVENT_READ, conn)

    def _drain(self, sel: selectors.BaseSelector, conns: dict[int, _Conn], conn: _Conn) -> None:
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._close(sel, conns, conn)

    @staticmethod
    def _close(sel: selectors.BaseSelector, conns: dict[int, _Conn], conn: _Conn) -> None:
        conns.pop(conn.sock.fileno(), None)
        with contextlib.suppress(KeyError, ValueError):
            sel.unregister(conn.sock)
        conn.sock.close()


# -- client -------------------------------------------------------------------------


def query_status(path: str, timeout: float = 5.0) -> dict[str, Any]:
    """Ask the daemon at ``path`` for its state.

    Raises ``NotRunning`` when nothing listens there (no socket file, or a
    stale one) and ``ControlError`` for every other failure.
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    deadline = time.monotonic() + timeout
    try:
        try:
            sock.connect(path)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise NotRunning(f"pharosd is not running: nothing listens on {path} "
                             f"({exc.strerror or exc})") from exc
        except PermissionError as exc:
            raise ControlError(f"permission denied on {path}: run as root or as a member "
                               f"of group {SOCKET_GROUP}") from exc
        except OSError as exc:
            if exc.errno in (errno.ENOTDIR, errno.ENOTSOCK, errno.ECONNREFUSED):
                raise NotRunning(f"pharosd is not running: nothing listens on {path} "
                                 f"({exc.strerror or exc})") from exc
            raise ControlError(f"cannot connect to {path}: {exc}") from exc
        try:
            # A busy daemon may answer and close before reading: read its answer anyway.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                sock.sendall(encode({"cmd": "status"}))
            data = _read_line(sock, deadline)
        except TimeoutError as exc:
            raise ControlError(f"pharosd did not answer on {path} within {timeout:g}s") from exc
        except OSError as exc:
            raise ControlError(f"lost the connection to {path}: {exc}") from exc
    finally:
        sock.close()
    try:
        response = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ControlError(f"pharosd sent an answer that is not JSON: {exc}") from exc
    if not isinstance(response, dict):
        raise ControlError(f"pharosd sent a {type(response).__name__}, expected an object")
    if not response.get("ok"):
        raise ControlError(f"pharosd refused: {response.get('error', 'no reason given')}")
    state = response.get("state")
    if not isinstance(state, dict):
        raise ControlError("pharosd answered without a state object")
    return state


def _read_line(sock: socket.socket, deadline: float) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        sock.settimeout(remaining)
        chunk = sock.recv(65536)
        if not chunk:
            break
        nl = chunk.find(b"\n")
        if nl >= 0:
            chunks.append(chunk[:nl])
            break
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_RESPONSE:
            raise ControlError(f"pharosd's answer is longer than {MAX_RESPONSE} bytes")
    data = b"".join(chunks)
    if not data:
        raise ControlError("pharosd closed the connection without answering")
    return data


# -- rendering (pure) ------------------------------------------------------------------


_KNOWN = ("version", "pid", "host", "started_at", "config", "reload", "workers", "alerts",
          "sinks", "pipeline")


def render_status(state: Mapping[str, Any], now: float | None = None) -> str:
    """A human report of ``state``; sections for the keys present, in a fixed order.

    Keys it does not know are not lost: a mapping becomes a section of
    ``key  value`` lines, anything else a ``key: value`` line.
    """
    now = time.time() if now is None else now
    out: list[str] = []

    head = "pharosd"
    if state.get("version"):
        head += f" {_clean(state['version'])}"
    if state.get("host"):
        head += f" on {_clean(state['host'])}"
    if state.get("pid") is not None:
        head += f", pid {_clean(state['pid'])}"
    if state.get("started_at") is not None:
        head += f", started {_when(state['started_at'], now)}"
    out.append(head)

    config = state.get("config")
    if isinstance(config, Mapping):
        line = f"config:  {_clean(config.get('source') or 'embedded default')}"
        if config.get("loaded_at") is not None:
            line += f", loaded {_when(config['loaded_at'], now)}"
        if config.get("digest"):
            line += f", digest {_clean(str(config['digest'])[:12])}"
        out.append(line)

    reload = state.get("reload")
    if isinstance(reload, Mapping):
        at = f" {_when(reload['at'], now)}" if reload.get("at") is not None else ""
        errors = [str(e) for e in _list(reload.get("errors"))]
        if reload.get("ok") is None or (reload.get("ok") and not at):
            out.append("reload:  none since start")
        elif reload.get("ok"):
            out.append(f"reload:  ok{at}")
        else:
            out.append(f"reload:  FAILED{at}, {len(errors)} error(s); the previous config runs")
            out.extend(f"         {_clean(e)}" for e in errors)

    if "workers" in state:
        workers = _rows(state.get("workers"))
        out += ["", f"Workers ({len(workers)})"]
        out += _table(workers, [
            ("NAME", "name", _cell), ("STATE", "state", _cell), ("ALIVE", "alive", _yes_no),
            ("RESTARTS", "restarts", _cell),
            ("HEARTBEAT", "heartbeat_age", lambda v: _age(v) + " ago" if _is_num(v) else "-"),
            ("LAST ERROR", "last_error", _cell)])

    if "alerts" in state:
        alerts = _rows(state.get("alerts"))
        out += ["", f"Open alerts ({len(alerts)})"]
        out += _table(alerts, [
            ("RULE", "rule", _cell), ("LABELS", "labels", _labels), ("LEVEL", "level", _cell),
            ("STATUS", "status", _cell),
            ("SINCE", "since", lambda v: "-" if v is None else _when(v, now))])

    if "sinks" in state:
        sinks = _rows(state.get("sinks"))
        out += ["", f"Sinks ({len(sinks)})"]
        out += _table(sinks, [
            ("NAME", "name", _cell), ("BACKLOG", "backlog", _cell),
            ("DELIVERED", "delivered", _cell), ("DROPPED", "dropped", _cell),
            ("LAST ERROR", "last_error", _cell)])

    pipeline = state.get("pipeline")
    if isinstance(pipeline, Mapping) and pipeline:
        out += ["", "Pipeline", *_pairs(pipeline)]

    for key, value in state.items():
        if key in _KNOWN or value is None:
            continue
        if isinstance(value, Mapping):
            out += ["", _clean(key).replace("_", " ").capitalize(), *_pairs(value)]
        else:
            out.append(f"{_clean(key)}: {_flat(value)}")
    return "\n".join(out) + "\n"


def _rows(value: Any) -> list[Mapping[str, Any]]:
    return [r for r in _list(value) if isinstance(r, Mapping)]


def _pairs(mapping: Mapping[str, Any]) -> list[str]:
    if not mapping:
        return ["  -"]
    width = max(len(_clean(k)) for k in mapping)
    return [f"  {_clean(k):<{width}}  {_flat(v)}" for k, v in mapping.items()]


Column = tuple[str, str, Callable[[Any], str]]


def _table(rows: Sequence[Mapping[str, Any]], columns: Sequence[Column]) -> list[str]:
    """Aligned columns; the first column always, the others only when a row has the key."""
    if not rows:
        return ["  none"]
    shown = [c for i, c in enumerate(columns) if i == 0 or any(c[1] in r for r in rows)]
    cells = [[title for title, _, _ in shown]]
    cells += [[fmt(r.get(key)) for _, key, fmt in shown] for r in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(shown))]
    return ["  " + "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
            for line in cells]


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def _clean(value: Any) -> str:
    """One printable line: a label value must not move the cursor or fake a row."""
    text = str(value)
    return "".join(ch if ch.isprintable() else "?" for ch in text)


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    return _clean(value)


def _yes_no(value: Any) -> str:
    if value is None:
        return "-"
    return "yes" if value else "NO"


def _is_num(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _labels(value: Any) -> str:
    pairs: list[tuple[Any, Any]] = []
    if isinstance(value, Mapping):
        pairs = list(value.items())
    elif isinstance(value, list | tuple):   # [[name, value], ...] as Labels serialise
        pairs = [(p[0], p[1]) for p in value if isinstance(p, list | tuple) and len(p) == 2]
    elif value:
        return _clean(value)
    return _clean(",".join(f"{k}={v}" for k, v in pairs)) if pairs else "-"


def _flat(value: Any) -> str:
    if isinstance(value, Mapping):
        return ", ".join(f"{_clean(k)}={_flat(v)}" for k, v in value.items()) or "-"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_flat(v) for v in value) + "]"
    return _cell(value)


def _age(seconds: Any) -> str:
    """``0.4s``, ``42s``, ``3m12s``, ``2h05m``, ``3d04h``."""
    if not _is_num(seconds):
        return "-"
    s = max(0.0, float(seconds))
    if s < 10:
        return f"{s:.1f}s"
    n = int(s)
    if n < 60:
        return f"{n}s"
    if n < 3600:
        return f"{n // 60}m{n % 60:02d}s"
    if n < 86400:
        return f"{n // 3600}h{n % 3600 // 60:02d}m"
    return f"{n // 86400}d{n % 86400 // 3600:02d}h"


def _when(value: Any, now: float) -> str:
    """A timestamp (wall seconds or RFC 3339) as ``RFC3339 (AGE ago)``."""
    ts: float | None = None
    if _is_num(value):
        ts = float(value)
    elif isinstance(value, str):
        with contextlib.suppress(ValueError):
            ts = parse_rfc3339(value)
    if ts is None:
        return _clean(value)
    return f"{rfc3339(ts)} ({_age(now - ts)} ago)"


# -- `pharosd status` ---------------------------------------------------------------------


def add_status_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``pharosd status`` (for the CLI's subparser)."""
    parser.add_argument("--json", action="store_true",
                        help="print the daemon's state as one JSON object")
    parser.add_argument("--socket", metavar="PATH", default=None,
                        help="control socket (default: $RUNTIME_DIRECTORY/control.sock, "
                             "else /run/pharos/control.sock)")
    parser.add_argument("--timeout", metavar="SECONDS", type=float, default=5.0,
                        help="how long to wait for an answer (default: 5)")


def status_main(args: argparse.Namespace | Sequence[str] | None = None, *,
                stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """``pharosd status``: print the state; 0, or 3 when not running, 1 on other errors."""
    if not isinstance(args, argparse.Namespace):
        parser = argparse.ArgumentParser(prog="pharosd status",
                                         description="Show the running daemon's state.")
        add_status_arguments(parser)
        args = parser.parse_args(args)
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    path = getattr(args, "socket", None) or find_socket()
    timeout = getattr(args, "timeout", None) or 5.0
    try:
        state = query_status(path, timeout)
    except NotRunning as exc:
        print(f"pharosd status: {exc}", file=err)
        return EXIT_NOT_RUNNING
    except ControlError as exc:
        print(f"pharosd status: {exc}", file=err)
        return EXIT_ERROR
    if getattr(args, "json", False):
        out.write(json.dumps(state, indent=2, sort_keys=True, default=str) + "\n")
    else:
        out.write(render_status(state))
    return EXIT_OK
