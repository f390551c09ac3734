"""The hot buffer (bounded, packed, counting drops) and the series registry (ids, stale markers)."""

from __future__ import annotations

from array import array

from pharosd.model import Sample
from pharosd.pipeline.buffer import HotBuffer
from pharosd.pipeline.remote_write import is_stale_nan, stale_nan
from pharosd.pipeline.series import SeriesRegistry, source_of

KEYS = {i: (f"m{i}", (("i", str(i)),)) for i in range(100)}


def fill(buf: HotBuffer, start: int, n: int) -> int:
    sid = array("q", [i % 10 for i in range(start, start + n)])
    ts = array("q", range(start, start + n))
    val = array("d", [float(i) for i in range(start, start + n)])
    return buf.extend(sid, ts, val)


def test_takes_the_oldest_first_in_whole_batches() -> None:
    buf = HotBuffer(100)
    fill(buf, 0, 25)
    b = buf.take(10, KEYS.__getitem__)
    assert list(b.ts) == list(range(10))
    assert [k for k, _, _ in b.rows()] == [KEYS[i % 10] for i in range(10)]
    assert len(buf) == 15
    assert list(buf.take(100, KEYS.__getitem__).ts) == list(range(10, 25))
    assert len(buf) == 0 and len(buf.take(5, KEYS.__getitem__)) == 0


def test_when_full_the_oldest_are_dropped_and_counted() -> None:
    buf = HotBuffer(50)
    assert fill(buf, 0, 40) == 0
    assert fill(buf, 40, 30) == 20
    assert fill(buf, 70, 100) == 100
    assert buf.dropped == 120 and len(buf) == 50
    assert list(buf.take(50, KEYS.__getitem__).ts) == list(range(120, 170))


def test_samples_are_packed_not_objects() -> None:
    buf = HotBuffer(200_000)
    for start in range(0, 100_000, 1000):
        fill(buf, start, 1000)
    assert len(buf) == 100_000
    assert buf.nbytes() <= 24 * 100_000 * 1.15      # three packed arrays, 24 bytes a sample


def test_compaction_keeps_order_across_many_takes() -> None:
    buf = HotBuffer(1_000_000)
    fill(buf, 0, 50_000)
    got: list[int] = []
    while len(buf):
        got.extend(buf.take(777, KEYS.__getitem__).ts)
        if len(got) % 7 == 0:
            fill(buf, 50_000 + len(got), 0)
    assert got == list(range(50_000))


def test_consumed_seq_counts_taken_and_dropped_samples() -> None:
    buf = HotBuffer(10, base_seq=1000)
    fill(buf, 0, 15)
    assert buf.consumed_seq == 1005
    buf.take(3, KEYS.__getitem__)
    assert buf.consumed_seq == 1008


# -- series registry and stale markers ---------------------------------------------


def offer(reg: SeriesRegistry, now: float, samples: list[Sample]):
    sid, ts, val = array("q"), array("q"), array("d")
    reg.observe(samples, now, sid, ts, val)
    return sid, ts, val


WALL = 10**13     # wall-clock ms of "now" in sweeps: later than every sample here


def sweep(reg: SeriesRegistry, now: float, seq: int = 0):
    sid, ts, val = array("q"), array("q"), array("d")
    n = reg.sweep(now, WALL + int(now * 1000), seq, True, sid, ts, val, stale_nan())
    return n, [reg.key_of(s) for s in sid], list(ts), list(val)


def s(metric: str, t: float, v: float = 1.0, **labels: str) -> Sample:
    return Sample(metric, tuple(sorted(labels.items())), v, t)


def test_ids_are_stable_and_timestamps_are_milliseconds() -> None:
    reg = SeriesRegistry()
    sid, ts, _ = offer(reg, 1.0, [s("a", 100.0004), s("b", 100.0006), s("a", 101.0)])
    assert sid[0] == sid[2] != sid[1]
    assert list(ts) == [100000, 100001, 101000]
    assert reg.key_of(sid[1]) == ("b", ())


def test_a_series_that_stops_gets_one_stale_marker_after_twice_its_cadence() -> None:
    reg = SeriesRegistry(floor=5.0)
    for k in range(5):                     # every 10 s
        offer(reg, 100.0 + 10 * k, [s("net.rx", 1e9 + 10 * k, interface="eth1")])
    last = 140.0
    assert sweep(reg, last + 19.0)[0] == 0          # within 2 x 10 s
    n, keys, ts, val = sweep(reg, last + 20.5)
    assert n == 1 and keys == [("net.rx", (("interface", "eth1"),))]
    assert ts == [WALL + int((last + 20.5) * 1000)] and is_stale_nan(val[0])
    assert sweep(reg, last + 40.0)[0] == 0, "one marker only"
    assert reg.markers_sent == 1


def test_the_floor_protects_fast_series_from_a_short_hiccup() -> None:
    reg = SeriesRegistry(floor=5.0)
    for k in range(3):
        offer(reg, 10.0 + k, [s("cpu.percent", 1e9 + k)])
    assert sweep(reg, 12.0 + 4.0)[0] == 0          # 2 x 1 s passed, the 5 s floor not
    assert sweep(reg, 12.0 + 5.0)[0] == 1


def test_a_series_seen_once_gets_no_marker_and_one_that_returns_continues() -> None:
    reg = SeriesRegistry(floor=1.0)
    offer(reg, 0.0, [s("once", 1.0)])
    for k in range(3):
        offer(reg, float(k), [s("back", 1.0 + k)])
    n, keys, _, _ = sweep(reg, 10.0)
    assert keys == [("back", ())] and n == 1
    offer(reg, 11.0, [s("back", 12.0)])
    offer(reg, 12.0, [s("back", 13.0)])
    assert sweep(reg, 13.0)[0] == 0
    assert sweep(reg, 20.0)[0] == 1, "marked again after it stops again"


def test_the_marker_is_later_than_the_series_last_sample_even_if_the_clock_lags() -> None:
    reg = SeriesRegistry(floor=1.0)
    offer(reg, 0.0, [s("m", 5000.0)])
    offer(reg, 1.0, [s("m", 5001.0)])
    sid, ts, val = array("q"), array("q"), array("d")
    reg.sweep(10.0, 1000, 0, True, sid, ts, val, stale_nan())    # wall clock went back
    assert list(ts) == [5001001]


def test_long_gone_series_are_freed_only_after_every_buffer_handed_them_on() -> None:
    reg = SeriesRegistry(floor=1.0, forget_after=30.0)
    sid, _, _ = offer(reg, 0.0, [s("gone", 1.0)])
    offer(reg, 1.0, [s("gone", 2.0)])
    sweep(reg, 10.0, seq=2)                 # marker at seq 2 -> mark 3
    sweep(reg, 100.0, seq=3)                # forgotten from the key index
    assert len(reg) == 0
    reg.free(consumed_seq=2)
    assert reg.key_of(sid[0]) == ("gone", ()), "a buffer still holds its marker"
    reg.free(consumed_seq=3)
    assert reg.forgotten == 1


# -- series bounds ------------------------------------------------------------------


def test_source_of_a_metric() -> None:
    assert source_of("probe.web.latency_seconds") == "probe.web"
    assert source_of("probe.web") == "probe.web"
    assert source_of("disk.used_percent") == "disk"
    assert source_of("pharosd.rss_bytes") == "pharosd"
    assert source_of("bare") == "bare"


def test_new_series_past_the_per_source_bound_are_refused_and_counted() -> None:
    reg = SeriesRegistry(max_series=100, max_per_source=3)
    # A plugin whose perfdata labels change on every run: only 3 series of it.
    for run in range(10):
        sid, _, _ = offer(reg, float(run), [s(f"probe.flappy.label{run}", 1.0 + run),
                                            s("cpu.percent", 1.0 + run)])
        assert len(sid) == (2 if run < 3 else 1)
    assert len(reg) == 4
    assert reg.refused == {"probe.flappy": 7} and reg.refused_samples == 7
    sid, _, _ = offer(reg, 11.0, [s("probe.flappy.label0", 12.0)])   # known: goes on
    assert len(sid) == 1


def test_the_total_bound_holds_across_sources() -> None:
    reg = SeriesRegistry(max_series=5, max_per_source=4)
    sid, _, _ = offer(reg, 0.0, [s(f"src{i}.m", 1.0, k=str(k)) for i in range(3)
                                 for k in range(3)])
    assert len(sid) == 5 and len(reg) == 5
    assert sum(reg.refused.values()) == 4


def test_a_forgotten_series_frees_its_place() -> None:
    reg = SeriesRegistry(floor=1.0, forget_after=30.0, max_per_source=1)
    offer(reg, 0.0, [s("probe.p.old", 1.0)])
    offer(reg, 1.0, [s("probe.p.old", 2.0)])
    assert len(offer(reg, 2.0, [s("probe.p.new", 3.0)])[0]) == 0
    sweep(reg, 100.0, seq=2)
    reg.free(consumed_seq=10)
    assert len(offer(reg, 101.0, [s("probe.p.new", 4.0)])[0]) == 1
