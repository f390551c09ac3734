"""The http probe: one request, its status, its body, and the TLS certificate's expiry.

The check is up when the request completes within ``timeout`` with an
accepted status and, if ``body_regex`` is set, a body (first 1 MiB) that
matches it; otherwise it reports the probe's ``level``. Values: ``up``,
``latency_seconds`` (request start to body read), ``status_code``, and for
https ``cert_expiry_days`` (days until the server certificate's notAfter,
negative once expired; read over a separate connection without verification,
so it is reported for certificates that fail verification too).

``requests`` is imported when the first check runs. A new session per
check (no keep-alive between runs); like all of pharosd's outgoing HTTP
(``pharosd.httpclient``) it goes through ``HTTPS_PROXY``/``HTTP_PROXY``
unless ``NO_PROXY`` matches or the host is loopback, and takes no CA bundle
or .netrc from the environment. ``cert_expiry_days`` is read over a direct
connection. Its per-socket-operation timeouts cannot bound a
server that drips bytes, so the request runs on a helper thread and
``check`` waits for it until the deadline: a request still running then is
reported as timed out and left to finish on its own; while it runs, the next
checks fail at once instead of piling up threads (at most one per probe).
"""

from __future__ import annotations

import re
import socket
import ssl
import threading
from typing import Any
from urllib.parse import urlsplit

import structlog

from pharosd.clock import Clock
from pharosd.errors import describe_error
from pharosd.httpclient import proxies_for
from pharosd.probes.base import CheckResult, Probe
from pharosd.probes.config import HttpProbeConfig
from pharosd.probes.status import OK, UNKNOWN_STATE
from pharosd.probes.x509 import not_after
from pharosd.redact import redact_url, scrub, url_secrets
from pharosd.units import format_duration

log = structlog.get_logger(__name__)

MAX_BODY = 1024 * 1024
_CHUNK = 16 * 1024
_ERRNO = re.compile(r"\[Errno -?\d+\] [^'\")\]]+")


class HttpProbe(Probe):
    kind = "http"
    cfg: HttpProbeConfig

    def __init__(self, cfg: HttpProbeConfig, every: float, clock: Clock | None = None) -> None:
        super().__init__(cfg, every, clock)
        self.fail_status = UNKNOWN_STATE[cfg.level]
        self.body_re = re.compile(cfg.body_regex) if cfg.body_regex is not None else None
        parts = urlsplit(cfg.url)
        self.https = parts.scheme == "https"
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if self.https else 80)
        # The URL may carry credentials (user:password@, ?token=): every text this probe
        # makes (notes, so alert summaries, sink payloads, logs) shows it redacted.
        self.what = f"{cfg.method} {redact_url(cfg.url)}"
        self._secrets = url_secrets(cfg.url)
        self._straggler: threading.Thread | None = None
        self._cert_error: str | None = None

    def check(self, now: float) -> CheckResult:
        timeout = float(self.cfg.timeout)
        if self._straggler is not None and self._straggler.is_alive():
            return self._fail(f"the previous request is still running, over "
                              f"{format_duration(timeout)}")
        self._straggler = None
        box: dict[str, CheckResult] = {}
        deadline = self.clock.monotonic() + timeout

        def run() -> None:
            try:
                box["result"] = self._request(now, deadline)
            except Exception as e:  # reported on the probe's thread
                error = scrub(describe_error(e), self._secrets)
                log.error("probe_crashed", probe=self.name, kind=self.kind, error=error)
                box["result"] = CheckResult.failed(f"internal error: {error}")

        worker = threading.Thread(target=run, name=f"probe-http-{self.name}", daemon=True)
        worker.start()
        worker.join(max(0.0, deadline - self.clock.monotonic()))
        if worker.is_alive():
            self._straggler = worker
            return self._fail(f"timed out after {format_duration(timeout)}")
        return box["result"]

    # -- on the helper thread ------------------------------------------------------------

    def _request(self, now: float, deadline: float) -> CheckResult:
        import requests

        cfg = self.cfg
        if cfg.insecure:   # the operator asked for it: no warning in the journal per check
            import urllib3

            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        values: list[tuple[str, float]] = []
        session = requests.Session()
        session.trust_env = False
        started = self.clock.monotonic()
        try:
            verify: bool | str = False if cfg.insecure else (cfg.ca_file or True)
            remaining = max(0.001, deadline - started)
            try:
                resp = session.request(
                    cfg.method, cfg.url, headers=dict(cfg.headers),
                    data=None if cfg.body is None else cfg.body.encode(),
                    timeout=(remaining, remaining), allow_redirects=cfg.follow_redirects,
                    verify=verify, stream=True, proxies=proxies_for(cfg.url),
                )
            except requests.exceptions.Timeout:
                return self._fail(f"timed out after {format_duration(cfg.timeout)}")
            except requests.exceptions.SSLError as e:
                return self._fail(f"TLS error: {_reason(e)}", self._cert(now, deadline))
            except requests.exceptions.RequestException as e:
                return self._fail(_reason(e), self._cert(now, deadline))
            except OSError as e:   # a ca_file that cannot be read, ...
                return CheckResult.failed(scrub(describe_error(e), self._secrets))
            with resp:
                body = b""
                if self.body_re is not None and cfg.method != "HEAD":
                    try:
                        body = _read_body(resp, deadline, self.clock)
                    except requests.exceptions.RequestException as e:
                        return self._fail(f"reading the body: {_reason(e)}")
                latency = self.clock.monotonic() - started
            values += [("latency_seconds", latency), ("status_code", float(resp.status_code))]
            values += self._cert(now, deadline)
            head = f"{resp.status_code} {resp.reason or ''}".strip()
            if not self._status_ok(resp.status_code):
                return self._fail(f"status {head}, expected {self._expected()}", values)
            if self.body_re is not None:
                text = _decode(body, resp.encoding)
                if self.body_re.search(text) is None:
                    return self._fail(f"status {head}, body does not match "
                                      f"{self.body_re.pattern!r}", values)
            return CheckResult(OK, f"{self.what}: {head} in {latency:.3f}s",
                               (("up", 1.0), *values))
        finally:
            session.close()

    def _status_ok(self, code: int) -> bool:
        if self.cfg.status:
            return code in self.cfg.status
        return self.cfg.status_min <= code <= self.cfg.status_max

    def _expected(self) -> str:
        if self.cfg.status:
            return ", ".join(str(c) for c in self.cfg.status)
        return f"{self.cfg.status_min}..{self.cfg.status_max}"

    def _cert(self, now: float, deadline: float) -> list[tuple[str, float]]:
        """``cert_expiry_days`` for https, or nothing (a failure is logged once)."""
        if not self.https:
            return []
        remaining = deadline - self.clock.monotonic()
        if remaining <= 0:
            return []
        try:
            der = peer_certificate(self.host, self.port, remaining)
            days = (not_after(der) - now) / 86400.0
        except (OSError, ValueError) as e:
            message = describe_error(e)
            if message != self._cert_error:
                self._cert_error = message
                log.warning("probe_certificate_unreadable", probe=self.name, error=message)
            return []
        self._cert_error = None
        return [("cert_expiry_days", days)]

    def _fail(self, reason: str, values: list[tuple[str, float]] | None = None) -> CheckResult:
        reason = scrub(reason, self._secrets)
        return CheckResult(self.fail_status, f"{self.what}: {reason}",
                           (("up", 0.0), *(values or ())))


def _read_body(resp: Any, deadline: float, clock: Clock) -> bytes:
    parts: list[bytes] = []
    size = 0
    for chunk in resp.iter_content(_CHUNK):
        parts.append(chunk)
        size += len(chunk)
        if size >= MAX_BODY or clock.monotonic() >= deadline:
            break
    return b"".join(parts)[:MAX_BODY]


def _decode(body: bytes, encoding: str | None) -> str:
    try:
        return body.decode(encoding or "utf-8", errors="replace")
    except LookupError:          # a charset Python does not know
        return body.decode("utf-8", errors="replace")


def peer_certificate(host: str, port: int, timeout: float) -> bytes:
    """The DER certificate ``host:port`` presents (SNI ``host``; not verified)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection((host, port), timeout=timeout) as raw, \
            ctx.wrap_socket(raw, server_hostname=host) as tls:
        der = tls.getpeercert(binary_form=True)
    if not der:
        raise ValueError("the server sent no certificate")
    return der


def _reason(e: BaseException) -> str:
    """The root cause of a requests error, short: ``[Errno 111] Connection refused``."""
    text = str(e)
    m = _ERRNO.search(text)
    if m is not None:
        return m.group(0).strip()
    for marker in ("certificate verify failed: ", "SSLError("):
        k = text.find(marker)
        if k >= 0:
            return text[k:k + 200].split(" (_ssl")[0].rstrip("'\")")
    text = " ".join(text.split())
    return text if len(text) <= 300 else text[:299] + "…"
