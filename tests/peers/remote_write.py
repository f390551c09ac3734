"""Read remote_write 1.0 requests in tests: an independent protobuf decoder.

Written from the wire-format spec (varint, fixed64, length-delimited), not
from pharosd's encoder, so a test can check the encoder against it. A
``Receiver`` (peers.receiver) records requests; ``decode_request`` turns one
into ``[(labels_dict, [(ts_ms, value_bits, value)])]`` after snappy.
"""

from __future__ import annotations

import struct
from typing import Any


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def fields(buf: bytes) -> list[tuple[int, int, Any]]:
    """(field number, wire type, value) of every field of one message."""
    out: list[tuple[int, int, Any]] = []
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _varint(buf, i)
            out.append((num, wt, v))
        elif wt == 1:
            out.append((num, wt, buf[i:i + 8]))
            i += 8
        elif wt == 2:
            n, i = _varint(buf, i)
            if i + n > len(buf):
                raise ValueError("truncated length-delimited field")
            out.append((num, wt, buf[i:i + n]))
            i += n
        elif wt == 5:
            out.append((num, wt, buf[i:i + 4]))
            i += 4
        else:
            raise ValueError(f"unsupported wire type {wt}")
    return out


def _int64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


Series = tuple[list[tuple[str, str]], list[tuple[int, int, float]]]


def decode_write_request(data: bytes) -> list[Series]:
    """Uncompressed WriteRequest -> [(label pairs in wire order, [(ts, bits, value)])]."""
    out: list[Series] = []
    for num, wt, ts_buf in fields(data):
        assert (num, wt) == (1, 2), f"unexpected WriteRequest field {num}/{wt}"
        labels: list[tuple[str, str]] = []
        samples: list[tuple[int, int, float]] = []
        for fnum, fwt, val in fields(ts_buf):
            if (fnum, fwt) == (1, 2):
                name = value = ""
                for lnum, _, lval in fields(val):
                    if lnum == 1:
                        name = lval.decode()
                    elif lnum == 2:
                        value = lval.decode()
                labels.append((name, value))
            elif (fnum, fwt) == (2, 2):
                ts, bits = 0, 0
                for snum, swt, sval in fields(val):
                    if (snum, swt) == (1, 1):
                        bits = struct.unpack("<Q", sval)[0]
                    elif (snum, swt) == (2, 0):
                        ts = _int64(sval)
                samples.append((ts, bits, struct.unpack("<d", struct.pack("<Q", bits))[0]))
            else:
                raise AssertionError(f"unexpected TimeSeries field {fnum}/{fwt}")
        out.append((labels, samples))
    return out


def decode_request(body: bytes) -> list[Series]:
    """A snappy-compressed request body (block format) -> its series."""
    try:
        import cramjam

        raw = bytes(cramjam.snappy.decompress_raw(body))
    except ImportError:
        import snappy

        raw = snappy.decompress(body)
    return decode_write_request(raw)


def flat(series: list[Series]) -> list[tuple[str, dict[str, str], int, float]]:
    """[(__name__, other labels, ts, value)] of decoded series."""
    rows = []
    for labels, samples in series:
        d = dict(labels)
        name = d.pop("__name__", "")
        for ts, _, v in samples:
            rows.append((name, d, ts, v))
    return rows
