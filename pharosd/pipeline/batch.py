"""``Batch``: a self-contained group of samples in packed arrays, and its spill encoding.

A batch holds its series once (``keys``: ``(metric, labels)`` pairs) and,
per sample, an index into ``keys``, a timestamp in milliseconds and a value,
each in a packed ``array`` (20 bytes a sample, no Python object per sample).
Batches leave the hot buffer, are encoded for remote_write, and are written
to and read back from the spill with ``to_bytes``/``from_bytes``.

``by_time()`` gives the batch sorted by timestamp (stable, so each series
stays in arrival order between equal times) without the duplicates a series
may carry at one timestamp (the later value wins): what a receiver wants.
"""

from __future__ import annotations

import json
import struct
import sys
from array import array
from collections.abc import Sequence

from pharosd.errors import UplinkError
from pharosd.model import Labels

SeriesKey = tuple[str, Labels]   # (dotted metric name, sorted labels)

_MAGIC = b"PSB1"
_HEADER = struct.Struct("<4sII")   # magic, length of the series JSON, sample count


class Batch:
    """Samples of several series, packed; ``len()`` is the number of samples."""

    __slots__ = ("keys", "sidx", "ts", "val")

    def __init__(self, keys: list[SeriesKey], sidx: array[int], ts: array[int],
                 val: array[float]) -> None:
        self.keys = keys
        self.sidx = sidx    # 'I': index into keys
        self.ts = ts        # 'q': milliseconds since the epoch
        self.val = val      # 'd'

    @classmethod
    def empty(cls) -> Batch:
        return cls([], array("I"), array("q"), array("d"))

    @classmethod
    def of(cls, rows: Sequence[tuple[SeriesKey, int, float]]) -> Batch:
        """A batch from ``(key, ts_ms, value)`` rows (tests, tools)."""
        index: dict[SeriesKey, int] = {}
        b = cls.empty()
        for key, t, v in rows:
            i = index.get(key)
            if i is None:
                i = index[key] = len(b.keys)
                b.keys.append(key)
            b.sidx.append(i)
            b.ts.append(t)
            b.val.append(v)
        return b

    def __len__(self) -> int:
        return len(self.ts)

    def __repr__(self) -> str:
        return f"Batch(samples={len(self)}, series={len(self.keys)})"

    @property
    def min_ts(self) -> int:
        return min(self.ts) if self.ts else 0

    @property
    def max_ts(self) -> int:
        return max(self.ts) if self.ts else 0

    def rows(self) -> list[tuple[SeriesKey, int, float]]:
        keys = self.keys
        return [(keys[s], t, v) for s, t, v in zip(self.sidx, self.ts, self.val, strict=True)]

    def slice(self, lo: int, hi: int) -> Batch:
        """Samples ``lo:hi`` (shares ``keys``)."""
        return Batch(self.keys, self.sidx[lo:hi], self.ts[lo:hi], self.val[lo:hi])

    def is_time_sorted(self) -> bool:
        ts = self.ts.tolist()
        return ts == sorted(ts)         # timsort of sorted data: one C-speed pass

    def by_time(self) -> Batch:
        """Sorted by timestamp, one sample per (series, timestamp): the last one offered."""
        n = len(self)
        ts, sidx = self.ts, self.sidx
        in_order = self.is_time_sorted()
        if in_order and len(set(zip(sidx, ts, strict=True))) == n:
            return self                 # sorted, no series twice at one time (the usual)
        order: Sequence[int] = range(n) if in_order else sorted(
            range(n), key=ts.__getitem__)
        # Drop a sample when a later one of the same series has the same time.
        keep: list[int] = []
        last_at: dict[int, int] = {}     # (series) -> position in keep of its sample at ts
        last_ts: dict[int, int] = {}
        for i in order:
            s, t = sidx[i], ts[i]
            if last_ts.get(s) == t:
                keep[last_at[s]] = i
                continue
            last_ts[s] = t
            last_at[s] = len(keep)
            keep.append(i)
        if len(keep) == n and isinstance(order, range):
            return self
        val = self.val
        return Batch(self.keys, array("I", [sidx[i] for i in keep]),
                     array("q", [ts[i] for i in keep]), array("d", [val[i] for i in keep]))

    def compact(self) -> Batch:
        """The same samples with ``keys`` reduced to the series they use."""
        used: dict[int, int] = {}
        for s in self.sidx:
            if s not in used:
                used[s] = len(used)
        if len(used) == len(self.keys):
            return self
        keys = [self.keys[0]] * len(used)
        for old, new in used.items():
            keys[new] = self.keys[old]
        return Batch(keys, array("I", [used[s] for s in self.sidx]), self.ts, self.val)

    @staticmethod
    def concat(parts: Sequence[Batch]) -> Batch:
        """One batch of every sample of ``parts`` (in that order)."""
        first = parts[0].keys if parts else []
        if all(p.keys == first for p in parts):     # the same series (spilled rows)
            out = Batch(list(first), array("I"), array("q"), array("d"))
            for p in parts:
                out.sidx.extend(p.sidx)
                out.ts.extend(p.ts)
                out.val.extend(p.val)
            return out
        out = Batch.empty()
        index: dict[SeriesKey, int] = {}
        for p in parts:
            remap = array("I")
            for key in p.keys:
                i = index.get(key)
                if i is None:
                    i = index[key] = len(out.keys)
                    out.keys.append(key)
                remap.append(i)
            out.sidx.extend(remap[s] for s in p.sidx)
            out.ts.extend(p.ts)
            out.val.extend(p.val)
        return out

    # -- spill encoding -------------------------------------------------------

    def to_bytes(self) -> bytes:
        """Uncompressed, little-endian: header, series as JSON, then the three arrays."""
        b = self.compact()
        series = json.dumps([[m, [list(p) for p in labels]] for m, labels in b.keys],
                            separators=(",", ":"), ensure_ascii=False).encode()
        sidx, ts, val = b.sidx, b.ts, b.val
        if sys.byteorder != "little":
            sidx, ts, val = array("I", sidx), array("q", ts), array("d", val)
            sidx.byteswap()
            ts.byteswap()
            val.byteswap()
        return b"".join([_HEADER.pack(_MAGIC, len(series), len(b)), series,
                         sidx.tobytes(), ts.tobytes(), val.tobytes()])

    @classmethod
    def from_bytes(cls, data: bytes,
                   known: dict[bytes, tuple[SeriesKey, ...]] | None = None) -> Batch:
        """The batch ``to_bytes`` wrote. ``known`` remembers the series of earlier
        batches by their encoded bytes (spilled rows of one host repeat them), so
        they are decoded once; the caller bounds it."""
        try:
            magic, jlen, n = _HEADER.unpack_from(data, 0)
            if magic != _MAGIC:
                raise ValueError(f"bad magic {magic!r}")
            off = _HEADER.size
            blob = data[off:off + jlen]
            decoded = None if known is None else known.get(blob)
            if decoded is None:
                raw = json.loads(blob)
                decoded = tuple((str(m), tuple((str(k), str(v)) for k, v in labels))
                                for m, labels in raw)
                if known is not None:
                    known[blob] = decoded
            keys: list[SeriesKey] = list(decoded)
            off += jlen
            sidx, ts, val = array("I"), array("q"), array("d")
            for a in (sidx, ts, val):
                size = a.itemsize * n
                chunk = data[off:off + size]
                if len(chunk) != size:
                    raise ValueError("truncated")
                a.frombytes(chunk)
                off += size
            if sys.byteorder != "little":
                for a in (sidx, ts, val):
                    a.byteswap()
            if n and max(sidx) >= len(keys):
                raise ValueError("series index out of range")
        except (ValueError, TypeError, struct.error, UnicodeDecodeError) as e:
            raise UplinkError(f"spilled batch is corrupt: {e}") from None
        return cls(keys, sidx, ts, val)
