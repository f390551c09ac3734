"""``ServedOnThread``: the life of an in-process receiver (a ``socketserver`` server
serving on a daemon thread of its own from ``start()`` until ``stop()``).

The HTTP receiver (``peers.receiver``) and the hostile one (``peers.hostile``)
build their server in ``start()`` and hand it to ``_serve``; ``stop()`` sets
``_stop`` (for handlers that loop), shuts the server down and closes it.
Both are context managers.
"""

from __future__ import annotations

import socketserver
import threading
from typing import Any, Self


class ServedOnThread:
    def __init__(self) -> None:
        self._stop = threading.Event()
        self._server: socketserver.BaseServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        raise NotImplementedError

    def _serve(self, server: socketserver.BaseServer) -> None:
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
