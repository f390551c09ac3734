"""The webhook sink: POST each alert event as JSON to one URL.

The body is the alert event of DESIGN.md (``format: pharos``) or
Alertmanager's webhook v4 body (``format: alertmanager``). Headers on every
request: ``Content-Type: application/json``, ``X-Pharos-Event-Id`` (the same
on every retry, for de-duplication), and with a ``secret``:
``X-Pharos-Timestamp: <unix seconds>`` and ``X-Pharos-Signature:
sha256=<hex HMAC-SHA256(secret, "<timestamp>." + body)>`` (``sign``).
docs/sinks.md shows how a receiver checks it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping

from pharosd.clock import Clock, SystemClock
from pharosd.model import AlertEvent
from pharosd.sinks.amformat import webhook_body
from pharosd.sinks.http import HttpPoster

SIGNATURE_HEADER = "X-Pharos-Signature"
TIMESTAMP_HEADER = "X-Pharos-Timestamp"
EVENT_ID_HEADER = "X-Pharos-Event-Id"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """``sha256=`` + hex HMAC-SHA256 over ``b"<timestamp>." + body``."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def encode_body(event: AlertEvent, fmt: str, *, receiver: str, external_url: str = "",
                generator_url: str = "") -> bytes:
    if fmt == "alertmanager":
        obj = webhook_body(event, receiver=receiver, external_url=external_url,
                           generator_url=generator_url)
        return json.dumps(obj, separators=(",", ":")).encode()
    return event.to_json().encode()


def request_headers(event: AlertEvent, body: bytes, secret: str | None,
                    now_wall: float) -> dict[str, str]:
    headers = {"Content-Type": "application/json", EVENT_ID_HEADER: event.id}
    if secret:
        ts = int(now_wall)
        headers[TIMESTAMP_HEADER] = str(ts)
        headers[SIGNATURE_HEADER] = sign(secret, ts, body)
    return headers


class WebhookSink:
    def __init__(self, name: str, url: str, *, fmt: str = "pharos",
                 headers: Mapping[str, str] | None = None, token: str | None = None,
                 username: str | None = None, password: str | None = None,
                 secret: str | None = None, ca_file: str | None = None,
                 cert_file: str | None = None, key_file: str | None = None,
                 insecure: bool = False, timeout: float = 10.0, external_url: str = "",
                 generator_url: str = "", clock: Clock | None = None) -> None:
        self.name = name
        self.url = url
        self.fmt = fmt
        self.external_url = external_url
        self.generator_url = generator_url
        self.blocking_timeout = 2 * timeout + 1.0
        self._secret = secret
        self._clock: Clock = clock or SystemClock()
        self._http = HttpPoster(headers=headers, token=token, username=username,
                                password=password, ca_file=ca_file, cert_file=cert_file,
                                key_file=key_file, insecure=insecure, timeout=timeout)

    def deliver(self, event: AlertEvent) -> None:
        body = encode_body(event, self.fmt, receiver=self.name, external_url=self.external_url,
                           generator_url=self.generator_url)
        now = self._clock.wall()
        self._http.post(self.url, body, request_headers(event, body, self._secret, now), now)

    def reopen(self) -> None:
        pass

    def close(self) -> None:
        self._http.close()
