"""Snappy *block* compression for remote_write, from whichever library is installed.

remote_write 1.0 bodies are snappy block format (the framed/stream format is
refused with 400 "snappy: corrupt input"). ``cramjam`` (a dependency of the
Python package) is preferred; Debian's ``python3-snappy`` (module ``snappy``,
whose ``compress`` is the block format; the .deb depends on it) is the
fallback. ``pharosd check-config`` reports a missing one. The
choice is made on first use, not at import time; with neither installed
``codec()`` raises ``UplinkError`` naming both packages.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pharosd.errors import UplinkError


@dataclass(frozen=True)
class Codec:
    """A pair of block-format functions and where they come from."""

    name: str
    compress: Callable[[bytes], bytes]
    decompress: Callable[[bytes], bytes]


_cached: list[Codec] = []


def _load() -> Codec:
    try:
        import cramjam
    except ImportError:
        pass
    else:
        raw = cramjam.snappy

        def c_compress(data: bytes) -> bytes:
            return bytes(raw.compress_raw(data))

        def c_decompress(data: bytes) -> bytes:
            return bytes(raw.decompress_raw(data))

        return Codec("cramjam", c_compress, c_decompress)
    try:
        import snappy
    except ImportError:
        raise UplinkError(
            "remote_write needs snappy block compression: install the Python package "
            "'cramjam' (pip install cramjam) or Debian's python3-snappy"
        ) from None

    def s_compress(data: bytes) -> bytes:
        return bytes(snappy.compress(data))

    def s_decompress(data: bytes) -> bytes:
        return bytes(snappy.decompress(data))

    return Codec("python-snappy", s_compress, s_decompress)


def codec() -> Codec:
    """The snappy codec, loaded once (raises ``UplinkError`` when none is installed)."""
    if not _cached:
        _cached.append(_load())
    return _cached[0]


def compress(data: bytes) -> bytes:
    return codec().compress(data)


def decompress(data: bytes) -> bytes:
    try:
        return codec().decompress(data)
    except UplinkError:
        raise
    except Exception as e:  # each library raises its own error type
        raise UplinkError(f"snappy: corrupt input ({e})") from None
