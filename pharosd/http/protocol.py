"""HTTP/1.1 as far as the listener needs it: request heads in, responses out (pure).

Only ``GET`` and ``HEAD`` without a body are served. Limits, each answered
with its status and the connection closed: a head (request line and
headers) longer than ``MAX_HEAD`` bytes (431), a request line longer than
``MAX_LINE`` (414), more than ``MAX_HEADERS`` headers (431), a body
announced (413), another method (405), a version other than 1.0/1.1 (505),
anything unparsable (400). HTTP/1.1 connections stay open unless the client
says ``Connection: close``; HTTP/1.0 ones close after one answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import unquote

MAX_HEAD = 8192
MAX_LINE = 4096
MAX_HEADERS = 64


class HttpError(Exception):
    """A request that gets an error status and a closed connection."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: str
    version: str
    headers: dict[str, str] = field(default_factory=dict)   # lower-case names

    @property
    def keep_alive(self) -> bool:
        conn = self.headers.get("connection", "").lower()
        if self.version == "HTTP/1.1":
            return "close" not in conn
        return False


def head_end(buf: bytes | bytearray) -> int:
    """Index just past the blank line ending a request head, or -1."""
    i = buf.find(b"\r\n\r\n")
    j = buf.find(b"\n\n")
    ends = [k + 4 for k in (i,) if k >= 0] + [k + 2 for k in (j,) if k >= 0]
    return min(ends) if ends else -1


def check_partial(buf: bytes | bytearray) -> None:
    """Raise for a head that is already too long before it is complete."""
    if len(buf) > MAX_HEAD:
        raise HttpError(431, f"request head longer than {MAX_HEAD} bytes")
    first = buf.find(b"\n")
    if (first < 0 and len(buf) > MAX_LINE) or first > MAX_LINE:
        raise HttpError(414, f"request line longer than {MAX_LINE} bytes")


def parse_head(head: bytes) -> Request:
    """Parse a complete request head (ending with its blank line)."""
    check_partial(head)
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError as exc:   # pragma: no cover - latin-1 decodes anything
        raise HttpError(400, "undecodable request") from exc
    lines = text.replace("\r\n", "\n").split("\n")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        raise HttpError(400, "malformed request line")
    method, target, version = parts
    if version not in ("HTTP/1.0", "HTTP/1.1"):
        raise HttpError(505, f"unsupported version {version[:16]!r}")
    headers: dict[str, str] = {}
    count = 0
    for line in lines[1:]:
        if not line:
            continue
        if line[0] in " \t":
            raise HttpError(400, "folded header lines are not accepted")
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise HttpError(400, "malformed header line")
        count += 1
        if count > MAX_HEADERS:
            raise HttpError(431, f"more than {MAX_HEADERS} headers")
        key = name.lower()
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    if method not in ("GET", "HEAD"):
        raise HttpError(405, f"method {method[:16]!r} not allowed: GET or HEAD")
    if "transfer-encoding" in headers or headers.get("content-length", "0") not in ("0", ""):
        raise HttpError(413, "request bodies are not accepted")
    if not target.startswith("/"):
        raise HttpError(400, "expected an origin-form target such as /metrics")
    path, _, query = target.partition("?")
    return Request(method, unquote(path), query, version, headers)


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()


def encode_reply(reply: Reply, *, head_only: bool, keep_alive: bool) -> bytes:
    """The response bytes: status line, headers, and the body unless ``head_only``."""
    try:
        reason = HTTPStatus(reply.status).phrase
    except ValueError:
        reason = "Unknown"
    lines = [f"HTTP/1.1 {reply.status} {reason}",
             f"Content-Type: {reply.content_type}",
             f"Content-Length: {len(reply.body)}",
             "Cache-Control: no-store",
             "X-Content-Type-Options: nosniff",
             f"Connection: {'keep-alive' if keep_alive else 'close'}"]
    lines += [f"{k}: {v}" for k, v in reply.headers]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only else head + reply.body


def error_reply(status: int, message: str) -> Reply:
    return Reply(status, (message + "\n").encode("utf-8", "replace"))
