"""The ``silence`` command's arguments, kept apart from its code so that building the
CLI parser (which every command does, ``run`` included) imports nothing else."""

from __future__ import annotations

import argparse
from typing import Any


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
