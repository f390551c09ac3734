"""Outgoing HTTP: what it takes from the environment, and bounded POSTs.

One rule for every request pharosd makes (sinks, the uplink, http probes):
the environment chooses the *route*, the config chooses the *trust*.
``new_session`` gives a ``requests.Session`` with ``trust_env`` off, so
``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE`` and ``~/.netrc`` never apply
(CAs and credentials come from the config only); ``proxies_for(url)`` gives
the proxy for one request from ``HTTPS_PROXY`` / ``HTTP_PROXY`` /
``ALL_PROXY`` (lower case first), unless ``NO_PROXY`` matches the host
(names, ``.suffix``, ``*``, addresses, CIDR ranges, ``host:port``) or the
host is loopback (``localhost``, 127.0.0.0/8, ::1), which is never proxied.
``BoundedClient.post`` applies it; the http probe passes it itself.

Bounded POSTs: a whole-request deadline and a capped answer body.

A receiver that drips bytes defeats ``requests``' timeouts (they bound each
socket operation, not the request), and ``resp.content`` reads a body of any
size into memory. ``BoundedClient.post`` bounds both:

* the exchange (connect, TLS, send, status line, headers, body) runs on a
  helper thread; the caller waits for it until ``deadline`` (monotonic) and
  then raises ``requests.exceptions.Timeout``. Socket timeouts are set to the
  time left, so a silent peer ends the helper by itself too;
* the body is streamed in small chunks and reading stops at ``max_body``
  bytes (the connection is then closed, not drained); the caller gets
  ``Answer.body`` and ``Answer.truncated``;
* at the deadline the helper is told to stop; once the answer's headers have
  arrived its socket is shut down, so a dripping body ends at once. A
  helper still stuck in the status line or headers (a peer dripping those)
  is left to its socket timeout; while it runs, further posts of the same
  client to the same receiver (scheme, host and port) fail at once instead
  of piling up threads: at most one helper per receiver, ever.

``requests`` is imported lazily. Callers keep their own session (from
``new_session``, with their TLS and auth settings); the errors are ``requests``' own
(``RequestException`` and subclasses), so existing handlers classify them.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

MAX_BODY = 4096          # bytes of an answer's body kept: enough for an error message
_CHUNK = 1024


@dataclass(frozen=True, slots=True)
class Answer:
    """A receiver's answer: status, headers, and at most ``max_body`` bytes of body."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    truncated: bool       # reading stopped at max_body; there may have been more


def new_session() -> Any:
    """A ``requests.Session`` that takes nothing from the environment by itself."""
    import requests

    session = requests.Session()
    session.trust_env = False
    return session


def proxies_for(url: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``{scheme: proxy URL}`` for a request to ``url``, or ``{}`` to go direct."""
    env = os.environ if environ is None else environ

    def get(name: str) -> str:
        return (env.get(name) or env.get(name.upper()) or "").strip()

    try:
        parts = urlsplit(url)
        host, port = (parts.hostname or "").lower(), parts.port
    except ValueError:
        return {}
    if not host or _is_loopback(host):
        return {}
    no_proxy = get("no_proxy")
    if no_proxy and _bypassed(host, port, no_proxy):
        return {}
    proxy = get(f"{parts.scheme}_proxy") or get("all_proxy")
    return {parts.scheme: proxy} if proxy else {}


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _bypassed(host: str, port: int | None, no_proxy: str) -> bool:
    """Whether ``NO_PROXY`` (comma-separated) names ``host`` (and ``port``)."""
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = \
            ipaddress.ip_address(host)
    except ValueError:
        address = None
    for raw in no_proxy.split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        name, want_port = entry, None
        if entry.count(":") == 1:            # host:port (an IPv6 entry has more colons)
            name, _, p = entry.partition(":")
            want_port = int(p) if p.isdigit() else None
        if want_port is not None and want_port != port:
            continue
        name = name.strip("[]")
        if address is not None:
            try:
                if address in ipaddress.ip_network(name, strict=False):
                    return True
            except ValueError:
                pass
            continue
        name = name.lstrip(".")
        if name and (host == name or host.endswith("." + name)):
            return True
    return False


class _Attempt:
    """One exchange, shared between the caller and the helper thread."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.abandoned = False
        self.response: Any = None
        self.answer: Answer | None = None
        self.error: BaseException | None = None
        self.lock = threading.Lock()


class BoundedClient:
    """Runs one POST at a time with a deadline; see the module docstring."""

    def __init__(self, max_body: int = MAX_BODY) -> None:
        if max_body < 0:
            raise ValueError(f"max_body must be 0 or more, got {max_body}")
        self.max_body = max_body
        self._helpers: dict[str, threading.Thread] = {}    # per receiver: the last helper
        self.deadline_misses = 0      # posts given up at their deadline

    def post(self, session: Any, url: str, *, data: bytes, headers: Mapping[str, str],
             deadline: float, **send: Any) -> Answer:
        """POST ``data`` with ``session``; the answer once complete or capped.

        ``deadline`` is a ``time.monotonic()`` value; ``send`` goes on to
        ``session.post`` (``verify``, ``cert``, ``allow_redirects`` ...; not
        ``timeout`` or ``stream``, which this sets). Raises
        ``requests.exceptions.Timeout`` when the deadline passes first or the
        previous post's helper is still running, else what ``requests`` raises.
        """
        import requests

        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise requests.exceptions.Timeout("no time left before the request's deadline")
        origin = _origin(url)
        last = self._helpers.pop(origin, None)
        if last is not None and last.is_alive():
            self._helpers[origin] = last
            raise requests.exceptions.Timeout(
                "the previous request to this receiver is still running past its deadline")
        attempt = _Attempt()
        send.setdefault("proxies", proxies_for(url))
        kwargs = dict(send, data=data, headers=dict(headers), timeout=(remaining, remaining),
                      stream=True)
        helper = threading.Thread(target=self._exchange, args=(session, url, kwargs, attempt),
                                  name="http-post", daemon=True)
        helper.start()
        if not attempt.done.wait(max(0.0, deadline - time.monotonic())):
            self._abandon(attempt)
            self._helpers[origin] = helper
            self.deadline_misses += 1
            raise requests.exceptions.Timeout(
                f"no complete answer within {remaining:.3g}s (the whole request's deadline)")
        if attempt.error is not None:
            raise attempt.error
        assert attempt.answer is not None
        return attempt.answer

    # -- on the helper thread -------------------------------------------------------

    def _exchange(self, session: Any, url: str, kwargs: dict[str, Any],
                  attempt: _Attempt) -> None:
        try:
            resp = session.post(url, **kwargs)
            with attempt.lock:
                attempt.response = resp
                abandoned = attempt.abandoned
            try:
                if not abandoned:
                    attempt.answer = self._read(resp, attempt)
            finally:
                resp.close()
        except BaseException as e:     # handed to the caller (if it still waits)
            attempt.error = e
        finally:
            attempt.done.set()

    def _read(self, resp: Any, attempt: _Attempt) -> Answer:
        parts: list[bytes] = []
        size = 0
        truncated = False
        if self.max_body > 0:
            for chunk in resp.iter_content(_CHUNK):
                parts.append(chunk)
                size += len(chunk)
                if size >= self.max_body or attempt.abandoned:
                    truncated = True
                    break
        else:
            truncated = True
        body = b"".join(parts)
        return Answer(resp.status_code, resp.headers, body[:self.max_body],
                      truncated or len(body) > self.max_body)

    # -- on the caller's thread, at the deadline -------------------------------------

    @staticmethod
    def _abandon(attempt: _Attempt) -> None:
        with attempt.lock:
            attempt.abandoned = True
            resp = attempt.response
        if resp is None:
            return           # still in connect/send/headers: left to its socket timeout
        sock = _socket_of(resp)
        if sock is not None:
            # the plain socket's shutdown, also for TLS: it wakes the blocked read
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _origin(url: str) -> str:
    try:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.hostname}:{parts.port}"
    except ValueError:          # a bad port: requests will say so
        return url


def _socket_of(resp: Any) -> socket.socket | None:
    """The socket under a streamed ``requests`` response (urllib3 1.26 and 2.x)."""
    raw = getattr(resp, "raw", None)
    conn = getattr(raw, "_connection", None) or getattr(raw, "connection", None)
    sock = getattr(conn, "sock", None)
    if isinstance(sock, socket.socket):
        return sock
    fp = getattr(getattr(raw, "_fp", None), "fp", None)         # http.client's reader
    sock = getattr(getattr(fp, "raw", None), "_sock", None)
    return sock if isinstance(sock, socket.socket) else None
