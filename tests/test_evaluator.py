"""The evaluator: samples through rules and alert machines to AlertEvents, with a FakeClock."""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pharosd.alerting.config import LevelLimits, ThresholdConfig, WindowConfig
from pharosd.alerting.evaluator import Evaluator
from pharosd.clock import FakeClock
from pharosd.config.schema import Config
from pharosd.model import AlertEvent, Labels, Sample, fingerprint, labels_of
from pharosd.probes.config import ExecProbeConfig
from pharosd.statistics.config import StatisticConfig
from pharosd.types import Duration, FrozenDict

DEFAULTS = Config()   # soak 30s, cool 60s, level warning

MEM = ThresholdConfig(name="memory-high", metric="memory.used_percent", above=90.0,
                      soak=Duration(60))
DISK = ThresholdConfig(name="disk-full", metric="disk.used_percent", soak=Duration(0),
                       cool=Duration(30), match=FrozenDict(mount="/*"),
                       above=LevelLimits(warning=90.0, critical=95.0))
CPU = ThresholdConfig(name="cpu-busy", metric="cpu.percent", above=85.0,
                      window=WindowConfig(over=Duration(60), mode="avg"), cool=Duration(20))

ROOT = labels_of(mount="/")
VAR = labels_of(mount="/var")


class Harness:
    """An evaluator driven by a FakeClock, recording every event."""

    def __init__(self, thresholds: list[ThresholdConfig], defaults: Config = DEFAULTS,
                 **kw: Any) -> None:
        self.clock = FakeClock()
        self.start_wall = self.clock.wall()
        self.ev = Evaluator(thresholds, defaults, "host-1", **kw)
        self.events: list[AlertEvent] = []

    def feed(self, metric: str, value: float, labels: Labels = (),
             note: str | None = None) -> list[AlertEvent]:
        s = Sample(metric, labels, value, self.clock.wall(), note)
        return self._keep(self.ev.observe([s], self.clock.monotonic(), self.clock.wall()))

    def feed_many(self, samples: list[Sample]) -> list[AlertEvent]:
        return self._keep(self.ev.observe(samples, self.clock.monotonic(), self.clock.wall()))

    def tick(self) -> list[AlertEvent]:
        return self._keep(self.ev.tick(self.clock.monotonic(), self.clock.wall()))

    def reconfigure(self, thresholds: list[ThresholdConfig],
                    defaults: Config = DEFAULTS) -> list[AlertEvent]:
        return self._keep(self.ev.reconfigure(thresholds, defaults,
                                              now_mono=self.clock.monotonic(),
                                              now_wall=self.clock.wall()))

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @property
    def elapsed(self) -> float:
        return self.clock.wall() - self.start_wall

    def _keep(self, events: list[AlertEvent]) -> list[AlertEvent]:
        self.events.extend(events)
        return events


def statuses(events: list[AlertEvent]) -> list[tuple[str, str, str | None]]:
    return [(e.status, e.level, e.previous_level) for e in events]


# -- firing and resolving ------------------------------------------------------------------


def test_fires_after_soak_with_the_full_event() -> None:
    h = Harness([MEM])
    for _ in range(6):
        assert h.feed("memory.used_percent", 93.2) == []
        h.advance(10)
    (e,) = h.feed("memory.used_percent", 93.2)
    assert h.elapsed == 60
    assert (e.status, e.rule, e.level, e.metric, e.labels) == (
        "firing", "memory-high", "warning", "memory.used_percent", ())
    assert (e.value, e.limit, e.op, e.host) == (93.2, 90.0, "above", "host-1")
    assert e.started_at == e.at == h.clock.wall()
    assert e.fingerprint == fingerprint("memory-high", ())
    assert e.previous_level is None
    assert e.summary == "memory used 93.2% > 90% for 1m"
    assert json.loads(e.to_json())["status"] == "firing"


def test_recovery_resolves_after_cool_with_same_fingerprint() -> None:
    h = Harness([MEM])
    h.feed("memory.used_percent", 95)
    h.advance(60)
    (fired,) = h.feed("memory.used_percent", 95)
    h.advance(10)
    assert h.feed("memory.used_percent", 71) == []
    h.advance(59)
    assert h.tick() == []
    h.advance(1)
    (e,) = h.tick()
    assert e.status == "resolved" and e.level == "warning"
    assert e.fingerprint == fired.fingerprint and e.id != fired.id
    assert e.started_at == fired.started_at and e.at == h.clock.wall()
    assert (e.value, e.limit) == (71, 90.0)
    assert e.summary == "memory used 71.0%, back below 90% after 1m10s"


def test_tick_advances_the_soak_without_samples() -> None:
    h = Harness([MEM])
    h.feed("memory.used_percent", 99)
    h.advance(59)
    assert h.tick() == []
    h.advance(1)
    (e,) = h.tick()
    assert e.status == "firing" and e.value == 99


def test_short_breach_does_not_fire() -> None:
    h = Harness([MEM])
    for v in (95, 95, 95, 95, 95, 95, 80):
        assert h.feed("memory.used_percent", v) == []
        h.advance(9.9)
        assert h.tick() == []
    assert h.ev.open_alerts() == []


def test_each_label_set_is_its_own_alert() -> None:
    h = Harness([DISK])
    events = h.feed_many([
        Sample("disk.used_percent", ROOT, 91, 0),
        Sample("disk.used_percent", VAR, 92, 0),
        Sample("disk.used_percent", labels_of(mount="boot"), 99, 0),   # no match: no '/'
    ])
    assert [(e.status, dict(e.labels)) for e in events] == [
        ("firing", {"mount": "/"}), ("firing", {"mount": "/var"})]
    assert events[0].fingerprint != events[1].fingerprint
    assert events[0].summary == "disk / used 91.0% > 90% (warning)"
    h.advance(1)
    h.feed("disk.used_percent", 50, ROOT)
    h.advance(30)
    (e,) = h.tick()
    assert e.status == "resolved" and e.labels == ROOT
    assert [a["labels"] for a in h.ev.open_alerts()] == [{"mount": "/var"}]


def test_samples_of_unwatched_metrics_make_no_instances() -> None:
    h = Harness([MEM, DISK])
    h.feed_many([Sample("cpu.percent", (), 99, 0), Sample("disk.used_percent",
                                                           labels_of(mount="x"), 99, 0)])
    assert h.ev.counters()["instances"] == 0


def test_nan_sample_counts_as_not_breaching() -> None:
    h = Harness([DISK])
    h.feed("disk.used_percent", 99, ROOT)
    h.advance(1)
    h.feed("disk.used_percent", math.nan, ROOT)
    assert h.ev.open_alerts()[0]["status"] == "resolving"


# -- levels --------------------------------------------------------------------------------


def test_escalation_and_deescalation_inside_one_alert() -> None:
    h = Harness([DISK])
    h.feed("disk.used_percent", 91, ROOT)
    h.advance(5)
    (up,) = h.feed("disk.used_percent", 96, ROOT)
    assert statuses([up]) == [("firing", "critical", "warning")]
    assert up.summary == "disk / used 96.0% > 95% (critical, was warning) for 5s"
    h.advance(5)
    assert h.feed("disk.used_percent", 93, ROOT) == []        # de-escalation waits for cool
    h.advance(29)
    assert h.tick() == []
    h.advance(1)
    (down,) = h.tick()
    assert statuses([down]) == [("firing", "warning", "critical")]
    assert down.limit == 90.0
    h.advance(1)
    h.feed("disk.used_percent", 96, ROOT)
    h.advance(1)
    h.feed("disk.used_percent", 10, ROOT)
    h.advance(30)
    (res,) = h.tick()
    assert statuses([res]) == [("resolved", "critical", None)]
    assert len({e.fingerprint for e in h.events}) == 1
    assert len({e.started_at for e in h.events}) == 1


# -- windows -------------------------------------------------------------------------------


def test_windowed_threshold_skips_soak_and_keeps_cool() -> None:
    h = Harness([CPU])        # default soak 30s would apply if it were not windowed
    for _ in range(6):        # samples at 0..50: the window is not covered yet
        assert h.feed("cpu.percent", 99) == []
        h.advance(10)
    (e,) = h.feed("cpu.percent", 99)           # at 60: covered, avg 99 > 85: fires at once
    assert h.elapsed == 60 and e.status == "firing"
    # No soak, so no "for": the window says how long.
    assert e.summary == "cpu busy 99.0% > 85% (avg over 1m)"
    # Single low samples pull the average down only slowly.
    h.advance(10)
    assert h.feed("cpu.percent", 0) == []        # avg of 99 x5 and 0 = 82.5: recovered
    assert h.ev.open_alerts()[0]["status"] == "resolving"
    h.advance(10)
    assert h.feed("cpu.percent", 0) == []
    h.advance(10)
    (r,) = h.feed("cpu.percent", 0)             # cool of 20s elapsed
    assert r.status == "resolved"
    assert r.value is not None and math.isclose(r.value, 99 * 3 / 6)


def test_windowed_breach_is_judged_on_the_aggregate() -> None:
    h = Harness([CPU])
    for i in range(20):
        assert h.feed("cpu.percent", 100 if i % 2 else 60) == []    # avg 80 < 85
        h.advance(10)


# -- reconfigure ---------------------------------------------------------------------------


def test_reconfigure_keeps_pending_state_of_unchanged_rules() -> None:
    h = Harness([MEM])
    h.feed("memory.used_percent", 95)
    h.advance(30)
    assert h.reconfigure([MEM, DISK]) == []
    assert h.ev.open_alerts()[0]["status"] == "pending"
    h.advance(30)
    (e,) = h.tick()                        # the soak counted from before the reload
    assert e.status == "firing"


def test_reconfigure_keeps_firing_state_and_resolves_later() -> None:
    h = Harness([MEM, DISK])
    h.feed("memory.used_percent", 95)
    h.advance(60)
    (fired,) = h.feed("memory.used_percent", 95)
    h.advance(5)
    assert h.reconfigure([ThresholdConfig(name="x", metric="load.1", above=5.0), MEM]) == []
    assert h.ev.open_alerts()[0]["status"] == "firing"
    h.feed("memory.used_percent", 50)
    h.advance(60)
    (e,) = h.tick()
    assert e.status == "resolved" and e.started_at == fired.started_at


def test_reconfigure_resolves_open_alerts_of_removed_rules() -> None:
    h = Harness([MEM, DISK])
    h.feed("memory.used_percent", 95)            # pending only
    h.feed("disk.used_percent", 99, ROOT)        # firing
    h.advance(10)
    (e,) = h.reconfigure([MEM])
    assert (e.status, e.rule, e.labels, e.level) == ("resolved", "disk-full", ROOT, "critical")
    assert e.at == h.clock.wall()
    assert e.summary == "disk / used 99.0%: threshold removed or changed, resolved after 10s"
    assert [a["rule"] for a in h.ev.open_alerts()] == ["memory-high"]
    # Removing the pending one emits nothing.
    assert h.reconfigure([]) == []
    assert h.ev.open_alerts() == []


def test_reconfigure_resolves_changed_rules_and_starts_them_afresh() -> None:
    h = Harness([DISK])
    (fired,) = h.feed("disk.used_percent", 92, ROOT)
    h.advance(1)
    changed = ThresholdConfig(name="disk-full", metric="disk.used_percent", soak=Duration(10),
                              match=FrozenDict(mount="/*"), above=91.0)
    (res,) = h.reconfigure([changed])
    assert res.status == "resolved" and res.fingerprint == fired.fingerprint
    assert h.feed("disk.used_percent", 92, ROOT) == []     # pending again, new soak
    h.advance(10)
    (again,) = h.feed("disk.used_percent", 92, ROOT)
    assert again.status == "firing" and again.fingerprint == fired.fingerprint


def test_reconfigure_of_a_default_changes_rules_that_inherit_it() -> None:
    h = Harness([MEM, ThresholdConfig(name="load", metric="load.1", above=1.0)])
    h.feed_many([Sample("memory.used_percent", (), 95, 0), Sample("load.1", (), 2, 0)])
    h.advance(60)
    h.tick()
    assert {a["rule"]: a["status"] for a in h.ev.open_alerts()} == {
        "memory-high": "firing", "load": "firing"}
    events = h.reconfigure([MEM, ThresholdConfig(name="load", metric="load.1", above=1.0)],
                           Config(soak=Duration(5)))
    assert [(e.status, e.rule) for e in events] == [("resolved", "load")]


def test_reconfigure_of_only_the_summary_keeps_state_and_uses_the_new_text() -> None:
    h = Harness([DISK])
    h.feed("disk.used_percent", 92, ROOT)
    worded = ThresholdConfig(name="disk-full", metric="disk.used_percent", soak=Duration(0),
                             cool=Duration(30), match=FrozenDict(mount="/*"),
                             above=LevelLimits(warning=90.0, critical=95.0),
                             summary="{mount} is {value} full")
    assert h.reconfigure([worded]) == []
    h.advance(1)
    (e,) = h.feed("disk.used_percent", 97, ROOT)
    assert e.summary == "/ is 97.0% full"


def test_reconfigure_defaults_to_the_last_times_seen() -> None:
    h = Harness([DISK])
    h.feed("disk.used_percent", 92, ROOT)
    (e,) = h.ev.reconfigure([], DEFAULTS)
    assert e.at == h.clock.wall()


# -- status view ---------------------------------------------------------------------------


def test_open_alerts_lists_pending_firing_and_resolving() -> None:
    h = Harness([MEM, DISK])
    h.feed("memory.used_percent", 95)
    pending_wall = h.clock.wall()
    h.feed("disk.used_percent", 91, ROOT)
    h.feed("disk.used_percent", 97, VAR)
    firing_wall = h.clock.wall()
    h.advance(3)
    h.feed("disk.used_percent", 10, VAR)
    alerts = h.ev.open_alerts()
    assert [(a["rule"], a["labels"], a["status"], a["level"], a["since"], a["value"],
             a["limit"]) for a in alerts] == [
        ("disk-full", {"mount": "/"}, "firing", "warning", firing_wall, 91, 90.0),
        ("disk-full", {"mount": "/var"}, "resolving", "critical", firing_wall, 10, 90.0),
        ("memory-high", {}, "pending", "warning", pending_wall, 95, 90.0),
    ]
    assert alerts[0]["fingerprint"] == fingerprint("disk-full", ROOT)


# -- bounded memory and vanished series ----------------------------------------------------


def test_an_ok_instance_that_stops_reporting_is_forgotten() -> None:
    h = Harness([DISK])
    h.feed("disk.used_percent", 10, ROOT)
    h.feed("disk.used_percent", 10, VAR)
    h.tick()
    assert h.ev.counters()["instances"] == 2
    for _ in range(11):
        h.advance(60)
        h.feed("disk.used_percent", 10, ROOT)
        h.tick()
    assert h.ev.counters()["instances"] == 1
    assert h.ev.counters()["instances_forgotten"] == 1
    assert h.events == []


def test_an_open_alert_whose_series_vanished_resolves_after_the_stale_period() -> None:
    h = Harness([DISK])                       # cool 30s: stale after max(10 min, 300s)
    h.feed("disk.used_percent", 99, VAR)
    for _ in range(599):
        h.advance(1)
        assert h.tick() == []
    assert h.ev.open_alerts()[0]["status"] == "firing"
    h.advance(1.5)
    (e,) = h.tick()
    assert e.status == "resolved" and e.labels == VAR and e.value == 99
    assert e.summary == "disk /var used 99.0%: no data for 10m, resolved after 10m"
    assert h.ev.open_alerts() == [] and h.ev.counters()["instances"] == 0
    assert h.ev.counters()["stale_resolved"] == 1


def test_a_pending_breach_whose_series_vanished_is_dropped_silently() -> None:
    slow = ThresholdConfig(name="slow", metric="load.1", above=1.0, soak=Duration(3600))
    h = Harness([slow])
    h.feed("load.1", 5)
    for _ in range(11):
        h.advance(60)
        h.tick()
    assert h.events == [] and h.ev.open_alerts() == []


def test_a_slow_statistic_is_not_stale_between_its_samples() -> None:
    slow = Config(statistics=(StatisticConfig(name="disk", every=Duration(3600)),))
    h = Harness([DISK], slow)
    for _ in range(3):
        h.feed("disk.used_percent", 99, ROOT)
        for _ in range(60):                      # one sample an hour
            h.advance(60)
            h.tick()
    assert statuses(h.events) == [("firing", "critical", None)]
    assert h.ev.open_alerts()[0]["status"] == "firing"


def test_a_slow_probe_is_not_stale_between_its_samples() -> None:
    probe = ExecProbeConfig(name="ntp", kind="exec", command=("/bin/true",),
                            every=Duration(7200))
    status = ThresholdConfig(name="probe:ntp", metric="probe.ntp.status", above=0.0,
                             soak=Duration(0))
    h = Harness([status], Config(probes=(probe,)))
    h.feed("probe.ntp.status", 2)
    h.advance(5 * 7200 - 1)
    assert h.tick() == []
    h.advance(1.4)
    (e,) = h.tick()
    assert e.status == "resolved"
    assert e.summary == "probe ntp status CRITICAL (2): no data for 10h, resolved after 10h"


def test_a_series_slower_than_configured_is_judged_by_its_gap() -> None:
    h = Harness([DISK])                         # disk every 10s by default
    h.feed("disk.used_percent", 99, ROOT)
    h.advance(590)
    h.feed("disk.used_percent", 99, ROOT)       # a gap of 590s: stale after 2950s
    for _ in range(49):
        h.advance(60)
        assert h.tick() == []
    h.advance(60)
    (e,) = h.tick()
    assert e.status == "resolved"


def test_instances_per_rule_are_bounded() -> None:
    h = Harness([DISK], max_instances=3)
    h.feed_many([Sample("disk.used_percent", labels_of(mount=f"/m{i}"), 1, 0)
                 for i in range(5)])
    assert h.ev.counters()["instances"] == 3
    assert h.ev.counters()["instances_refused"] == 2


# -- export / import -----------------------------------------------------------------------


def test_state_export_import_round_trip() -> None:
    h = Harness([MEM, DISK])
    h.feed("memory.used_percent", 95)                  # pending 10s at export
    h.feed("disk.used_percent", 99, ROOT)              # firing
    (fired,) = h.events
    h.feed("disk.used_percent", 99, VAR)
    h.advance(5)
    h.feed("disk.used_percent", 1, VAR)                # resolving 5s at export
    h.advance(5)
    data = json.loads(json.dumps(h.ev.export_state(h.clock.monotonic())))
    before = h.ev.open_alerts()

    other = Harness([MEM, DISK])
    other.clock.advance(500)                           # another process, another clock
    assert other.ev.import_state(data, other.clock.monotonic(), other.clock.wall()) == []
    assert [{k: a[k] for k in ("rule", "labels", "status", "level", "since")}
            for a in other.ev.open_alerts()] == [
        {k: a[k] for k in ("rule", "labels", "status", "level", "since")} for a in before]
    # Timers resume where they stopped: 25s more of cool, 50s more of soak.
    other.advance(24)
    assert other.tick() == []
    other.advance(1)
    (res,) = other.tick()
    assert res.status == "resolved" and res.labels == VAR
    other.advance(25)
    (mem,) = other.tick()
    assert mem.status == "firing" and mem.rule == "memory-high"
    other.feed("disk.used_percent", 1, ROOT)
    other.advance(30)
    (root,) = other.tick()
    assert root.started_at == fired.started_at and root.fingerprint == fired.fingerprint


def test_import_resolves_open_alerts_of_rules_that_are_gone() -> None:
    h = Harness([DISK])
    h.feed("disk.used_percent", 99, ROOT)
    data = h.ev.export_state(h.clock.monotonic())
    other = Harness([MEM])
    (e,) = other.ev.import_state(data, other.clock.monotonic(), other.clock.wall())
    assert (e.status, e.rule, e.labels, e.level) == ("resolved", "disk-full", ROOT, "critical")
    assert e.fingerprint == fingerprint("disk-full", ROOT)
    assert other.ev.open_alerts() == []


def test_import_skips_what_it_cannot_read() -> None:
    h = Harness([DISK])
    rid = h.ev.rules[0].rule_id
    state: dict[str, Any] = {
        "phase": "firing", "level": "warning", "breach_since_age": 1, "fired_at_age": 1,
        "recover_since_age": None, "lower_since_age": None, "breach_wall": 1.0,
        "started_at": 1.0, "last": {"level": "warning", "value": 91, "limit": 90}}
    good: dict[str, Any] = {"labels": [["mount", "/"]], "state": state}
    bad_phase = {"labels": [["mount", "/a"]], "state": {**good["state"], "phase": "odd"}}
    bad_level = {"labels": [["mount", "/b"]], "state": {**good["state"], "level": "meh"}}
    missing = {"labels": [["mount", "/c"]], "state": {**good["state"], "fired_at_age": None}}
    contrary = {"labels": [["mount", "/d"]], "state": {
        **good["state"], "last": {"level": None, "value": 1, "limit": 90}}}
    junks: list[Any] = [None, [], {"version": 99}, {"version": 1, "rules": []}]
    for junk in junks:
        assert h.ev.import_state(junk, 0, 0) == []
    data = {"version": 1, "rules": {rid: {"instances": [
        bad_phase, bad_level, missing, contrary, {"labels": 3}, good]}, "other": 5}}
    assert h.ev.import_state(data, h.clock.monotonic(), h.clock.wall()) == []
    assert [a["labels"] for a in h.ev.open_alerts()] == [{"mount": "/"}]


def test_export_is_json_even_with_nan_values() -> None:
    h = Harness([DISK])
    h.feed("disk.used_percent", math.inf, ROOT)
    data = json.loads(json.dumps(h.ev.export_state(h.clock.monotonic()), allow_nan=False))
    other = Harness([DISK])
    other.ev.import_state(data, 0, 0)
    assert other.ev.open_alerts()[0]["value"] == math.inf


# -- properties ----------------------------------------------------------------------------

LEVELLED = ThresholdConfig(name="lv", metric="m", above=LevelLimits(warning=80.0, critical=95.0))
VALUES = st.sampled_from([None, 50.0, 85.0, 99.0])      # None: no sample this step


@settings(max_examples=200, deadline=None)
@given(
    soak=st.sampled_from([0, 5, 20]),
    cool=st.sampled_from([0, 5, 20]),
    steps=st.lists(st.tuples(st.integers(0, 12), VALUES, VALUES, st.booleans()), max_size=50),
)
def test_evaluator_event_stream_is_well_formed(
        soak: int, cool: int,
        steps: list[tuple[int, float | None, float | None, bool]]) -> None:
    cfg = ThresholdConfig(name="lv", metric="m", soak=Duration(soak), cool=Duration(cool),
                          above=LevelLimits(warning=80.0, critical=95.0))
    h = Harness([cfg])
    a, b = labels_of(k="a"), labels_of(k="b")
    open_level: dict[str, str | None] = {}
    breach_start: dict[Labels, float | None] = {a: None, b: None}
    for dt, va, vb, tick in steps:
        h.advance(dt)
        now = h.clock.monotonic()
        samples = []
        for labels, v in ((a, va), (b, vb)):
            if v is None:
                continue
            samples.append(Sample("m", labels, v, h.clock.wall()))
            if v > 80:
                breach_start[labels] = breach_start[labels] if breach_start[labels] is not None \
                    else now
            else:
                breach_start[labels] = None
        events = h.feed_many(samples) + (h.tick() if tick else [])
        for e in events:
            assert e.fingerprint == fingerprint("lv", e.labels)
            assert e.at == h.clock.wall() and e.host == "host-1"
            current = open_level.get(e.fingerprint)
            if e.status == "resolved":
                assert current is not None and e.level == current
                open_level[e.fingerprint] = None
            elif e.previous_level is None:
                assert current is None
                open_level[e.fingerprint] = e.level
            else:
                assert current == e.previous_level != e.level
                open_level[e.fingerprint] = e.level
        assert len({e.id for e in h.events}) == len(h.events)
        # A breach that has lasted the soak (sampled at this step) is open.
        firing = {tuple(sorted(x["labels"].items())) for x in h.ev.open_alerts()
                  if x["status"] == "firing"}
        for labels, v in ((a, va), (b, vb)):
            start = breach_start[labels]
            if v is not None and start is not None and now - start >= soak:
                assert labels in firing


@settings(max_examples=100, deadline=None)
@given(soak=st.integers(0, 90), interval=st.integers(1, 20), healthy=st.integers(0, 5))
def test_evaluator_fires_within_one_interval_after_breach_plus_soak(
        soak: int, interval: int, healthy: int) -> None:
    cfg = ThresholdConfig(name="t", metric="m", above=1.0, soak=Duration(soak))
    h = Harness([cfg])
    for _ in range(healthy):
        h.feed("m", 0)
        h.advance(interval)
    first = h.elapsed
    while not h.feed("m", 2):
        h.advance(interval)
        assert h.elapsed <= first + soak + interval
    assert first + soak <= h.elapsed < first + soak + interval


# -- rule groups: the indexed evaluator against the naive definition ---------------------

GROUP_LABELS = [labels_of(k="a"), labels_of(k="b"), labels_of(k="ab")]


def _naive(rules: list[ThresholdConfig], steps: list[tuple[int, list[tuple[int, float]], bool]]
           ) -> list[tuple[str, str, Labels, str, str | None, float | None]]:
    """Every sample offered to every rule, one machine per rule and label set, no index."""
    from pharosd.alerting.machine import OK_STATE, Phase
    from pharosd.alerting.rules import compile_rules

    compiled = compile_rules(rules, DEFAULTS)
    states: dict[tuple[int, Labels], Any] = {}
    out = []
    t = 0.0
    for dt, samples, tick in steps:
        t += dt
        for li, value in samples:
            labels = GROUP_LABELS[li]
            for i, rule in enumerate(compiled):
                if not rule.matches(Sample(rule.metric, labels, value, t)):
                    continue
                state, ts = rule.machine.step(states.get((i, labels), OK_STATE),
                                              rule.observe(value), t, t)
                states[(i, labels)] = state
                out += [(x.status, rule.name, labels, x.level, x.previous_level, x.limit)
                        for x in ts]
        if tick:       # by rule in config order; within a rule the order is unspecified
            for (i, labels), state in sorted(states.items()):
                if state.phase is not Phase.OK:
                    rule = compiled[i]
                    states[(i, labels)], ts = rule.machine.step(state, None, t, t)
                    out += [(x.status, rule.name, labels, x.level, x.previous_level, x.limit)
                            for x in ts]
    return out


GROUP_RULE = st.builds(
    lambda op, lim, multi, soak, cool, match: ThresholdConfig(
        name="", metric="m", soak=Duration(soak), cool=Duration(cool),
        match=FrozenDict(k=match) if match else FrozenDict(),
        **{op: LevelLimits(warning=lim, critical=lim + (10 if op == "above" else -10))
           if multi else lim}),
    st.sampled_from(["above", "below"]), st.sampled_from([10.0, 20.0, 30.0, 50.0]),
    st.booleans(), st.sampled_from([0, 2, 5]), st.sampled_from([0, 3]),
    st.sampled_from([None, "a*", "b"]))


@settings(max_examples=300, deadline=None)
@given(rules=st.lists(GROUP_RULE, min_size=1, max_size=8),
       steps=st.lists(st.tuples(
           st.sampled_from([0, 1, 2, 5]),
           st.lists(st.tuples(st.integers(0, 2),
                              st.sampled_from([0.0, 10.0, 15.0, 25.0, 30.0, 55.0, 65.0, math.nan])),
                    max_size=4),
           st.booleans()), max_size=30))
def test_grouped_rules_step_like_one_machine_per_rule_and_label_set(
        rules: list[ThresholdConfig],
        steps: list[tuple[int, list[tuple[int, float]], bool]]) -> None:
    # Rules on one metric differing in limits, levels, soak, cool and match: the evaluator
    # groups them and bisects their limits; the events must be those of the naive
    # definition, in the same order (config order within a sample).
    rules = [ThresholdConfig(**{**r.__dict__, "name": f"r{i}"}) for i, r in enumerate(rules)]
    ev = Evaluator(rules, DEFAULTS, "h")
    got = []
    t = 0.0
    for dt, samples, tick in steps:
        t += dt
        batch = [Sample("m", GROUP_LABELS[li], v, t) for li, v in samples]
        observed = ev.observe(batch, t, t)
        ticked = sorted(ev.tick(t, t) if tick else [], key=lambda e: (int(e.rule[1:]), e.labels))
        got += [(e.status, e.rule, e.labels, e.level, e.previous_level, e.limit)
                for e in observed + ticked]
    assert got == _naive(rules, steps)
