"""remote_write 1.0 encoding: protobuf bytes, label mapping, snappy, headers, verdicts.

The encoder is checked against an independent decoder (tests/peers/remote_write.py)
with Hypothesis; the real receivers are in test_remote_write_prometheus.py and
test_remote_write_victoriametrics.py.
"""

from __future__ import annotations

import math
import re
import struct
import sys
from array import array

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from peers.remote_write import decode_write_request, fields

from pharosd import __version__
from pharosd.errors import UplinkError
from pharosd.pipeline import compression
from pharosd.pipeline.batch import Batch
from pharosd.pipeline.remote_write import (
    STALE_NAN_BITS,
    LabelCache,
    Verdict,
    classify,
    encode_write_request,
    headers,
    is_stale_nan,
    reject_reason,
    stale_nan,
    varint,
    wire_labels,
)

NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def bits(v: float) -> int:
    return int(struct.unpack("<Q", struct.pack("<d", v))[0])


@pytest.mark.parametrize(("n", "expected"), [
    (0, b"\x00"), (1, b"\x01"), (127, b"\x7f"), (128, b"\x80\x01"), (300, b"\xac\x02"),
    (2**63 - 1, b"\xff\xff\xff\xff\xff\xff\xff\xff\x7f"),
    (-1, b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"),
])
def test_varint_matches_the_protobuf_spec(n: int, expected: bytes) -> None:
    assert varint(n) == expected


def test_a_known_request_encodes_to_the_exact_bytes() -> None:
    b = Batch.of([(("up", ()), 1000, 1.0)])
    data = encode_write_request(b, LabelCache({}))
    label = b"\x0a\x08__name__" + b"\x12\x09pharos_up"
    sample = b"\x09" + struct.pack("<d", 1.0) + b"\x10" + b"\xe8\x07"
    series = b"\x0a" + bytes([len(label)]) + label + b"\x12" + bytes([len(sample)]) + sample
    assert data == b"\x0a" + bytes([len(series)]) + series


def test_metric_and_label_names_are_mapped_and_sorted() -> None:
    key = ("disk.used_percent", (("9lives", "x"), ("mount", "/"), ("dev.name", "sda1"),
                                 ("empty", ""), ("__reserved", "no")))
    pairs = wire_labels(key, {"host": "h1", "job": "pharosd"})
    # Sorted byte-wise, as Prometheus does: "_9..." sorts before "__name__".
    assert pairs == [("_9lives", "x"), ("__name__", "pharos_disk_used_percent"),
                     ("dev_name", "sda1"), ("host", "h1"), ("job", "pharosd"), ("mount", "/")]


def test_a_series_label_wins_over_an_external_label() -> None:
    pairs = dict(wire_labels(("probe.status", (("host", "db1"),)), {"host": "me", "job": "j"}))
    assert pairs["host"] == "db1"
    assert pairs["job"] == "j"


def test_the_label_cache_is_bounded() -> None:
    cache = LabelCache({}, max_entries=10)
    for i in range(25):
        cache.get(("m", (("i", str(i)),)))
    assert len(cache) <= 10


metric_names = st.text(alphabet="abcz.-_:0é", min_size=1, max_size=12)
label_names = st.text(alphabet="abz._-09", min_size=1, max_size=6)
label_values = st.text(max_size=8)
series_keys = st.tuples(metric_names, st.dictionaries(label_names, label_values, max_size=3).map(
    lambda d: tuple(sorted(d.items()))))
values = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.just(stale_nan()))
timestamps = st.integers(min_value=-(2**40), max_value=2**45)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(series_keys, timestamps, values), min_size=1, max_size=40),
       st.dictionaries(st.sampled_from(["host", "job", "dc"]), st.text(max_size=5), max_size=3))
def test_every_sample_decodes_back_with_valid_sorted_labels(rows, external) -> None:
    batch = Batch.of(rows).by_time()
    series = decode_write_request(encode_write_request(batch, LabelCache(external)))
    got: list[tuple[tuple[tuple[str, str], ...], int, int]] = []
    for labels, samples in series:
        names = [n for n, _ in labels]
        assert names == sorted(names), "labels sorted by name"
        assert len(set(names)) == len(names)
        assert "__name__" in names and NAME_RE.fullmatch(dict(labels)["__name__"])
        for n, lv in labels:
            assert lv != "", "no empty label values"
            assert n == "__name__" or (LABEL_RE.fullmatch(n) and not n.startswith("__"))
        tss = [t for t, _, _ in samples]
        assert tss == sorted(tss), "a series' samples in timestamp order"
        for t, b, _ in samples:
            got.append((tuple(labels), t, b))
    expected = []
    for key, t, v in batch.rows():
        expected.append((tuple(wire_labels(key, external)), t, bits(v)))
    assert sorted(got) == sorted(expected)


def test_the_stale_marker_keeps_its_exact_bits_through_arrays_and_encoding() -> None:
    marker = stale_nan()
    assert math.isnan(marker) and is_stale_nan(marker) and not is_stale_nan(float("nan"))
    a = array("d", [marker])
    assert bits(a[0]) == STALE_NAN_BITS
    b = Batch.of([(("m", ()), 5, marker), (("m", ()), 6, float("nan"))])
    [(_, samples)] = decode_write_request(encode_write_request(b, LabelCache({})))
    assert [s[1] for s in samples] == [STALE_NAN_BITS, 0x7FF8000000000000]


def test_by_time_sorts_and_keeps_the_last_value_of_a_duplicate_timestamp() -> None:
    a, b = ("a", ()), ("b", ())
    batch = Batch.of([(a, 30, 1.0), (b, 10, 2.0), (a, 10, 3.0), (a, 30, 4.0), (b, 20, 5.0)])
    assert batch.by_time().rows() == [(b, 10, 2.0), (a, 10, 3.0), (b, 20, 5.0), (a, 30, 4.0)]
    sorted_batch = Batch.of([(a, 1, 1.0), (b, 2, 2.0)])
    assert sorted_batch.by_time() is sorted_batch


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(series_keys, timestamps, st.floats(allow_nan=False)), max_size=30))
def test_spill_encoding_round_trips(rows) -> None:
    b = Batch.of(rows)
    back = Batch.from_bytes(b.to_bytes())
    assert back.rows() == b.rows()


@pytest.mark.parametrize("data", [b"", b"PSB1", b"XXXX\0\0\0\0\0\0\0\0",
                                  Batch.of([(("m", ()), 1, 1.0)]).to_bytes()[:-3]])
def test_a_corrupt_spilled_batch_is_an_uplink_error(data: bytes) -> None:
    with pytest.raises(UplinkError, match="corrupt"):
        Batch.from_bytes(data)


def test_snappy_is_the_block_format() -> None:
    raw = b"pharos " * 1000
    packed = compression.compress(raw)
    # Block format starts with the uncompressed length as a varint; framed starts 0xff.
    assert packed.startswith(varint(len(raw)))
    assert compression.decompress(packed) == raw
    with pytest.raises(UplinkError, match="corrupt"):
        compression.decompress(b"\xff\x06\x00\x00sNaPpY")


def test_without_cramjam_or_snappy_the_error_names_both(monkeypatch) -> None:
    monkeypatch.setattr(compression, "_cached", [])
    monkeypatch.setitem(sys.modules, "cramjam", None)
    try:
        import snappy  # noqa: F401
    except ImportError:
        monkeypatch.setitem(sys.modules, "snappy", None)
        with pytest.raises(UplinkError, match=r"cramjam.*python3-snappy"):
            compression.codec()
    else:   # Debian's python3-snappy is the fallback: it must give the same bytes
        assert compression.codec().name == "python-snappy"
        raw = b"x" * 100 + bytes(range(256))
        assert compression.decompress(compression.compress(raw)) == raw


def test_headers_are_those_of_remote_write_1_0() -> None:
    h = headers({"X-Scope-OrgID": "tenant"})
    assert h == {
        "Content-Encoding": "snappy",
        "Content-Type": "application/x-protobuf",
        "X-Prometheus-Remote-Write-Version": "0.1.0",
        "User-Agent": f"pharosd/{__version__}",
        "X-Scope-OrgID": "tenant",
    }


@pytest.mark.parametrize(("status", "body", "verdict", "reason"), [
    (204, "", Verdict.OK, None),
    (200, "", Verdict.OK, None),
    (500, "too old sample\n", Verdict.REJECT_AGE, "too_old"),
    (400, "out of bounds\n", Verdict.REJECT_AGE, "too_old"),
    (400, "out of order sample\n", Verdict.REJECT_AGE, "out_of_order"),
    (400, "duplicate sample for timestamp", Verdict.REJECT_SAMPLE, "duplicate"),
    (413, "", Verdict.REJECT_SAMPLE, "too_large"),
    (500, "internal error", Verdict.RETRY, None),
    (503, "", Verdict.RETRY, None),
    (429, "slow down", Verdict.RETRY, None),
    (400, "snappy: corrupt input", Verdict.DROP, "rejected"),
    (401, "unauthorized", Verdict.DROP, "rejected"),
    (404, "", Verdict.DROP, "rejected"),
    (301, "", Verdict.RETRY, None),
])
def test_answers_are_classified(status: int, body: str, verdict: Verdict,
                                reason: str | None) -> None:
    assert classify(status, body) is verdict
    if reason is not None:
        assert reject_reason(verdict, body) == reason


def test_a_request_is_one_write_request_message() -> None:
    b = Batch.of([(("a", ()), 1, 1.0), (("b", ()), 1, 2.0), (("a", ()), 2, 3.0)])
    top = fields(encode_write_request(b, LabelCache({})))
    assert [(n, wt) for n, wt, _ in top] == [(1, 2), (1, 2)]   # one TimeSeries per series


@pytest.mark.parametrize("size", [0, 119, 120, 127, 128, 300, 20_000])
def test_long_label_values_use_multi_byte_lengths(size: int) -> None:
    value = "é" * (size // 2) + "x" * (size % 2) if size else ""
    key = ("m", (("long", value), ("short", "s")))
    b = Batch.of([(key, 1, 1.0)])
    [(labels, _)] = decode_write_request(encode_write_request(b, LabelCache({})))
    expected = [("__name__", "pharos_m"), ("short", "s")]
    if value:
        expected.insert(1, ("long", value))
    assert labels == expected
