"""The control protocol: where the socket lives and what goes over it (pure but for paths).

One tiny protocol over a unix stream socket (``<RUNTIME_DIRECTORY>/control.sock``,
else ``/run/pharos/control.sock``; see ``default_socket_path`` for a daemon
run by hand as a user): the client sends one JSON line ``{"cmd": "status"}``
and the daemon answers one JSON line ``{"ok": true, "state": {...}}`` (or
``{"ok": false, "error": "..."}``), then closes the connection. The server
(``pharosd.control.server``) and the client (``pharosd.control.client``)
both stand on this module.

Besides ``status`` the daemon registers commands (``silence_add``,
``silence_list``, ``silence_expire``): a handler gets the request object and the
peer's credentials (``Peer``, from ``SO_PEERCRED``) and returns the answer's fields.
A command that ``changes`` something is refused unless the peer is root or the
daemon's own user (``may_change``); reading stays open to whoever may connect
(the socket is mode 0660, group ``pharos``).
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
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


@dataclass(frozen=True, slots=True)
class Peer:
    """Who is on the other end of a connection (``SO_PEERCRED``)."""

    pid: int
    uid: int
    gid: int


Handler = Callable[[Mapping[str, Any], "Peer | None"], Mapping[str, Any]]


@dataclass(frozen=True, slots=True)
class Command:
    """A request the daemon serves besides ``status``; ``changes``: needs ``may_change``."""

    handler: Handler
    changes: bool = False


def may_change(peer: Peer | None, own_uid: int) -> bool:
    """Root and the daemon's own user may change state; nobody unknown may."""
    return peer is not None and peer.uid in (0, own_uid)


def answer(request: bytes, state: StateFn, commands: Mapping[str, Command] | None = None,
           peer: Peer | None = None, own_uid: int | None = None) -> dict[str, Any]:
    """The response object for one raw request line.

    A command's ``PharosError`` becomes ``{"ok": false, "error": str(exc)}``.
    """
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
    command = (commands or {}).get(cmd) if isinstance(cmd, str) else None
    if command is None:
        known = ", ".join(repr(c) for c in ["status", *sorted(commands or {})])
        return {"ok": False, "error": f"unknown cmd {cmd!r}: expected one of {known}"}
    own = os.geteuid() if own_uid is None else own_uid
    if command.changes and not may_change(peer, own):
        who = "an unknown peer" if peer is None else f"uid {peer.uid}"
        return {"ok": False, "error": f"permission denied: {cmd} needs root or the "
                                      f"daemon's user (uid {own}); you are {who}"}
    try:
        return {"ok": True, **command.handler(req, peer)}
    except PharosError as exc:
        return {"ok": False, "error": str(exc)}
