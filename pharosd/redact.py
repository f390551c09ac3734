"""Keeping secrets out of logs, status and error messages.

``redact_url`` is the one form of a URL that may be logged or stored: the
scheme, host, port and path stay; the user info (``user:password@``, or a
token given as the user name) and the value of every query parameter
(``?token=...``, ``?api_key=...``, any other) become ``***``; a fragment is
dropped. A URL that cannot be parsed becomes ``***``.

``scrub`` replaces known secret strings in free text (an exception's
message may quote a header or a URL); ``url_secrets`` lists the parts of a
URL that ``redact_url`` hides, for ``scrub``.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import parse_qsl, urlsplit, urlunsplit

__all__ = ["MASK", "redact_url", "scrub", "url_secrets"]

MASK = "***"


def redact_url(url: str) -> str:
    """``https://u:pw@host:8443/p?token=abc`` -> ``https://***@host:8443/p?token=***``."""
    try:
        p = urlsplit(url)
        host = p.hostname or ""
        if ":" in host:                     # an IPv6 literal
            host = f"[{host}]"
        if p.port is not None:
            host = f"{host}:{p.port}"
    except ValueError:
        return MASK
    if "@" in p.netloc:                     # user info: a name may be a token too
        host = f"{MASK}@{host}"
    query = ""
    if p.query:
        keys = [k for k, _ in parse_qsl(p.query, keep_blank_values=True)]
        query = "&".join(f"{k}={MASK}" for k in keys) if keys else MASK
    return urlunsplit((p.scheme, host, p.path, query, ""))


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret of at least 3 characters replaced by ``***``."""
    for s in secrets:
        if s and len(s) >= 3:
            text = text.replace(s, MASK)
    return text


def url_secrets(url: str) -> list[str]:
    """What ``redact_url`` hides of ``url``: user, password, the query and each query
    value, longest first (so ``scrub`` replaces a whole before its parts)."""
    try:
        p = urlsplit(url)
        found = [p.username or "", p.password or "", p.query, p.fragment]
        found += [v for _, v in parse_qsl(p.query, keep_blank_values=True)]
    except ValueError:
        return [url]
    return sorted({s for s in found if s}, key=len, reverse=True)
