"""``pharosd status [--json] [--socket PATH]``: the CLI glue over the control client.

Prints a table (or the JSON state) and exits 0, or exits 3 (LSB "program is
not running") when no daemon answers, or 1 when it could not ask
(permission, timeout, bad answer).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import TextIO

from pharosd.control.client import query_status
from pharosd.control.protocol import ControlError, NotRunning, find_socket
from pharosd.control.render import render_status

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_NOT_RUNNING = 3   # LSB init-script "program is not running"


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
