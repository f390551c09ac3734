"""Peak RSS of a webhook delivery answered by a 500 with a 200 MiB body.

Starts a socket server on 127.0.0.1 that answers every POST with
``HTTP/1.1 500`` and a 200 MiB body written lazily, then runs one
``WebhookSink.deliver`` in a child process and prints the child's peak RSS
before and after the delivery (``ru_maxrss``), what the delivery raised, and
how many bytes the server managed to send. Usage:
``python bench/bench_hostile_http.py``. The figures go in docs/benchmarks.md.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading

SIZE = 200 * 1024 * 1024

CHILD = r"""
import resource, sys, time
from pharosd.errors import DeliveryError
from pharosd.model import AlertEvent, fingerprint
from pharosd.sinks.webhook import WebhookSink

def rss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

sink = WebhookSink("hook", sys.argv[1], timeout=60.0)
now = time.time()
ev = AlertEvent(status="firing", rule="r", level="warning", metric="m", labels=(), value=1.0,
                limit=0.0, op="above", host="h", started_at=now, at=now, summary="s",
                fingerprint=fingerprint("r", ()))
import requests  # noqa: F401  (imported before the first figure, as the sink would)
before = rss()
try:
    sink.deliver(ev)
    outcome = "delivered"
except DeliveryError as e:
    outcome = type(e).__name__ + ": " + str(e)[:80]
print(f"peak RSS before {before:.1f} MiB, after {rss():.1f} MiB; {outcome}")
"""


def serve(listener: socket.socket, sent: list[int]) -> None:
    conn, _ = listener.accept()
    with conn:
        data = b""
        while b"\r\n\r\n" not in data:
            data += conn.recv(65536)
        conn.sendall(f"HTTP/1.1 500 Oops\r\nContent-Length: {SIZE}\r\n\r\n".encode())
        chunk = b"x" * 65536
        try:
            while sent[0] < SIZE:
                conn.sendall(chunk)
                sent[0] += len(chunk)
        except OSError:
            pass


def main() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    sent = [0]
    server = threading.Thread(target=serve, args=(listener, sent), daemon=True)
    server.start()
    subprocess.run([sys.executable, "-c", CHILD, f"http://127.0.0.1:{port}/hook"], check=True)
    server.join(30)
    print(f"the server sent {sent[0] / 1024 / 1024:.1f} MiB of its {SIZE // 1024 // 1024} MiB")


if __name__ == "__main__":
    main()
