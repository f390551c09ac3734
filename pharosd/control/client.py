"""The control client: ask the running daemon for its state over the control socket.

``query_status(path)`` returns the daemon's state dict; it raises
``NotRunning`` when nothing listens there and ``ControlError`` for every
other failure (permission, timeout, an answer that is not JSON, too long).
"""

from __future__ import annotations

import contextlib
import errno
import json
import socket
import time
from typing import Any

from pharosd.control.protocol import SOCKET_GROUP, ControlError, NotRunning, encode

MAX_RESPONSE = 16 * 1024 * 1024  # bytes the client accepts


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
