"""How a lane's request reaches a receiver: the ``Transport`` and the ``Launcher``.

A ``uplink.Lane`` never touches the network or starts a thread itself:

* ``Transport.post(settings, body)`` sends one encoded, compressed
  WriteRequest and returns the receiver's ``Reply`` (status, the start of
  the body of a non-2xx answer, ``Retry-After`` in seconds); it raises when
  there is no answer (refused, timeout, TLS). Lanes use
  ``connection.ConnectionTransport`` (one kept-alive ``http.client``
  connection), which hands receivers behind a proxy to ``HttpTransport``:
  one session (``pharosd.httpclient.new_session``: proxies from the
  environment, trust from the config), replaced when the URL or TLS
  settings change, posting through ``httpclient.BoundedClient`` (a
  whole-request deadline, a capped answer); ``Retry-After`` is read by
  ``pharosd.backoff.parse_retry_after`` (seconds or an HTTP date).
* ``Launcher.launch(job)`` runs a request's job (encode, compress, post)
  without blocking the uplink worker: ``ThreadLauncher`` on a short-lived
  daemon thread, ``connection.SerialLauncher`` on one long-lived thread
  (production), ``InlineLauncher`` at once on the caller's
  thread, so tests drive a lane on a ``FakeClock`` deterministically.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from pharosd.backoff import parse_retry_after
from pharosd.clock import Clock, SystemClock
from pharosd.httpclient import BoundedClient, new_session

if TYPE_CHECKING:
    from pharosd.pipeline.receiver import ReceiverSettings

__all__ = ["HttpTransport", "InlineLauncher", "Launcher", "Reply", "ThreadLauncher",
           "Transport"]

BODY_KEEP = 2048            # bytes of a non-2xx answer's body kept for logs and verdicts


@dataclass(frozen=True)
class Reply:
    """A receiver's answer to one request."""

    status: int
    body: str = ""                      # the start of the body of a non-2xx answer
    retry_after: float | None = None    # seconds, from a Retry-After header


class Transport(Protocol):
    def post(self, settings: ReceiverSettings, body: bytes) -> Reply: ...
    def close(self) -> None: ...


class Launcher(Protocol):
    def launch(self, job: Callable[[], None]) -> None: ...


class ThreadLauncher:
    """Runs each job on its own daemon thread (a hung request never blocks the worker)."""

    def launch(self, job: Callable[[], None]) -> None:
        threading.Thread(target=job, name="uplink-request", daemon=True).start()


class InlineLauncher:
    """Runs each job at once on the caller's thread (tests, on a fake clock)."""

    def launch(self, job: Callable[[], None]) -> None:
        job()


class HttpTransport:
    """POSTs with one ``requests.Session``, replaced when ``transport_key`` changes."""

    def __init__(self, clock: Clock | None = None) -> None:
        self._clock: Clock = clock or SystemClock()
        self._session: Any = None
        self._key: tuple[Any, ...] | None = None
        self._lock = threading.Lock()
        self._bounded = BoundedClient()      # whole-request deadline, capped body

    def _session_for(self, settings: ReceiverSettings) -> Any:
        with self._lock:
            key = settings.transport_key()
            if self._session is None or self._key != key:
                if self._session is not None:
                    self._session.close()
                if settings.verify is False:
                    import urllib3

                    urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
                # proxies from the environment, trust from the config
                self._session, self._key = new_session(), key
            return self._session

    def post(self, settings: ReceiverSettings, body: bytes) -> Reply:
        session = self._session_for(settings)
        # BoundedClient measures its deadline on the real monotonic clock
        resp = self._bounded.post(session, settings.url, data=body, headers=settings.headers,
                                  deadline=SystemClock().monotonic() + settings.timeout,
                                  verify=settings.verify, cert=settings.cert,
                                  allow_redirects=False)
        text = resp.body.decode("utf-8", "replace")[:BODY_KEEP] if resp.status >= 300 else ""
        return Reply(resp.status, text,
                     parse_retry_after(resp.headers.get("Retry-After"), self._clock.wall()))

    def close(self) -> None:
        with self._lock:
            if self._session is not None:
                self._session.close()
                self._session = None
                self._key = None
