"""Config shapes of the HTTP listener (``http:`` in pharos.yaml); see docs/http.md.

The listener is off unless ``listen`` is set. ``listen`` is ``HOST:PORT``
(``[::1]:9612`` for IPv6); the port pharosd suggests, 9612, was marked free
in Prometheus' list of default exporter ports, so no common exporter
(node_exporter 9100, Pushgateway 9091, ...) clashes with it. The password
of ``basic_auth`` is only ever read from ``password_file`` (when the
listener is built), never written in the config.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from pharosd.types import Duration

DEFAULT_PORT = 9612


def split_listen(listen: str) -> tuple[str, int]:
    """``"127.0.0.1:9612"`` -> ``("127.0.0.1", 9612)``; ``"[::1]:9612"`` -> ``("::1", 9612)``.

    Raises ``ValueError`` with what was expected.
    """
    host, sep, port_text = listen.rpartition(":")
    if not sep or not host:
        raise ValueError(f"expected HOST:PORT such as 127.0.0.1:{DEFAULT_PORT}, got {listen!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"expected an IPv6 address in brackets ([::1]:{DEFAULT_PORT}), "
                         f"got {listen!r}")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"expected a port from 1 to 65535, got {port_text!r}")
    return host, int(port_text)


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``; False for names and other addresses."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class HttpTlsConfig:
    """Serve HTTPS with this certificate chain and key (PEM files)."""

    cert_file: str
    key_file: str


@dataclass(frozen=True)
class HttpBasicAuthConfig:
    """Ask every request for HTTP basic auth (the password is read from a file)."""

    username: str
    password_file: str

    def check(self) -> list[tuple[str, str]]:
        if not self.username or ":" in self.username:
            return [("username", f"expected a non-empty name without ':', "
                                 f"got {self.username!r}")]
        return []


@dataclass(frozen=True)
class HttpConfig:
    """The HTTP listener: off unless ``listen`` is set."""

    listen: str | None = None               # HOST:PORT, e.g. 127.0.0.1:9612
    tls: HttpTlsConfig | None = None
    basic_auth: HttpBasicAuthConfig | None = None
    max_connections: int = field(default=64, metadata={"min": 1, "max": 10_000})
    timeout: Duration = Duration(10.0)      # a request must arrive within this; idle keep-alive
    refresh: Duration = Duration(10.0)      # how often the status page reloads itself

    def check(self) -> list[tuple[str, str]]:
        issues: list[tuple[str, str]] = []
        if self.listen is not None:
            try:
                split_listen(self.listen)
            except ValueError as exc:
                issues.append(("listen", str(exc)))
        if self.timeout <= 0:
            issues.append(("timeout", f"expected a duration above 0, got {self.timeout:g}s"))
        if self.refresh < 1:
            issues.append(("refresh", f"expected at least 1s, got {self.refresh:g}s"))
        return issues

    @property
    def enabled(self) -> bool:
        return self.listen is not None
