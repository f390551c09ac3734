"""The expiry time of an X.509 certificate, read from its DER bytes: pure, no I/O.

``ssl`` gives the peer certificate as a dict only when it was verified; the
http probe reports expiry even with ``insecure: true`` or a certificate that
fails verification, so it reads ``getpeercert(binary_form=True)`` here. Only
the path to ``tbsCertificate.validity.notAfter`` is walked (RFC 5280:
version, serialNumber, signature, issuer, validity); ``ValueError`` for
anything that does not fit.
"""

from __future__ import annotations

import calendar
import re

_SEQUENCE = 0x30
_INTEGER = 0x02
_VERSION = 0xA0
_UTC_TIME = 0x17
_GENERALIZED_TIME = 0x18
_TIME = re.compile(r"(\d{2}|\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z")


def _tlv(data: bytes, pos: int) -> tuple[int, bytes, int]:
    """(tag, content, position after) of the DER element at ``pos``."""
    if pos + 2 > len(data):
        raise ValueError("truncated DER element")
    tag = data[pos]
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        n = length & 0x7F
        if n == 0 or n > 4 or pos + n > len(data):
            raise ValueError("unsupported DER length")
        length = int.from_bytes(data[pos:pos + n], "big")
        pos += n
    end = pos + length
    if end > len(data):
        raise ValueError("truncated DER element")
    return tag, data[pos:end], end


def _expect(data: bytes, pos: int, tag: int, what: str) -> tuple[bytes, int]:
    got, content, end = _tlv(data, pos)
    if got != tag:
        raise ValueError(f"expected {what} (tag 0x{tag:02x}), got tag 0x{got:02x}")
    return content, end


def parse_time(tag: int, text: str) -> float:
    """A UTCTime or GeneralizedTime (``...Z``) as Unix seconds."""
    m = _TIME.fullmatch(text)
    if m is None or (tag == _UTC_TIME) != (len(m.group(1)) == 2):
        raise ValueError(f"unsupported certificate time {text!r}")
    year = int(m.group(1))
    if tag == _UTC_TIME:
        year += 1900 if year >= 50 else 2000   # RFC 5280 4.1.2.5.1
    fields = (year, *(int(m.group(i)) for i in range(2, 7)))
    return float(calendar.timegm((*fields, 0, 0, 0)))


def not_after(der: bytes) -> float:
    """When the certificate ``der`` expires, as Unix seconds."""
    cert, _ = _expect(der, 0, _SEQUENCE, "Certificate")
    tbs, _ = _expect(cert, 0, _SEQUENCE, "tbsCertificate")
    pos = 0
    tag, _, after = _tlv(tbs, pos)
    if tag == _VERSION:
        pos = after
    _, pos = _expect(tbs, pos, _INTEGER, "serialNumber")
    _, pos = _expect(tbs, pos, _SEQUENCE, "signature")
    _, pos = _expect(tbs, pos, _SEQUENCE, "issuer")
    validity, _ = _expect(tbs, pos, _SEQUENCE, "validity")
    _, _, after_before = _tlv(validity, 0)
    tag, content, _ = _tlv(validity, after_before)
    if tag not in (_UTC_TIME, _GENERALIZED_TIME):
        raise ValueError(f"expected a time for notAfter, got tag 0x{tag:02x}")
    return parse_time(tag, content.decode("ascii", errors="replace"))
