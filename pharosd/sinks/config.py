"""Config shapes of the sinks (one dataclass per ``kind``); see pharosd.config.schema.

Every sink has a ``name`` (unique; it also names the sink's outbox file), a
``kind`` and a ``retry`` policy for its outbox. Secrets come either inline
(``token``, ``password``, ``secret``: write ``${ENV_VAR}`` there) or from a
file (``token_file``, ...: read when the sink is built, surrounding
whitespace stripped); never both. docs/sinks.md documents every key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from pharosd.config.types import Duration, FrozenDict, Size

Facility = Literal[
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
    "authpriv", "ftp", "local0", "local1", "local2", "local3", "local4", "local5",
    "local6", "local7",
]


@dataclass(frozen=True)
class RetryConfig:
    """How the outbox retries a failed delivery: backoff from ``initial``
    doubling to ``max`` (with jitter), giving up after ``max_age``."""

    initial: Duration = Duration(1.0)
    max: Duration = Duration(300.0)
    max_age: Duration = Duration(24 * 3600.0)

    def check(self) -> list[tuple[str, str]]:
        issues: list[tuple[str, str]] = []
        if self.initial <= 0:
            issues.append(("initial", f"expected a duration above 0, got {self.initial:g}s"))
        if self.max < self.initial:
            issues.append(("max", f"expected at least initial ({self.initial:g}s), "
                                  f"got {self.max:g}s"))
        if self.max_age <= 0:
            issues.append(("max_age", f"expected a duration above 0, got {self.max_age:g}s"))
        return issues


def _backlog() -> dict[str, float]:
    return {"min": 1.0}


@dataclass(frozen=True)
class FileSinkConfig:
    """Append one JSON alert event per line to ``path``."""

    name: str
    kind: Literal["file"]
    path: str | None = None           # default: <state_dir>/alerts.jsonl
    max_size: Size | None = None      # rotate when the file would exceed this
    keep: int = field(default=5, metadata={"min": 1})  # rotated files kept
    fsync: bool = True                # fsync after each event (flush always)
    retry: RetryConfig = field(default_factory=RetryConfig)
    max_backlog: int = field(default=10_000, metadata=_backlog())

    def check(self) -> list[tuple[str, str]]:
        if self.max_size is not None and self.max_size <= 0:
            return [("max_size", f"expected a size above 0, got {self.max_size}")]
        return []


@dataclass(frozen=True)
class LogSinkConfig:
    """Log each alert event through the daemon's own log (the journal)."""

    name: str
    kind: Literal["log"]
    retry: RetryConfig = field(default_factory=RetryConfig)
    max_backlog: int = field(default=10_000, metadata=_backlog())


@dataclass(frozen=True)
class SyslogSinkConfig:
    """Send each alert event as one syslog message (RFC 5424 or RFC 3164)."""

    name: str
    kind: Literal["syslog"]
    transport: Literal["unix", "udp", "tcp"] = "unix"
    socket: str = "/dev/log"          # unix: the socket path (datagram, else stream)
    host: str | None = None           # udp/tcp: the receiver's address
    port: int = field(default=514, metadata={"min": 1, "max": 65535})
    format: Literal["rfc5424", "rfc3164"] = "rfc5424"
    facility: Facility = "daemon"
    hostname: str | None = None       # HOSTNAME field; default: the daemon's host
    timeout: Duration = Duration(5.0)  # tcp connect and send
    retry: RetryConfig = field(default_factory=RetryConfig)
    max_backlog: int = field(default=10_000, metadata=_backlog())

    def check(self) -> list[tuple[str, str]]:
        if self.transport in ("udp", "tcp") and not self.host:
            return [("host", f"expected a host for transport {self.transport!r}")]
        if self.transport == "unix" and self.host:
            return [("host", "expected no host with transport 'unix' (set 'socket')")]
        if self.timeout <= 0:
            return [("timeout", f"expected a duration above 0, got {self.timeout:g}s")]
        return []


def _http_issues(url: str, key: str) -> list[tuple[str, str]]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return [(key, f"expected an http:// or https:// URL, got {url!r}")]
    return []


def _pair_issues(obj: object, names: tuple[str, ...]) -> list[tuple[str, str]]:
    """At most one of the inline secret and its ``_file`` variant."""
    issues: list[tuple[str, str]] = []
    for n in names:
        if getattr(obj, n) is not None and getattr(obj, n + "_file") is not None:
            issues.append((n + "_file", f"expected either {n} or {n}_file, not both"))
    return issues


def _auth_issues(c: WebhookSinkConfig | AlertmanagerSinkConfig) -> list[tuple[str, str]]:
    issues = _pair_issues(c, ("token", "password"))
    has_token = c.token is not None or c.token_file is not None
    has_password = c.password is not None or c.password_file is not None
    if has_password and c.username is None:
        issues.append(("username", "expected a username with password/password_file"))
    if c.username is not None and has_token:
        issues.append(("token", "expected either a bearer token or basic auth (username), "
                                "not both"))
    if c.timeout <= 0:
        issues.append(("timeout", f"expected a duration above 0, got {c.timeout:g}s"))
    if c.key_file is not None and c.cert_file is None:
        issues.append(("cert_file", "expected cert_file with key_file"))
    if c.insecure and c.ca_file is not None:
        issues.append(("insecure", "expected either 'ca_file' or 'insecure: true', not both "
                                   "(insecure would ignore the CA file)"))
    return issues


@dataclass(frozen=True)
class WebhookSinkConfig:
    """POST each alert event to a URL (pharos JSON or Alertmanager's webhook body)."""

    name: str
    kind: Literal["webhook"]
    url: str
    format: Literal["pharos", "alertmanager"] = "pharos"
    headers: FrozenDict[str] = field(default_factory=FrozenDict)
    token: str | None = None          # Authorization: Bearer TOKEN
    token_file: str | None = None
    username: str | None = None       # basic auth
    password: str | None = None
    password_file: str | None = None
    secret: str | None = None         # HMAC-SHA256 signing key
    secret_file: str | None = None
    ca_file: str | None = None        # CA bundle to verify the server with
    cert_file: str | None = None      # client certificate (mutual TLS)
    key_file: str | None = None       # ... and its key (when not in cert_file)
    insecure: bool = False            # skip TLS verification (only when written)
    timeout: Duration = Duration(10.0)
    external_url: str = ""            # format alertmanager: externalURL
    generator_url: str = ""           # format alertmanager: alerts[].generatorURL
    retry: RetryConfig = field(default_factory=RetryConfig)
    max_backlog: int = field(default=10_000, metadata=_backlog())

    def check(self) -> list[tuple[str, str]]:
        return (_http_issues(self.url, "url") + _auth_issues(self)
                + _pair_issues(self, ("secret",)))


@dataclass(frozen=True)
class AlertmanagerSinkConfig:
    """POST alerts to Alertmanager's /api/v2/alerts on every URL (an HA cluster)."""

    name: str
    kind: Literal["alertmanager"]
    urls: tuple[str, ...]             # base URLs, e.g. http://am1:9093
    resend: Duration = Duration(60.0)  # re-send firing alerts this often
    resolved_for: Duration = Duration(300.0)  # keep re-sending a resolved alert this long
    labels: FrozenDict[str] = field(default_factory=FrozenDict)  # added to every alert
    generator_url: str = ""
    headers: FrozenDict[str] = field(default_factory=FrozenDict)
    token: str | None = None
    token_file: str | None = None
    username: str | None = None
    password: str | None = None
    password_file: str | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    insecure: bool = False
    timeout: Duration = Duration(10.0)
    retry: RetryConfig = field(default_factory=RetryConfig)
    max_backlog: int = field(default=10_000, metadata=_backlog())

    def check(self) -> list[tuple[str, str]]:
        issues: list[tuple[str, str]] = []
        if not self.urls:
            issues.append(("urls", "expected at least one URL"))
        for i, u in enumerate(self.urls):
            issues += _http_issues(u, f"urls[{i}]")
        if self.resend <= 0:
            issues.append(("resend", f"expected a duration above 0, got {self.resend:g}s"))
        if self.resolved_for < 0:
            issues.append(("resolved_for",
                           f"expected a duration of 0 or more, got {self.resolved_for:g}s"))
        return issues + _auth_issues(self)


SinkConfig = (FileSinkConfig | LogSinkConfig | SyslogSinkConfig | WebhookSinkConfig
              | AlertmanagerSinkConfig)
