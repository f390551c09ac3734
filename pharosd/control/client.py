"""The control client: ask the running daemon for its state over the control socket.

``query_status(path)`` returns the daemon's state dict and ``request(path, obj)``
the answer to any other command; both raise ``NotRunning`` when nothing listens
there and ``ControlError`` for every other failure (permission, timeout, an answer
that is not JSON, too long, a refusal with the daemon's reason).
``watch(path, rule)`` yields every alert event (a dict) the daemon publishes
until the daemon closes the stream (``ControlError`` says why).
"""

from __future__ import annotations

import contextlib
import errno
import json
import socket
from collections.abc import Iterator
from typing import Any

from pharosd.clock import Clock, SystemClock
from pharosd.control.protocol import SOCKET_GROUP, ControlError, NotRunning, encode

MAX_RESPONSE = 16 * 1024 * 1024  # bytes the client accepts


def _connect(path: str, timeout: float) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        sock.close()
        raise NotRunning(f"pharosd is not running: nothing listens on {path} "
                         f"({exc.strerror or exc})") from exc
    except PermissionError as exc:
        sock.close()
        raise ControlError(f"permission denied on {path}: run as root or as a member "
                           f"of group {SOCKET_GROUP}") from exc
    except OSError as exc:
        sock.close()
        if exc.errno in (errno.ENOTDIR, errno.ENOTSOCK, errno.ECONNREFUSED):
            raise NotRunning(f"pharosd is not running: nothing listens on {path} "
                             f"({exc.strerror or exc})") from exc
        raise ControlError(f"cannot connect to {path}: {exc}") from exc
    return sock


@contextlib.contextmanager
def _session(path: str, timeout: float) -> Iterator[socket.socket]:
    """A connection to the daemon, closed at the end; a timeout or a socket error
    inside becomes a ``ControlError`` naming ``path``."""
    sock = _connect(path, timeout)
    try:
        yield sock
    except TimeoutError as exc:
        raise ControlError(f"pharosd did not answer on {path} within {timeout:g}s") from exc
    except OSError as exc:
        raise ControlError(f"lost the connection to {path}: {exc}") from exc
    finally:
        sock.close()


def watch(path: str, rule: str | None = None, timeout: float = 5.0
          ) -> Iterator[dict[str, Any]]:
    """Subscribe to the daemon's alert events; yield each one as it arrives.

    Returns when the daemon closes the stream cleanly; raises ``ControlError``
    when it refuses or drops this watcher, ``NotRunning`` when none runs.
    """
    with _session(path, timeout) as sock:
        sock.sendall(encode({"cmd": "watch", "rule": rule}))
        stream = sock.makefile("rb")
        sock.settimeout(timeout)
        first = stream.readline(MAX_RESPONSE)
        ack = _decode(first)
        if not ack.get("ok"):
            raise ControlError(f"pharosd refused: {ack.get('error', 'no reason given')}")
        sock.settimeout(None)       # events come when they come
        for line in iter(lambda: stream.readline(MAX_RESPONSE), b""):
            msg = _decode(line)
            if "event" in msg and isinstance(msg["event"], dict):
                yield msg["event"]
            elif msg.get("ok") is False:
                raise ControlError(f"pharosd ended the watch: {msg.get('error')}")


def _decode(line: bytes) -> dict[str, Any]:
    if not line:
        raise ControlError("pharosd closed the connection without answering")
    try:
        msg = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ControlError(f"pharosd sent a line that is not JSON: {exc}") from exc
    if not isinstance(msg, dict):
        raise ControlError(f"pharosd sent a {type(msg).__name__}, expected an object")
    return msg


def query_status(path: str, timeout: float = 5.0, *,
                 clock: Clock | None = None) -> dict[str, Any]:
    """Ask the daemon at ``path`` for its state.

    Raises ``NotRunning`` when nothing listens there (no socket file, or a
    stale one) and ``ControlError`` for every other failure.
    """
    response = request(path, {"cmd": "status"}, timeout, clock=clock)
    state = response.get("state")
    if not isinstance(state, dict):
        raise ControlError("pharosd answered without a state object")
    return state


def request(path: str, obj: dict[str, Any], timeout: float = 5.0, *,
            clock: Clock | None = None) -> dict[str, Any]:
    """Send one request to the daemon at ``path``; its ``ok`` answer (else raise)."""
    clock = clock or SystemClock()
    deadline = clock.monotonic() + timeout
    with _session(path, timeout) as sock:
        # A busy daemon may answer and close before reading: read its answer anyway.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(encode(obj))
        data = _read_line(sock, deadline, clock)
    response = _decode(data)
    if not response.get("ok"):
        raise ControlError(f"pharosd refused: {response.get('error', 'no reason given')}")
    return response


def _read_line(sock: socket.socket, deadline: float, clock: Clock) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        remaining = deadline - clock.monotonic()
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
