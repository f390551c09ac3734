"""Config shapes of the hot buffer, the spill and the uplink; see pharosd.config.schema.

Every key is documented in docs/uplink.md. Secrets (``password``,
``bearer_token``) come from ``${ENV}`` (the loader substitutes it) or from
a ``*_file`` read when the uplink is built; they are kept out of ``repr``
so a logged config never shows them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlsplit

from pharosd.redact import redact_url
from pharosd.types import Duration, FrozenDict, Size

_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
# Headers the protocol owns: a config may not replace them.
PROTOCOL_HEADERS = ("content-encoding", "content-type", "x-prometheus-remote-write-version",
                    "content-length")
# Why a receiver's samples are dropped (its ``dropped`` counts; the self-telemetry shows
# each, zero or not). Here, not in ``uplink``, so that the telemetry of a daemon without
# an uplink (the HTTP listener's /metrics) does not load the uplink's machinery.
DROP_REASONS = ("buffer_full", "spill_full", "spill_expired", "spill_failed", "too_old",
                "out_of_order", "duplicate", "too_large", "rejected", "encode_error",
                "corrupt")


@dataclass(frozen=True)
class BufferConfig:
    """The hot buffer of samples waiting for the uplink (one per receiver)."""

    capacity: int = field(default=100_000, metadata={"min": 1})


@dataclass(frozen=True)
class SpillConfig:
    """The on-disk spill of samples the uplink could not send yet."""

    path: str | None = None           # default: <state_dir>/spill.db
    max_size: Size = Size(512 * 1024 * 1024)
    max_age: Duration = Duration(24 * 3600.0)

    def check(self) -> list[tuple[str, str]]:
        issues: list[tuple[str, str]] = []
        if self.max_size < 64 * 1024:
            issues.append(("max_size", f"expected at least 64KiB, got {self.max_size} bytes"))
        if self.max_age <= 0:
            issues.append(("max_age", f"expected a duration above 0, got {self.max_age:g}s"))
        return issues


@dataclass(frozen=True)
class BasicAuthConfig:
    """HTTP basic auth: ``password`` (use ``${ENV}``) or ``password_file``."""

    username: str
    password: str | None = field(default=None, repr=False)
    password_file: str | None = None

    def check(self) -> list[tuple[str, str]]:
        if (self.password is None) == (self.password_file is None):
            return [("", "expected exactly one of 'password' or 'password_file'")]
        return []


@dataclass(frozen=True)
class TLSConfig:
    """TLS towards an https receiver."""

    ca_file: str | None = None        # CA bundle to verify the receiver; default: system CAs
    cert_file: str | None = None      # client certificate (PEM) ...
    key_file: str | None = None       # ... and its key, for mutual TLS
    insecure: bool = False            # skip verification; only when written

    def check(self) -> list[tuple[str, str]]:
        issues: list[tuple[str, str]] = []
        if (self.cert_file is None) != (self.key_file is None):
            issues.append(("cert_file" if self.cert_file is None else "key_file",
                           "expected both 'cert_file' and 'key_file', or neither"))
        if self.insecure and self.ca_file is not None:
            issues.append(("insecure", "expected either 'ca_file' or 'insecure: true', not both"))
        return issues

    @property
    def configured(self) -> bool:
        return self != TLSConfig()


@dataclass(frozen=True)
class RemoteWriteConfig:
    """One Prometheus remote_write receiver (see docs/uplink.md)."""

    url: str
    name: str | None = None            # label `receiver` and spill key; default: url's host:port
    headers: FrozenDict[str] = field(default_factory=FrozenDict)
    basic_auth: BasicAuthConfig | None = None
    bearer_token: str | None = field(default=None, repr=False)
    bearer_token_file: str | None = None
    tls: TLSConfig = field(default_factory=TLSConfig)
    timeout: Duration = Duration(10.0)
    external_labels: FrozenDict[str] = field(default_factory=FrozenDict)
    batch: int = field(default=2000, metadata={"min": 1, "max": 100_000})
    flush: Duration = Duration(1.0)
    min_backoff: Duration = Duration(1.0)
    max_backoff: Duration = Duration(30.0)
    max_pending: int | None = field(default=None, metadata={"min": 1})

    def check(self) -> list[tuple[str, str]]:
        issues: list[tuple[str, str]] = []
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            issues.append(("url", "expected an http:// or https:// URL, got "
                           f"{redact_url(self.url)!r}"))
        elif parts.scheme == "http" and self.tls.configured:
            issues.append(("tls", "expected an https:// url when 'tls' is set"))
        auth = [k for k, v in (("basic_auth", self.basic_auth),
                               ("bearer_token", self.bearer_token),
                               ("bearer_token_file", self.bearer_token_file)) if v is not None]
        if len(auth) > 1:
            issues.append((auth[1], f"expected at most one of basic_auth, bearer_token, "
                                    f"bearer_token_file, got {' and '.join(auth)}"))
        for name in self.headers:
            low = name.lower()
            if low in PROTOCOL_HEADERS:
                issues.append((f"headers.{name}", "expected a header the protocol does not own"))
            elif low == "authorization" and auth:
                issues.append((f"headers.{name}", f"expected no Authorization header "
                                                  f"together with {auth[0]}"))
        for name in self.external_labels:
            if not _LABEL_NAME.fullmatch(name) or name.startswith("__"):
                issues.append((f"external_labels.{name}",
                               f"expected a label name like [a-zA-Z_][a-zA-Z0-9_]* not starting "
                               f"with '__', got {name!r}"))
        for key in ("timeout", "flush", "min_backoff", "max_backoff"):
            value = getattr(self, key)
            if value <= 0:
                issues.append((key, f"expected a duration above 0, got {value:g}s"))
        if 0 < self.max_backoff < self.min_backoff:
            issues.append(("max_backoff", f"expected at least min_backoff "
                                          f"({self.min_backoff:g}s), got {self.max_backoff:g}s"))
        return issues

    def receiver_name(self) -> str:
        """``name``, else the URL's ``host:port`` (never its credentials)."""
        if self.name:
            return self.name
        parts = urlsplit(self.url)
        host = parts.hostname or self.url
        return f"{host}:{parts.port}" if parts.port else host


@dataclass(frozen=True)
class UplinkConfig:
    """Where samples are shipped, and how series ends are marked."""

    remote_write: tuple[RemoteWriteConfig, ...] = ()
    stale_markers: bool = True          # send a stale marker when a series stops
    stale_floor: Duration = Duration(5.0)  # ... after max(2 x its cadence, this)
    max_series: int = field(default=100_000, metadata={"min": 1})  # series shipped, in all
    max_series_per_source: int = field(default=10_000, metadata={"min": 1})  # ... of one source

    def check(self) -> list[tuple[str, str]]:
        issues: list[tuple[str, str]] = []
        seen: set[str] = set()
        for i, rw in enumerate(self.remote_write):
            name = rw.receiver_name()
            if name in seen:
                issues.append((f"remote_write[{i}].name",
                               f"expected a unique receiver name, got {name!r} twice "
                               f"(set 'name' to tell them apart)"))
            seen.add(name)
        if self.stale_floor <= 0:
            issues.append(("stale_floor", f"expected a duration above 0, "
                                          f"got {self.stale_floor:g}s"))
        return issues


class PipelineSettings(Protocol):
    """The sections the pipeline reads (the top-level ``Config`` has them)."""

    @property
    def buffer(self) -> BufferConfig: ...

    @property
    def spill(self) -> SpillConfig: ...

    @property
    def uplink(self) -> UplinkConfig: ...
