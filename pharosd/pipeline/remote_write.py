"""Prometheus remote_write 1.0: the WriteRequest encoder, the headers, and reading answers.

The protobuf messages are few and fixed, so they are encoded by hand (no
protobuf runtime, no generated code)::

    WriteRequest { repeated TimeSeries timeseries = 1; }
    TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2; }
    Label        { string name = 1; string value = 2; }
    Sample       { double value = 1; int64 timestamp = 2; }   // ms

Every series' label fields are encoded once and cached (``LabelCache``);
a sample is then a 3-part byte join. Label mapping (docs/uplink.md):
``__name__`` is ``pharos_`` + the dotted metric with invalid characters
turned into ``_`` (``memory.used_percent`` -> ``pharos_memory_used_percent``);
label names get the same treatment (a leading digit gets a ``_``); names
starting with ``__`` and empty values are left out (an empty value means
"no such label" in Prometheus); external labels are added unless the series
has its own label of that name; labels are sorted by name.

``classify`` turns a receiver's answer into what the uplink does next.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable, Iterable, Mapping

from pharosd import __version__
from pharosd.model import wire_label_name, wire_name
from pharosd.pipeline.batch import Batch, SeriesKey

# The stale marker: a NaN with this exact bit pattern (Prometheus value.StaleNaN).
STALE_NAN_BITS = 0x7FF0000000000002
STALE_NAN_BYTES = struct.pack("<Q", STALE_NAN_BITS)

_pack_d = struct.Struct("<d").pack
_SAMPLE_STRUCTS: dict[int, struct.Struct] = {}


def _sample_struct(varint_len: int) -> struct.Struct:
    st = _SAMPLE_STRUCTS.get(varint_len)
    if st is None:
        st = _SAMPLE_STRUCTS[varint_len] = struct.Struct(f"<3sd{1 + varint_len}s")
    return st


def stale_nan() -> float:
    """The stale-marker NaN as a Python float (its bits survive ``array('d')``)."""
    value: float = struct.unpack("<d", STALE_NAN_BYTES)[0]
    return value


def is_stale_nan(value: float) -> bool:
    return _pack_d(value) == STALE_NAN_BYTES


def varint(n: int) -> bytes:
    """Protobuf base-128 varint; negative int64 as its 64-bit two's complement."""
    if n < 0:
        n &= 0xFFFFFFFFFFFFFFFF
    if n < 0x80:
        return bytes((n,))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field_bytes(tag: int, data: bytes) -> bytes:
    return bytes((tag,)) + varint(len(data)) + data


def encode_labels(pairs: Iterable[tuple[str, str]]) -> bytes:
    """The ``labels`` fields of one TimeSeries (pairs already sorted and valid)."""
    out = bytearray()
    for name, value in pairs:
        n = name.encode("utf-8", "replace")
        v = value.encode("utf-8", "replace")
        ln, lv = len(n), len(v)
        if ln + lv < 124:                       # every length fits one varint byte
            out += bytes((0x0A, ln + lv + 4, 0x0A, ln))
            out += n
            out += bytes((0x12, lv))
            out += v
        else:
            out += _field_bytes(0x0A, _field_bytes(0x0A, n) + _field_bytes(0x12, v))
    return bytes(out)


def wire_labels(key: SeriesKey, external: Mapping[str, str], prefix: str = "pharos_",
                names: dict[str, str] | None = None) -> list[tuple[str, str]]:
    """The sorted label pairs of a series on the wire, ``__name__`` included.
    ``names`` memoizes the name mapping across calls."""
    metric, labels = key
    memo = names if names is not None else {}
    wn = memo.get(metric)
    if wn is None:
        wn = memo[metric] = wire_name(metric, prefix)
    out: dict[str, str] = {"__name__": wn}
    for k, v in labels:
        if not v:
            continue
        name = memo.get("\0" + k)
        if name is None:
            name = memo["\0" + k] = wire_label_name(k)
        if name.startswith("__") or name in out:
            continue
        out[name] = v
    for k, v in external.items():
        if v and k not in out:
            out[k] = v
    return sorted(out.items())


class LabelCache:
    """Series key -> its encoded label fields (with the external labels), bounded.

    When ``max_entries`` is reached the cache starts over: churn costs a
    re-encode, never unbounded memory.
    """

    def __init__(self, external: Mapping[str, str], prefix: str = "pharos_",
                 max_entries: int = 100_000) -> None:
        self.external = dict(external)
        self.prefix = prefix
        self.max_entries = max_entries
        self.table: dict[SeriesKey, bytes] = {}   # read directly by the encoder
        self._names: dict[str, str] = {}     # metric / "\0" + label name -> wire name

    def get(self, key: SeriesKey) -> bytes:
        data = self.table.get(key)
        if data is None:
            if len(self.table) >= self.max_entries:
                self.table.clear()
                self._names.clear()
            data = self.table[key] = encode_labels(
                wire_labels(key, self.external, self.prefix, self._names))
        return data

    def __len__(self) -> int:
        return len(self.table)


def encode_write_request(batch: Batch, labels: LabelCache) -> bytes:
    """The protobuf WriteRequest of ``batch``: one TimeSeries per series, samples in
    batch order (callers pass ``batch.by_time()`` so each series is in time order)."""
    per: list[list[bytes]] = [[] for _ in batch.keys]
    heads: dict[int, tuple[Callable[..., bytes], bytes, bytes]] = {}
    for s, t, v in zip(batch.sidx, batch.ts, batch.val, strict=True):
        ht = heads.get(t)
        if ht is None:
            vt = varint(t)
            # Sample field (tag 2, length 10 + len(vt)), value tag 1 (fixed64) ...
            # the double ... timestamp tag 2 (varint) and the varint.
            ht = heads[t] = (_sample_struct(len(vt)).pack,
                             bytes((0x12, 10 + len(vt), 0x09)), b"\x10" + vt)
        per[s].append(ht[0](ht[1], v, ht[2]))
    out: list[bytes] = []
    put = out.append
    table, miss = labels.table, labels.get
    for key, items in zip(batch.keys, per, strict=True):
        if not items:
            continue
        samples = items[0] if len(items) == 1 else b"".join(items)
        lb = table.get(key) or miss(key)
        n = len(lb) + len(samples)
        if n < 0x4000:          # the TimeSeries field tag and a 1- or 2-byte length
            put(bytes((0x0A, n)) if n < 0x80 else bytes((0x0A, (n & 0x7F) | 0x80, n >> 7)))
        else:
            put(b"\x0a" + varint(n))
        put(lb)
        put(samples)
    return b"".join(out)


def headers(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The request headers of remote_write 1.0, plus the configured ones."""
    h = {
        "Content-Encoding": "snappy",
        "Content-Type": "application/x-protobuf",
        "X-Prometheus-Remote-Write-Version": "0.1.0",
        "User-Agent": f"pharosd/{__version__}",
    }
    if extra:
        for k, v in extra.items():
            h[k] = v
    return h


class Verdict(enum.Enum):
    OK = "ok"                        # 2xx: acknowledged
    RETRY = "retry"                  # 5xx, 429, no answer: back off and send again
    REJECT_AGE = "reject_age"        # samples too old / out of bounds / out of order
    REJECT_SAMPLE = "reject_sample"  # one bad sample (duplicate) or too large: split
    DROP = "drop"                    # another 4xx: retrying cannot help


# Prometheus error texts (tsdb/storage errors) naming a sample the receiver will never take.
_AGE_TEXTS = ("too old sample", "out of bounds", "out of order sample")
_SAMPLE_TEXTS = ("duplicate sample for timestamp",)


def classify(status: int, body: str) -> Verdict:
    """What a receiver's answer means for the batch it answered."""
    if 200 <= status < 300:
        return Verdict.OK
    text = body.lower()
    if status in (400, 500) and any(t in text for t in _AGE_TEXTS):
        # Prometheus 2.42: 400 out of order/out of bounds, 500 "too old sample".
        return Verdict.REJECT_AGE
    if status in (400, 500) and any(t in text for t in _SAMPLE_TEXTS):
        return Verdict.REJECT_SAMPLE
    if status == 413:
        return Verdict.REJECT_SAMPLE
    if status == 429 or status >= 500:
        return Verdict.RETRY
    if 400 <= status < 500:
        return Verdict.DROP
    return Verdict.RETRY             # 1xx/3xx: a misconfigured URL; keep the data


def reject_reason(verdict: Verdict, body: str) -> str:
    """The drop reason counted for samples a receiver refused."""
    text = body.lower()
    if verdict is Verdict.REJECT_AGE:
        return "out_of_order" if "out of order" in text else "too_old"
    if verdict is Verdict.REJECT_SAMPLE:
        return "duplicate" if "duplicate" in text else "too_large"
    return "rejected"
