"""Which path answers what (pure over a ``View``), and the basic-auth check.

=====================  =====================================================
``/metrics``           the exposition (``exposition.CONTENT_TYPE``)
``/-/healthy``         200 while the supervisor runs
``/-/ready``           503 until the first collection, then 200
``/api/v1/status``     the JSON of ``pharosd status --json``
``/api/v1/alerts``     ``{"alerts": [...]}``: the open alerts of the status
``/``                  the status page (``page.render_page``)
=====================  =====================================================

Anything else is 404. With basic auth configured every path asks for it
(401 with ``WWW-Authenticate``); the credentials are compared with
``hmac.compare_digest`` so the time taken says nothing about them.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any, Protocol

from pharosd.http.exposition import CONTENT_TYPE
from pharosd.http.protocol import Reply, Request, error_reply

JSON = "application/json"
HTML = "text/html; charset=utf-8"


class View(Protocol):
    """What the routes read from the running daemon (all quick and thread-safe)."""

    def metrics(self) -> bytes: ...

    def healthy(self) -> bool: ...

    def ready(self) -> bool: ...

    def state(self) -> Mapping[str, Any]: ...

    def page(self) -> str: ...


def credentials_ok(header: str | None, username: str, password: str) -> bool:
    """``Authorization: Basic ...`` matches, compared in constant time."""
    if not header:
        return False
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        given = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    expected = f"{username}:{password}".encode()
    import hmac  # only with basic_auth: hmac maps OpenSSL's libcrypto (3.4 MiB)

    return hmac.compare_digest(given, expected)


def _json(obj: Any, status: int = 200) -> Reply:
    body = json.dumps(obj, sort_keys=True, default=str, allow_nan=False,
                      separators=(",", ":")).encode()
    return Reply(status, body + b"\n", JSON)


def _clean(obj: Any) -> Any:
    """NaN and infinities are not JSON: they become null."""
    if isinstance(obj, float) and (obj != obj or obj in (float("inf"), float("-inf"))):
        return None
    if isinstance(obj, Mapping):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    return obj


def route(request: Request, view: View) -> Reply:
    path = request.path
    if path == "/metrics":
        return Reply(200, view.metrics(), CONTENT_TYPE)
    if path == "/-/healthy":
        ok = view.healthy()
        return Reply(200 if ok else 503, b"OK\n" if ok else b"not healthy\n")
    if path == "/-/ready":
        ok = view.ready()
        return Reply(200 if ok else 503, b"OK\n" if ok else b"not ready: first collection "
                                                            b"still running\n")
    if path == "/api/v1/status":
        return _json(_clean(dict(view.state())))
    if path == "/api/v1/alerts":
        return _json({"alerts": _clean(list(view.state().get("alerts") or []))})
    if path in ("/", "/index.html"):
        return Reply(200, view.page().encode("utf-8"), HTML)
    return error_reply(404, f"not found: {path[:200]}; try /, /metrics, /-/healthy, "
                            f"/-/ready, /api/v1/status, /api/v1/alerts")


def unauthorized() -> Reply:
    return Reply(401, b"authentication required\n",
                 headers=(("WWW-Authenticate", 'Basic realm="pharosd", charset="UTF-8"'),))
