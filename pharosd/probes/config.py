"""Config shapes of the probes (one dataclass per ``kind``); see pharosd.config.schema.

Every kind shares ``name``, ``kind``, ``every``, ``soak``, ``cool`` and
``unknown``; the built-in kinds (http, tcp, process, file) also have
``level``, the status a failed check reports. docs/probes.md documents every
key. The fields are repeated in each class rather than inherited so that the
generic loader sees one flat, ordered list of fields per class.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from pharosd.checks import command_issues
from pharosd.redact import redact_url
from pharosd.types import Duration, FrozenDict, Size

# A probe name becomes part of metric names (``probe.<name>.state``) and of the
# generated threshold's name (``probe:<name>``).
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
MAX_NAME = 64

# The generated status thresholds are named ``probe:<name>`` (pharosd.probes.status);
# user thresholds may not start with this prefix.
THRESHOLD_PREFIX = "probe:"

UnknownAs = Literal["warning", "critical", "ok"]
FailAs = Literal["warning", "critical"]
HttpMethod = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def reserved_threshold_issues(thresholds: Sequence[Any]) -> list[tuple[str, str]]:
    """Config issues (``thresholds[i].name``, message) for user thresholds whose
    names use the prefix reserved for the probes' status alerts.

    ``Config.check`` (pharosd.config.schema) calls it.
    """
    return [
        (f"thresholds[{i}].name",
         f"expected a name not starting with {THRESHOLD_PREFIX!r} (reserved for the "
         f"probes' status alerts), got {t.name!r}")
        for i, t in enumerate(thresholds)
        if str(t.name).startswith(THRESHOLD_PREFIX)
    ]


def _name_issues(name: str) -> list[tuple[str, str]]:
    if not NAME_PATTERN.fullmatch(name) or len(name) > MAX_NAME:
        return [("name", "expected a probe name of letters, digits, '_' and '-' "
                         f"(starting with a letter or digit, at most {MAX_NAME}), got {name!r}")]
    return []


def _common_issues(name: str, every: float | None, timeout: float,
                   soak: float | None, cool: float | None) -> list[tuple[str, str]]:
    issues = _name_issues(name)
    if every is not None and every <= 0:
        issues.append(("every", f"expected a duration above 0, got {every:g}s"))
    if timeout <= 0:
        issues.append(("timeout", f"expected a duration above 0, got {timeout:g}s"))
    for key, value in (("soak", soak), ("cool", cool)):
        if value is not None and value < 0:
            issues.append((key, f"expected a duration of 0 or more, got {value:g}s"))
    return issues


def _regex_issue(key: str, pattern: str | None) -> list[tuple[str, str]]:
    if pattern is None:
        return []
    try:
        re.compile(pattern)
    except re.error as e:
        return [(key, f"expected a regular expression, got {_short(pattern)} ({e})")]
    except (RecursionError, OverflowError, MemoryError):
        return [(key, f"expected a regular expression, got {_short(pattern)} (nested or "
                      "repeated too deeply to compile)")]
    return []


def _short(text: str, limit: int = 80) -> str:
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"... ({len(text)} chars)"


@dataclass(frozen=True)
class ExecProbeConfig:
    """Run a Nagios-compatible plugin (see docs/probes.md)."""

    name: str
    kind: Literal["exec"]
    command: tuple[str, ...]                 # argv; never run through a shell
    every: Duration | None = None            # default: the top-level interval
    timeout: Duration = Duration(10.0)       # then the process group is killed: UNKNOWN
    env: FrozenDict[str] = field(default_factory=FrozenDict)  # added to PATH and LANG
    unknown: UnknownAs = "warning"           # the alert level of an UNKNOWN result
    soak: Duration | None = None             # of the status alert; default: top-level soak
    cool: Duration | None = None             # of the status alert; default: top-level cool

    def check(self) -> list[tuple[str, str]]:
        return (_common_issues(self.name, self.every, self.timeout, self.soak, self.cool)
                + command_issues(self.command, self.env))


@dataclass(frozen=True)
class HttpProbeConfig:
    """Request a URL; up when it answers with an expected status (and body)."""

    name: str
    kind: Literal["http"]
    url: str                                 # http:// or https://
    every: Duration | None = None
    timeout: Duration = Duration(10.0)       # for the whole request, body included
    method: HttpMethod = "GET"
    headers: FrozenDict[str] = field(default_factory=FrozenDict)
    body: str | None = None                  # request body (for POST, PUT, ...)
    status: tuple[int, ...] = ()             # accepted codes; empty: status_min..status_max
    status_min: int = 200
    status_max: int = 399
    body_regex: str | None = None            # must match (re.search) the first 1 MiB of body
    follow_redirects: bool = False
    insecure: bool = False                   # skip TLS certificate verification
    ca_file: str | None = None               # PEM bundle to verify with instead of the system's
    level: FailAs = "critical"               # the status of a failed check
    unknown: UnknownAs = "warning"
    soak: Duration | None = None
    cool: Duration | None = None

    def check(self) -> list[tuple[str, str]]:
        issues = _common_issues(self.name, self.every, self.timeout, self.soak, self.cool)
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            issues.append(("url", "expected an http:// or https:// URL, got "
                           f"{redact_url(self.url)!r}"))
        for code in self.status:
            if not 100 <= code <= 599:
                issues.append(("status", f"expected HTTP status codes 100..599, got {code}"))
        if not 100 <= self.status_min <= self.status_max <= 599:
            issues.append(("status_max", "expected 100 <= status_min <= status_max <= 599, "
                                         f"got {self.status_min}..{self.status_max}"))
        issues += _regex_issue("body_regex", self.body_regex)
        if self.insecure and self.ca_file:
            issues.append(("ca_file", "expected no 'ca_file' with 'insecure: true'"))
        return issues


@dataclass(frozen=True)
class TcpProbeConfig:
    """Connect to a TCP port; optionally send a string and expect a reply."""

    name: str
    kind: Literal["tcp"]
    port: int = field(metadata={"min": 1, "max": 65535})
    host: str = "127.0.0.1"
    every: Duration | None = None
    timeout: Duration = Duration(10.0)       # for connect, send and expect together
    send: str | None = None                  # sent (UTF-8) after connecting
    expect: str | None = None                # must appear in the first 64 KiB read
    level: FailAs = "critical"
    unknown: UnknownAs = "warning"
    soak: Duration | None = None
    cool: Duration | None = None

    def check(self) -> list[tuple[str, str]]:
        issues = _common_issues(self.name, self.every, self.timeout, self.soak, self.cool)
        if not 1 <= self.port <= 65535:
            issues.append(("port", f"expected a port 1..65535, got {self.port}"))
        if not self.host:
            issues.append(("host", "expected a host name or address"))
        return issues


@dataclass(frozen=True)
class ProcessProbeConfig:
    """Find processes by name, command line, pidfile and/or user (psutil)."""

    name: str
    kind: Literal["process"]
    process: str | None = None               # the process name (as ps -e shows it)
    cmdline: str | None = None               # regex searched in the joined command line
    pidfile: str | None = None               # a file holding one pid
    user: str | None = None                  # owner's user name
    min_count: int = field(default=1, metadata={"min": 0})   # fewer: the check fails
    max_count: int | None = None             # more: the check fails
    every: Duration | None = None
    level: FailAs = "critical"
    unknown: UnknownAs = "warning"
    soak: Duration | None = None
    cool: Duration | None = None

    def check(self) -> list[tuple[str, str]]:
        issues = _common_issues(self.name, self.every, 1.0, self.soak, self.cool)
        if self.process is None and self.cmdline is None and self.pidfile is None \
                and self.user is None:
            issues.append(("", "expected at least one of process, cmdline, pidfile, user"))
        if self.pidfile is not None and (self.process is not None or self.cmdline is not None
                                         or self.user is not None):
            issues.append(("pidfile", "expected 'pidfile' alone, without process, "
                                      "cmdline or user"))
        issues += _regex_issue("cmdline", self.cmdline)
        if self.min_count < 0:
            issues.append(("min_count", f"expected 0 or more, got {self.min_count}"))
        if self.max_count is not None and self.max_count < self.min_count:
            issues.append(("max_count", f"expected max_count >= min_count "
                                        f"({self.min_count}), got {self.max_count}"))
        return issues


@dataclass(frozen=True)
class FileProbeConfig:
    """Watch a file (or the newest of a glob): exists, age, size."""

    name: str
    kind: Literal["file"]
    path: str                                # absolute path; * ? [ ] make it a glob
    max_age: Duration | None = None          # newest mtime older than this: the check fails
    min_size: Size | None = None             # newest file smaller than this: the check fails
    every: Duration | None = None
    level: FailAs = "critical"
    unknown: UnknownAs = "warning"
    soak: Duration | None = None
    cool: Duration | None = None

    def check(self) -> list[tuple[str, str]]:
        issues = _common_issues(self.name, self.every, 1.0, self.soak, self.cool)
        if not self.path.startswith("/"):
            issues.append(("path", f"expected an absolute path, got {self.path!r}"))
        if self.max_age is not None and self.max_age <= 0:
            issues.append(("max_age", f"expected a duration above 0, got {self.max_age:g}s"))
        return issues


ProbeConfig = (ExecProbeConfig | HttpProbeConfig | TcpProbeConfig | ProcessProbeConfig
               | FileProbeConfig)
