"""Logging set-up: structlog, configured once by the CLI.

Formats: ``console`` (readable, for a terminal), ``logfmt`` and ``json``
(one line per event). ``auto`` picks console on a terminal and logfmt
otherwise. Line formats carry the syslog priority prefix ``<N>`` so that
the journal (which reads stderr under systemd) records each line's level.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any, TextIO

import structlog

LEVELS = ("debug", "info", "warning", "error", "critical")
FORMATS = ("auto", "console", "logfmt", "json")

# syslog priorities, as sd-daemon(3) prefixes: <7> debug ... <2> critical.
_PRIORITY = {"debug": 7, "info": 6, "warning": 4, "warn": 4, "error": 3,
             "exception": 3, "critical": 2, "fatal": 2}


def _prefixed(renderer: Callable[..., Any], journal: bool) -> Callable[..., str]:
    """Wrap a line renderer: one line per event, ``<N>`` first when asked."""

    def render(logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> str:
        line = str(renderer(logger, method, event_dict))
        line = line.replace("\r", "\\r").replace("\n", "\\n")
        if journal:
            level = str(event_dict.get("level", method))
            return f"<{_PRIORITY.get(level, 6)}>{line}"
        return line

    return render


def journal_prefix(stream: TextIO, level: str,
                   environ: Mapping[str, str] | None = None) -> str:
    """``<N>`` for ``level`` when ``stream`` is the journal, else ``""``.

    systemd sets ``JOURNAL_STREAM=DEV:INODE`` to the stream it connected to the
    journal; lines a command prints there (not through structlog) need the
    prefix to land at their priority (``journalctl -p err``), and must not
    carry it on a terminal.
    """
    env = os.environ if environ is None else environ
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return ""
    if env.get("JOURNAL_STREAM", "") != f"{st.st_dev}:{st.st_ino}":
        return ""
    return f"<{_PRIORITY.get(level, 6)}>"


def configure(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> str:
    """Configure structlog for the whole process; returns the format chosen."""
    stream = stream or sys.stderr
    if fmt == "auto":
        fmt = "console" if stream.isatty() else "logfmt"
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.StackInfoRenderer(),
    ]
    renderer: Any
    if fmt == "console":
        shared.insert(0, structlog.processors.TimeStamper(fmt="%Y-%m-%d %H:%M:%S", utc=False))
        renderer = structlog.dev.ConsoleRenderer(colors=stream.isatty())
    else:
        shared.insert(0, structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"))
        shared.append(structlog.processors.format_exc_info)
        inner = (structlog.processors.JSONRenderer(sort_keys=False) if fmt == "json"
                 else structlog.processors.LogfmtRenderer(
                     key_order=["ts", "level", "event"], drop_missing=True))
        renderer = _prefixed(inner, journal=True)
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(
            getattr(logging, level.upper(), logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=True,
    )
    return fmt
