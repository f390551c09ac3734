"""The control protocol: where the socket lives and what goes over it (pure but for paths).

One tiny protocol over a unix stream socket (``<RUNTIME_DIRECTORY>/control.sock``,
else ``/run/pharos/control.sock``; see ``default_socket_path`` for a daemon
run by hand as a user): the client sends one JSON line ``{"cmd": "status"}``
and the daemon answers one JSON line ``{"ok": true, "state": {...}}`` (or
``{"ok": false, "error": "..."}``), then closes the connection. The server
(``pharosd.control.server``) and the client (``pharosd.control.client``)
both stand on this module.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from collections.abc import Callable, Mapping
from typing import Any

from pharosd.errors import PharosError

SOCKET_NAME = "control.sock"
SYSTEM_RUNTIME_DIR = "/run/pharos"
SOCKET_GROUP = "pharos"

StateFn = Callable[[], Mapping[str, Any]]


class ControlError(PharosError):
    """``pharosd status`` could not get an answer from the daemon."""


class NotRunning(ControlError):
    """No daemon listens on the control socket (missing or refused)."""


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


def encode(obj: Mapping[str, Any]) -> bytes:
    """One JSON line; anything not JSON-able becomes its ``str``."""
    return (json.dumps(obj, separators=(",", ":"), default=str) + "\n").encode()


def answer(request: bytes, state: StateFn) -> dict[str, Any]:
    """The response object for one raw request line."""
    try:
        req = json.loads(request.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        return {"ok": False, "error": f"expected one JSON object per line: {exc}"}
    if not isinstance(req, dict):
        return {"ok": False, "error": f"expected a JSON object, got {type(req).__name__}"}
    cmd = req.get("cmd")
    if cmd == "status":
        return {"ok": True, "state": dict(state())}
    return {"ok": False, "error": f"unknown cmd {cmd!r}: expected 'status'"}
