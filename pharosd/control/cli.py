"""``pharosd status`` and ``pharosd watch``: the CLI glue over the control client.

``status [--json] [--socket PATH]`` prints a table (or the JSON state) and
exits 0, or exits 3 (LSB "program is not running") when no daemon answers,
or 1 when it could not ask (permission, timeout, bad answer).

``watch [--json] [--rule GLOB] [--socket PATH]`` prints every alert event as
it happens (one JSON object a line with ``--json``) until interrupted (exit
0), or until the daemon stops or drops it as too slow (exit 1); 3 when no
daemon runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import TextIO

from pharosd.control.client import query_status, watch
from pharosd.control.protocol import ControlError, NotRunning, find_socket
from pharosd.control.render import render_event, render_status

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_NOT_RUNNING = 3   # LSB init-script "program is not running"


def failed(prog: str, exc: ControlError, err: TextIO) -> int:
    """Say why ``prog`` could not ask the daemon; its exit code (3: none runs, else 1)."""
    print(f"{prog}: {exc}", file=err)
    return EXIT_NOT_RUNNING if isinstance(exc, NotRunning) else EXIT_ERROR


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
    except ControlError as exc:
        return failed("pharosd status", exc, err)
    if getattr(args, "json", False):
        out.write(json.dumps(state, indent=2, sort_keys=True, default=str) + "\n")
    else:
        out.write(render_status(state))
    return EXIT_OK


def watch_main(args: argparse.Namespace, *, stdout: TextIO | None = None,
               stderr: TextIO | None = None) -> int:
    """``pharosd watch``: print alert events as they happen."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    path = getattr(args, "socket", None) or find_socket()
    try:
        for event in watch(path, getattr(args, "rule", None)):
            if getattr(args, "json", False):
                out.write(json.dumps(event, separators=(",", ":")) + "\n")
            else:
                out.write(render_event(event) + "\n")
            out.flush()
    except KeyboardInterrupt:
        return EXIT_OK
    except ControlError as exc:
        return failed("pharosd watch", exc, err)
    print("pharosd watch: the daemon closed the stream", file=err)
    return EXIT_ERROR
