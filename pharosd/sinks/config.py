"""Config shapes of the sinks (one dataclass per ``kind``); see pharosd.config.schema.

Every sink has a ``name`` (unique; it also names the sink's outbox file), a
``kind``, a ``retry`` policy for its outbox, an optional ``filter`` (which
alerts it gets) and an optional ``repeat`` (reminders while an alert fires);
docs/alerting.md describes routing and reminders. Secrets come either inline
(``token``, ``password``, ``secret``: write ``${ENV_VAR}`` there) or from a
file (``token_file``, ...: read when the sink is built, surrounding
whitespace stripped); never both. docs/sinks.md documents every key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal, Protocol
from urllib.parse import urlsplit

from pharosd.checks import command_issues
from pharosd.model import Level
from pharosd.redact import redact_url
from pharosd.types import Duration, FrozenDict, Size

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
class FilterConfig:
    """Which alerts a sink gets: every part given must match (levels: any of them;
    rules: any of the globs; labels: every glob)."""

    levels: tuple[Level, ...] = ()
    rules: tuple[str, ...] = ()
    labels: FrozenDict[str] = field(default_factory=FrozenDict)

    def check(self) -> list[tuple[str, str]]:
        if not self.levels and not self.rules and not self.labels:
            return [("", "expected at least one of levels, rules, labels "
                         "(leave 'filter' out to get every alert)")]
        return []


def _route_issues(c: SinkConfig) -> list[tuple[str, str]]:
    if c.repeat is not None and c.repeat <= 0:
        return [("repeat", f"expected a duration above 0, got {c.repeat:g}s")]
    return []


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
    filter: FilterConfig | None = None    # which alerts it gets (default: all)
    repeat: Duration | None = None        # remind of a firing alert this often

    def check(self) -> list[tuple[str, str]]:
        if self.max_size is not None and self.max_size <= 0:
            return [("max_size", f"expected a size above 0, got {self.max_size}")]
        return _route_issues(self)


@dataclass(frozen=True)
class LogSinkConfig:
    """Log each alert event through the daemon's own log (the journal)."""

    name: str
    kind: Literal["log"]
    retry: RetryConfig = field(default_factory=RetryConfig)
    max_backlog: int = field(default=10_000, metadata=_backlog())
    filter: FilterConfig | None = None    # which alerts it gets (default: all)
    repeat: Duration | None = None        # remind of a firing alert this often

    def check(self) -> list[tuple[str, str]]:
        return _route_issues(self)


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
    filter: FilterConfig | None = None    # which alerts it gets (default: all)
    repeat: Duration | None = None        # remind of a firing alert this often

    def check(self) -> list[tuple[str, str]]:
        if self.transport in ("udp", "tcp") and not self.host:
            return [("host", f"expected a host for transport {self.transport!r}")]
        if self.transport == "unix" and self.host:
            return [("host", "expected no host with transport 'unix' (set 'socket')")]
        if self.timeout <= 0:
            return [("timeout", f"expected a duration above 0, got {self.timeout:g}s")]
        return _route_issues(self)


def _http_issues(url: str, key: str) -> list[tuple[str, str]]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return [(key, f"expected an http:// or https:// URL, got {redact_url(url)!r}")]
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
    filter: FilterConfig | None = None    # which alerts it gets (default: all)
    repeat: Duration | None = None        # remind of a firing alert this often

    def check(self) -> list[tuple[str, str]]:
        return (_http_issues(self.url, "url") + _auth_issues(self)
                + _pair_issues(self, ("secret",)) + _route_issues(self))


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
    filter: FilterConfig | None = None    # which alerts it gets (default: all)
    repeat: Duration | None = None        # remind of a firing alert this often

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
        return issues + _auth_issues(self) + _route_issues(self)


def _address_issues(key: str, address: str) -> list[tuple[str, str]]:
    """A bare mail address (``ops@example.org``, or a local ``root``): no display
    name, no spaces, no line breaks (it goes into a header and the envelope)."""
    if not address or any(c.isspace() or c in '<>,;"()' for c in address):
        return [(key, f"expected a mail address such as ops@example.org, got {address!r}")]
    return []


def template_issues(key: str, template: str) -> list[tuple[str, str]]:
    """A ``str.format`` template of plain ``{name}`` placeholders (no ``{a.b}``, ``{a[0]}``)."""
    import string

    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as e:
        return [(key, f"expected a template with {{name}} placeholders, got {template!r}: {e}")]
    for _, name, spec, _conv in parsed:
        if name is None:
            continue
        if not name.isidentifier() or "{" in (spec or ""):
            return [(key, f"expected plain {{name}} placeholders, got {{{name}}} "
                          f"in {template!r}")]
    return []


@dataclass(frozen=True)
class EmailSinkConfig:
    """Mail each alert event (plain text) over SMTP; see pharosd.sinks.email."""

    name: str
    kind: Literal["email"]
    sender: str = field(metadata={"key": "from"})   # the From address (YAML key ``from``)
    to: tuple[str, ...]               # recipients, at least one
    host: str = "localhost"           # the SMTP server (a relay or the local MTA)
    port: int | None = field(default=None, metadata={"min": 1, "max": 65535})
    starttls: Literal["auto", "always", "never"] = "auto"
    ssl: bool = False                 # SMTPS: TLS from the first byte (port 465)
    username: str | None = None       # SMTP AUTH, with password or password_file
    password: str | None = None
    password_file: str | None = None
    subject: str = "[{level}] {rule} {status} on {host}"
    ca_file: str | None = None        # CAs to verify the server with; default: the system's
    insecure: bool = False            # do not verify the server's certificate
    timeout: Duration = Duration(30.0)  # each network operation
    retry: RetryConfig = field(default_factory=RetryConfig)
    max_backlog: int = field(default=10_000, metadata=_backlog())
    filter: FilterConfig | None = None    # which alerts it gets (default: all)
    repeat: Duration | None = None        # remind of a firing alert this often

    def resolved_port(self) -> int:
        return self.port if self.port is not None else (465 if self.ssl else 25)

    def check(self) -> list[tuple[str, str]]:
        issues = _address_issues("from", self.sender)
        if not self.to:
            issues.append(("to", "expected at least one recipient"))
        for i, address in enumerate(self.to):
            issues += _address_issues(f"to[{i}]", address)
        if not self.host:
            issues.append(("host", "expected the SMTP server's host name or address"))
        if self.ssl and self.starttls == "always":
            issues.append(("starttls", "expected starttls 'auto' or 'never' with ssl: true "
                                       "(SMTPS is TLS from the start), got 'always'"))
        issues += _pair_issues(self, ("password",))
        has_password = self.password is not None or self.password_file is not None
        if has_password and self.username is None:
            issues.append(("username", "expected a username with password/password_file"))
        if self.username is not None and not has_password:
            issues.append(("password", "expected password or password_file with username"))
        if self.insecure and self.ca_file is not None:
            issues.append(("insecure", "expected either ca_file or insecure: true, not both"))
        if self.timeout <= 0:
            issues.append(("timeout", f"expected a duration above 0, got {self.timeout:g}s"))
        return issues + template_issues("subject", self.subject) + _route_issues(self)


EXEC_RETRY_EXIT = 75                  # EX_TEMPFAIL (sysexits.h)


@dataclass(frozen=True)
class ExecSinkConfig:
    """Run a command per alert event, the event JSON on stdin; see pharosd.sinks.exec."""

    name: str
    kind: Literal["exec"]
    command: tuple[str, ...]          # argv; never run through a shell
    timeout: Duration = Duration(30.0)  # then its process group is killed (retried)
    env: FrozenDict[str] = field(default_factory=FrozenDict)  # added to PATH and LANG
    retry: RetryConfig = field(default_factory=RetryConfig)
    max_backlog: int = field(default=10_000, metadata=_backlog())
    filter: FilterConfig | None = None    # which alerts it gets (default: all)
    repeat: Duration | None = None        # remind of a firing alert this often

    def check(self) -> list[tuple[str, str]]:
        issues = command_issues(self.command, self.env)
        if self.timeout <= 0:
            issues.append(("timeout", f"expected a duration above 0, got {self.timeout:g}s"))
        return issues + _route_issues(self)


SinkConfig = (FileSinkConfig | LogSinkConfig | SyslogSinkConfig | WebhookSinkConfig
              | AlertmanagerSinkConfig | EmailSinkConfig | ExecSinkConfig)


def delivery_part(cfg: SinkConfig) -> SinkConfig:
    """A sink's config without what only the notifier reads (``filter``, ``repeat``):
    a reload that changes only those keeps the sink's worker, outbox and counters."""
    return replace(cfg, filter=None, repeat=None)


class SinkSettings(Protocol):
    """What ``pharosd test-alert`` reads of the top-level config (``Config`` has it)."""

    @property
    def sinks(self) -> Sequence[SinkConfig]: ...

    def resolved_state_dir(self) -> str: ...

    def resolved_host(self) -> str: ...
