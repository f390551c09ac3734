"""``pharosd silence add|list|expire``: the CLI glue for silences over the control socket.

``add`` prints only the new silence's id (so scripts can keep it), ``list`` a table
(``--json``: the daemon's list as JSON), ``expire`` the id it ended. Exit codes as
``pharosd status``: 0, 3 when no daemon answers, 1 for every other failure, bad
arguments included (each with a message on stderr). The daemon checks who asks:
adding and expiring need root or the daemon's user.

Times: ``--for 2h`` (a duration) or ``--until TIME``, where TIME is RFC 3339
(``2025-05-01T18:00:00Z``, ``...+02:00``), ``YYYY-MM-DD HH:MM`` in local time, or
``HH:MM`` local time (the next one to come).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timedelta
from typing import Any, TextIO

from pharosd.control.cli import EXIT_ERROR, EXIT_OK, failed
from pharosd.control.client import request
from pharosd.control.protocol import ControlError, find_socket
from pharosd.control.render import render_silences
from pharosd.units import parse_duration


class UsageError(Exception):
    """A bad argument: the message says which and what was expected."""


def add_silence_arguments(sub: Any, common: argparse.ArgumentParser) -> None:
    """The ``silence`` command and its three subcommands (for the CLI's subparsers)."""
    silence = sub.add_parser("silence", parents=[common],
                             help="add, list or expire silences in the running daemon")
    verbs = silence.add_subparsers(dest="verb", metavar="VERB", required=True)
    add = verbs.add_parser("add", parents=[common], help="hold back matching alerts; "
                           "prints the new silence's id")
    add.add_argument("--rule", action="append", default=[], metavar="GLOB",
                     help="alert rule glob (repeatable; any of them matches)")
    add.add_argument("--label", action="append", default=[], metavar="KEY=GLOB",
                     help="label glob (repeatable; all of them must match)")
    when = add.add_mutually_exclusive_group(required=True)
    when.add_argument("--for", dest="duration", metavar="DURATION",
                      help="how long, e.g. 30m or 2h")
    when.add_argument("--until", metavar="TIME",
                      help="end: RFC 3339, 'YYYY-MM-DD HH:MM' or 'HH:MM' (local time)")
    add.add_argument("--comment", default="", metavar="TEXT", help="why (shown in status)")
    lst = verbs.add_parser("list", parents=[common], help="list silences")
    lst.add_argument("--json", action="store_true", help="machine-readable output")
    expire = verbs.add_parser("expire", parents=[common], help="end a silence now")
    expire.add_argument("id", help="the silence's id (or at least its first 4 characters)")
    for p in (add, lst, expire):
        p.add_argument("--socket", metavar="PATH", help="control socket path")
        p.add_argument("--timeout", metavar="SECONDS", type=float, default=5.0,
                       help="how long to wait for an answer (default: 5)")


def parse_label(text: str) -> tuple[str, str]:
    key, eq, glob = text.partition("=")
    if not eq or not key.strip():
        raise UsageError(f"--label: expected KEY=GLOB, got {text!r}")
    return key.strip(), glob


def parse_until(text: str, now: float) -> float:
    """``--until``: RFC 3339, ``YYYY-MM-DD HH:MM[:SS]`` local, or ``HH:MM`` local (next)."""
    s = text.strip()
    try:
        if len(s) <= 5 and ":" in s:
            hh, mm = s.split(":")
            base = datetime.fromtimestamp(now).astimezone()
            at = base.replace(hour=int(hh), minute=int(mm), second=0, microsecond=0)
            if at.timestamp() <= now:
                at = (at + timedelta(days=1)).replace(hour=int(hh), minute=int(mm))
            return at.timestamp()
        dt = datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"--until: expected RFC 3339, 'YYYY-MM-DD HH:MM' or 'HH:MM', "
                         f"got {text!r}") from None
    if dt.tzinfo is None:
        dt = dt.astimezone()           # local time
    return dt.timestamp()


def build_request(args: argparse.Namespace, now: float) -> dict[str, Any]:
    verb = args.verb
    if verb == "list":
        return {"cmd": "silence_list"}
    if verb == "expire":
        return {"cmd": "silence_expire", "id": args.id}
    labels = dict(parse_label(t) for t in args.label)
    if not args.rule and not labels:
        raise UsageError("expected at least one --rule or --label "
                         "(--rule '*' silences every alert)")
    req: dict[str, Any] = {"cmd": "silence_add", "rules": list(args.rule), "labels": labels,
                           "comment": args.comment}
    if args.duration is not None:
        try:
            length = parse_duration(args.duration)
        except Exception:
            raise UsageError(f"--for: expected a duration like 30m or 2h, "
                             f"got {args.duration!r}") from None
        if length <= 0:
            raise UsageError(f"--for: expected a duration above 0, got {args.duration!r}")
        req["for"] = length
    else:
        ends_at = parse_until(args.until, now)
        if ends_at <= now:
            raise UsageError(f"--until: expected a time in the future, got {args.until!r}")
        req["ends_at"] = ends_at
    return req


def silence_main(args: argparse.Namespace, *, state_dir: str | None = None,
                 stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    prog = f"pharosd silence {args.verb}"
    try:
        req = build_request(args, time.time())
    except UsageError as exc:
        print(f"{prog}: {exc}", file=err)
        return EXIT_ERROR
    path = getattr(args, "socket", None) or find_socket(state_dir=state_dir)
    try:
        answer = request(path, req, getattr(args, "timeout", None) or 5.0)
    except ControlError as exc:
        return failed(prog, exc, err)
    if args.verb == "list":
        silences = answer.get("silences") or []
        if getattr(args, "json", False):
            out.write(json.dumps(silences, indent=2, sort_keys=True) + "\n")
        else:
            out.write(render_silences(silences))
        return EXIT_OK
    silence = answer.get("silence") or {}
    out.write(f"{silence.get('id', '?')}\n")
    return EXIT_OK
