"""SHA-256 for the daemon's stable ids, without loading OpenSSL.

``hashlib`` imports ``_hashlib``, which maps OpenSSL's libcrypto: about 3.4 MiB of
resident memory in a daemon that otherwise needs no OpenSSL (no TLS, no HMAC) on
most configs. Rule ids, alert fingerprints and the config digest need only SHA-256,
and CPython ships its own implementation of it (``_sha256`` on 3.11, ``_sha2`` from
3.12): the one ``hashlib`` itself falls back to, giving the same digests. Code that
needs OpenSSL anyway (TLS, HMAC signatures) keeps using ``hashlib``.
"""

from __future__ import annotations

try:
    from _sha256 import sha256
except ImportError:  # pragma: no cover - Python 3.12 and later
    try:
        from _sha2 import sha256  # type: ignore[import-not-found, no-redef]
    except ImportError:
        from hashlib import sha256  # type: ignore[assignment]

__all__ = ["sha256"]
