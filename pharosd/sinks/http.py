"""HTTP delivery shared by the webhook and Alertmanager sinks.

``classify_response`` is the pure rule: 2xx is done; 408, 425, 429, 5xx (and
3xx: a redirect is a config problem the operator can fix) are retried,
honouring ``Retry-After``; any other 4xx is a ``PermanentDeliveryError``
carrying the status and the first 200 bytes of the body. ``HttpPoster``
owns one ``requests.Session`` (imported lazily) with the sink's TLS and
auth settings, and turns connection errors and timeouts into retryable
``DeliveryError``. Error messages never contain the sink's secrets (URLs
through ``pharosd.redact.redact_url``, known secrets ``scrub``-bed);
``Retry-After`` is read by ``pharosd.backoff.parse_retry_after``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import structlog

from pharosd import __version__
from pharosd.backoff import parse_retry_after
from pharosd.errors import DeliveryError, PermanentDeliveryError, describe_error
from pharosd.httpclient import BoundedClient, new_session
from pharosd.redact import redact_url, scrub

log = structlog.get_logger(__name__)

RETRY_STATUSES = frozenset({408, 425, 429})
BODY_EXCERPT = 200
USER_AGENT = f"pharosd/{__version__}"


def classify_response(status: int, body: bytes, retry_after: str | None, now_wall: float,
                      where: str) -> None:
    """Return for a 2xx; raise ``DeliveryError`` (retry) or ``PermanentDeliveryError``."""
    if 200 <= status < 300:
        return
    excerpt = body[:BODY_EXCERPT].decode("utf-8", "replace")
    message = f"{where}: HTTP {status}: {excerpt}" if excerpt else f"{where}: HTTP {status}"
    if status in RETRY_STATUSES or status >= 500 or status < 400:
        raise DeliveryError(message, retry_after=parse_retry_after(retry_after, now_wall))
    raise PermanentDeliveryError(message)


class HttpPoster:
    """POSTs bytes with one session; thread-safe enough for one worker plus close()."""

    def __init__(self, *, headers: Mapping[str, str] | None = None, token: str | None = None,
                 username: str | None = None, password: str | None = None,
                 ca_file: str | None = None, cert_file: str | None = None,
                 key_file: str | None = None, insecure: bool = False,
                 timeout: float = 10.0) -> None:
        self.headers = dict(headers or {})
        self.token = token
        self.username = username
        self.password = password
        self.ca_file = ca_file
        self.cert_file = cert_file
        self.key_file = key_file
        self.insecure = insecure
        self.timeout = timeout
        self._session: Any = None
        self._lock = threading.Lock()
        self._bounded = BoundedClient()      # whole-request deadline, capped body
        self._secrets = [s for s in (token, password, *self.headers.values()) if s]

    def _get_session(self) -> Any:
        with self._lock:
            if self._session is None:
                s = new_session()        # proxies from the environment, trust from config
                s.headers["User-Agent"] = USER_AGENT
                s.headers.update(self.headers)
                if self.token is not None:
                    s.headers["Authorization"] = f"Bearer {self.token}"
                elif self.username is not None:
                    s.auth = (self.username, self.password or "")
                if self.insecure:
                    _quiet_insecure_warning()
                if self.cert_file:
                    s.cert = (self.cert_file, self.key_file) if self.key_file else self.cert_file
                self._session = s
            return self._session

    def post(self, url: str, body: bytes, headers: Mapping[str, str], now_wall: float) -> None:
        """POST ``body``; return on 2xx, else raise (see ``classify_response``)."""
        import requests

        session = self._get_session()
        where = f"POST {redact_url(url)}"
        parts = urlsplit(url)
        secrets = [*self._secrets, parts.query, parts.password or ""]
        try:
            # verify per request: a session's verify loses to $REQUESTS_CA_BUNDLE
            resp = self._bounded.post(session, url, data=body, headers=headers,
                                      deadline=time.monotonic() + self.timeout,
                                      allow_redirects=False, verify=self._verify())
            excerpt = resp.body[:BODY_EXCERPT]
        except requests.exceptions.RequestException as e:
            raise DeliveryError(scrub(f"{where}: {describe_error(e)}", secrets)) from None
        try:
            classify_response(resp.status, excerpt, resp.headers.get("Retry-After"),
                              now_wall, where)
        except DeliveryError as e:
            msg = scrub(str(e), secrets)
            if isinstance(e, PermanentDeliveryError):
                raise PermanentDeliveryError(msg) from None
            raise DeliveryError(msg, retry_after=e.retry_after) from None

    def _verify(self) -> bool | str:
        if self.insecure:
            return False
        return self.ca_file or True

    def close(self) -> None:
        with self._lock:
            if self._session is not None:
                self._session.close()
                self._session = None


def _quiet_insecure_warning() -> None:
    """The operator wrote ``insecure: true``; urllib3 need not repeat it per request."""
    import warnings

    try:
        from urllib3.exceptions import InsecureRequestWarning
    except ImportError:  # pragma: no cover - urllib3 always comes with requests
        return
    warnings.filterwarnings("ignore", category=InsecureRequestWarning)
