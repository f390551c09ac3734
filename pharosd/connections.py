"""Connection bookkeeping for a one-thread selector server (the control socket, the HTTP listener).

``Connections`` owns the selector and the open connections of one listening
socket. Each connection has a deadline; ``select`` waits at most until the
nearest one (or ``tick``), ``expired`` names those past it, ``close`` forgets
and closes one (``on_close`` runs first, for what the owner keeps beside it).
``accept`` takes what the listener has ready, up to a burst, as
non-blocking sockets. ``half_close`` and ``drain`` end a connection that
has its answer: shut our side, read the client's leftovers until its EOF,
then close, so the client sees the answer rather than a reset (a unix or TCP
socket closed with unread bytes resets its peer).

``wake()``, from any thread, ends ``select``'s wait: it reads the wake-up,
calls ``on_wake`` (when given) and returns what else is ready, perhaps
nothing. A stop wakes the server this way, so it can wait long.

What a connection carries beyond ``Connection`` and what its bytes mean
belong to the server; ``Connection`` subclasses add their own fields.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import structlog

log = structlog.get_logger(__name__)

DRAIN_READ = 65536          # bytes read at once from a client being drained
_WAKE = object()            # the data of the wake-up socket's selector key


@dataclass(eq=False)
class Connection:
    """One accepted connection: its socket, deadline (monotonic) and buffers."""

    sock: socket.socket
    deadline: float
    fd: int = -1                 # the socket's descriptor, kept: a closed socket has none
    inbox: bytearray = field(default_factory=bytearray)
    outbox: bytes = b""
    draining: bool = False       # answered and half-closed; reading the client's leftovers


C = TypeVar("C", bound=Connection)


class Connections(Generic[C]):
    """The selector and the open connections of ``listener`` (registered with data None)."""

    def __init__(self, listener: socket.socket, *,
                 on_close: Callable[[C], None] | None = None,
                 on_wake: Callable[[Connections[C]], None] | None = None) -> None:
        self.listener = listener
        self.sel = selectors.DefaultSelector()
        self._conns: dict[int, C] = {}
        self._on_close = on_close
        self._on_wake = on_wake
        self.sel.register(listener, selectors.EVENT_READ, None)
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self.sel.register(self._wake_r, selectors.EVENT_READ, _WAKE)

    def wake(self) -> None:
        """End ``select``'s wait (from any thread)."""
        with contextlib.suppress(OSError):    # full or closed: a wake-up is pending anyway
            self._wake_w.send(b"\0")


    def __len__(self) -> int:
        return len(self._conns)

    def __iter__(self) -> Iterator[C]:
        return iter(list(self._conns.values()))

    def accept(self, burst: int, failed_event: str) -> Iterator[socket.socket]:
        """Accepted sockets, non-blocking, until none is ready or ``burst`` were taken;
        an error (EMFILE and the like) is logged as ``failed_event`` and ends the round."""
        for _ in range(burst):
            try:
                sock, _addr = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning(failed_event, error=str(exc))
                return
            sock.setblocking(False)
            yield sock

    def add(self, conn: C) -> None:
        """Keep ``conn`` and wait for it to be readable."""
        conn.fd = conn.sock.fileno()
        self._conns[conn.fd] = conn
        self.sel.register(conn.sock, selectors.EVENT_READ, conn)

    def want(self, conn: C, events: int) -> None:
        """Wait for ``events`` (``selectors.EVENT_READ`` and/or ``EVENT_WRITE``) on ``conn``."""
        self.sel.modify(conn.sock, events, conn)

    def select(self, now: float, tick: float) -> list[tuple[selectors.SelectorKey, int]]:
        """What is ready, waiting at most ``tick`` or until the nearest deadline, or until
        ``wake()`` (then ``on_wake`` runs first, and the wake-up is not in the list)."""
        timeout = tick
        if self._conns:
            timeout = min(timeout, max(0.0, min(c.deadline for c in self._conns.values()) - now))
        ready = []
        for key, events in self.sel.select(timeout):
            if key.data is not _WAKE:
                ready.append((key, events))
                continue
            with contextlib.suppress(OSError):
                while self._wake_r.recv(4096):
                    pass
            if self._on_wake is not None:
                self._on_wake(self)
        return ready

    def expired(self, now: float) -> list[C]:
        """The connections whose deadline has come (the caller closes them)."""
        return [c for c in self._conns.values() if c.deadline <= now]

    def close(self, conn: C) -> None:
        """Forget ``conn`` and close its socket (``on_close`` first)."""
        if self._on_close is not None:
            self._on_close(conn)
        self._conns.pop(conn.fd, None)
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(conn.sock)
        with contextlib.suppress(OSError):
            conn.sock.close()

    def close_all(self) -> None:
        """Close every connection and the selector (not the listener: its owner closes it)."""
        for conn in list(self._conns.values()):
            self.close(conn)
        self.sel.close()
        self._wake_r.close()
        self._wake_w.close()

    def half_close(self, conn: C, deadline: float | None = None) -> None:
        """Shut our side of an answered ``conn`` and read until the client's EOF
        (``drain``), by ``deadline`` when given; close it if it cannot be shut."""
        try:
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self.close(conn)
            return
        conn.draining = True
        if deadline is not None:
            conn.deadline = deadline
        self.want(conn, selectors.EVENT_READ)

    def drain(self, conn: C) -> None:
        """Read and drop what a half-closed client still sends; close at its EOF."""
        try:
            data = conn.sock.recv(DRAIN_READ)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self.close(conn)
