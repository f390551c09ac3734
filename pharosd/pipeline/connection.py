"""The uplink's everyday transport: one persistent HTTP connection, one sender thread.

A lane sends one request at a time, about once a second at a 1 s interval.
``requests`` with a helper thread per request (``transport.HttpTransport``
over ``httpclient.BoundedClient``) costs about 1.4 ms of CPU per request;
``http.client`` on a kept-alive connection about a tenth of that. So:

* ``ConnectionTransport.post`` sends over one ``http.client`` connection per
  receiver, made again when the URL or the TLS settings change, after an
  error, or when the receiver closed it. TLS trust comes from the config only
  (``ca_file``, else the system's CAs; ``insecure``; a client certificate).
  At most ``BODY_KEEP`` bytes of an answer's body are read; a longer body
  closes the connection instead of being drained. Redirects are not followed.
  A receiver the environment routes through a proxy (``httpclient.proxies_for``)
  is posted to by ``HttpTransport`` instead, which knows proxies.
* The whole-request deadline: every socket operation waits at most the time
  left until ``timeout``, and ``abort()`` (the lane calls it once a request
  has run past its ``timeout``) shuts the socket down, which ends a peer that
  drips its answer byte by byte. The body is read a chunk at a time with the
  deadline checked between chunks; an answer not complete by the deadline, or
  cut short before its ``Content-Length``, is an error (the samples are sent
  again), never a success.
* ``SerialLauncher`` runs a lane's jobs one after another on one daemon
  thread instead of a new thread per request; the thread ends after a minute
  without work and is started again by the next job.
"""

from __future__ import annotations

import contextlib
import http.client
import queue
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pharosd.backoff import parse_retry_after
from pharosd.clock import Clock, SystemClock
from pharosd.httpclient import proxies_for
from pharosd.pipeline.transport import BODY_KEEP, HttpTransport, Reply

if TYPE_CHECKING:
    from pharosd.pipeline.receiver import ReceiverSettings

IDLE_EXIT = 60.0            # seconds a SerialLauncher's thread waits for work before ending


class ConnectionTransport:
    """POSTs over one kept-alive ``http.client`` connection; see the module docstring."""

    def __init__(self, clock: Clock | None = None) -> None:
        self._clock: Clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._conn: http.client.HTTPConnection | None = None
        self._key: tuple[Any, ...] | None = None
        self._path = "/"
        self._proxied: HttpTransport | None = None

    def post(self, settings: ReceiverSettings, body: bytes) -> Reply:
        if proxies_for(settings.url):
            if self._proxied is None:
                self._proxied = HttpTransport(self._clock)
            return self._proxied.post(settings, body)
        deadline = time.monotonic() + settings.timeout
        conn, reused = self._connection(settings)
        try:
            return self._exchange(conn, settings, body, deadline)
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            self._drop(conn)
            if not reused:
                raise
        except BaseException:
            self._drop(conn)
            raise
        # The receiver had closed the kept-alive connection: once more on a new one.
        conn, _ = self._connection(settings)
        try:
            return self._exchange(conn, settings, body, deadline)
        except BaseException:
            self._drop(conn)
            raise

    def abort(self) -> None:
        """End the request in flight (past its deadline): shut its socket down."""
        with self._lock:
            conn = self._conn
        sock = getattr(conn, "sock", None) if conn is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def close(self) -> None:
        with self._lock:
            conn, self._conn, self._key = self._conn, None, None
        if conn is not None:
            conn.close()
        if self._proxied is not None:
            self._proxied.close()

    # -- internals ----------------------------------------------------------------

    def _exchange(self, conn: http.client.HTTPConnection, settings: ReceiverSettings,
                  body: bytes, deadline: float) -> Reply:
        def left() -> float:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no complete answer within {settings.timeout:g}s "
                                   "(the whole request's deadline)")
            return remaining

        conn.timeout = left()
        if conn.sock is None:
            conn.connect()
        assert conn.sock is not None
        conn.sock.settimeout(left())
        conn.request("POST", self._path, body=body, headers=dict(settings.headers))
        conn.sock.settimeout(left())
        resp = conn.getresponse()
        status = resp.status
        retry_after = resp.getheader("Retry-After")
        data = resp.read() if resp.length == 0 else b""     # closes an empty answer
        while len(data) < BODY_KEEP and not resp.isclosed():    # deadline checked between
            if conn.sock is not None:
                conn.sock.settimeout(left())
            try:
                chunk = resp.read1(BODY_KEEP - len(data))
            except TimeoutError:
                left()              # past the deadline: say so
                raise
            if not chunk:
                left()              # cut short by abort() at the deadline: say so
                if resp.length:     # ended before its Content-Length
                    raise http.client.IncompleteRead(data, resp.length)
                break
            data += chunk
            left()
        if not resp.isclosed():
            resp.close()            # more than BODY_KEEP left: the connection goes
            self._drop(conn)
        elif resp.will_close:
            self._drop(conn)
        text = data.decode("utf-8", "replace")[:BODY_KEEP] if status >= 300 else ""
        return Reply(status, text, parse_retry_after(retry_after, self._clock.wall()))

    def _connection(self, settings: ReceiverSettings) -> tuple[http.client.HTTPConnection, bool]:
        """The kept connection (and True), or a new one for these settings (and False)."""
        key = settings.transport_key()
        with self._lock:
            if self._conn is not None and self._key == key:
                return self._conn, self._conn.sock is not None
            old, self._conn = self._conn, None
        if old is not None:
            old.close()
        parts = urlsplit(settings.url)
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        host = parts.hostname or ""
        conn: http.client.HTTPConnection
        if parts.scheme == "https":
            conn = http.client.HTTPSConnection(host, parts.port, timeout=settings.timeout,
                                               context=_tls_context(settings))
        else:
            conn = http.client.HTTPConnection(host, parts.port, timeout=settings.timeout)
        with self._lock:
            self._conn, self._key = conn, key
        return conn, False

    def _drop(self, conn: http.client.HTTPConnection) -> None:
        conn.close()
        with self._lock:
            if self._conn is conn:
                self._conn, self._key = None, None


def _tls_context(settings: ReceiverSettings) -> ssl.SSLContext:
    """Trust from the config: ``ca_file`` or the system's CAs, or none when insecure."""
    if settings.verify is False:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif isinstance(settings.verify, str):
        ctx = ssl.create_default_context(cafile=settings.verify)
    else:
        ctx = ssl.create_default_context()
    if settings.cert is not None:
        ctx.load_cert_chain(settings.cert[0], settings.cert[1])
    return ctx


class SerialLauncher:
    """Runs jobs one after another on one daemon thread (started when needed)."""

    def __init__(self, name: str = "uplink-sender", idle_exit: float = IDLE_EXIT) -> None:
        self._name = name
        self._idle_exit = idle_exit
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def launch(self, job: Callable[[], None]) -> None:
        with self._lock:
            self._jobs.put(job)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name,
                                                daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                job = self._jobs.get(timeout=self._idle_exit)
            except queue.Empty:
                with self._lock:
                    if self._jobs.empty():
                        self._thread = None
                        return
                continue
            with contextlib.suppress(Exception):    # a job reports its own errors
                job()
