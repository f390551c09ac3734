"""No-data (``absent``) and trend (``window: {mode: predict}``) thresholds in the evaluator."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from pharosd.alerting.config import ThresholdConfig, WindowConfig
from pharosd.alerting.rules import Rule
from pharosd.config.schema import Config
from pharosd.model import NO_LABELS, labels_of
from pharosd.types import Duration, FrozenDict
from tests.test_evaluator import DEFAULTS, Harness, statuses

ABSENT = ThresholdConfig(name="disk-silent", metric="disk.used_percent", absent=Duration(30),
                         match=FrozenDict(mount="/*"), level="critical")
ROOT = labels_of(mount="/")
VAR = labels_of(mount="/var")


def started(thresholds) -> Harness:
    h = Harness(thresholds)
    h.tick()                                   # the worker ticks as it starts
    return h


def run_for(h: Harness, seconds: int, feed: dict | None = None) -> list:
    """Advance one second at a time, feeding ``feed`` (labels -> value) and ticking."""
    out = []
    for _ in range(seconds):
        h.advance(1)
        for labels, value in (feed or {}).items():
            out += h.feed("disk.used_percent", value, labels)
        out += h.tick()
    return out


def test_absent_rule_compiles_with_soak_0_cool_0_and_a_stable_id():
    r = Rule.compile(ABSENT, DEFAULTS)
    assert (r.absent, r.soak, r.cool, r.op, r.limits) == (30.0, 0.0, 0.0, "above",
                                                          (("critical", 30.0),))
    plain = ThresholdConfig(name="m", metric="memory.used_percent", above=90.0)
    # Adding the keys changed no existing rule's identity.
    assert Rule.compile(plain, DEFAULTS).rule_id == Rule.compile(plain, Config()).rule_id
    assert Rule.compile(ABSENT, DEFAULTS).rule_id != Rule.compile(
        ThresholdConfig(name="disk-silent", metric="disk.used_percent", absent=Duration(31),
                        match=FrozenDict(mount="/*"), level="critical"), DEFAULTS).rule_id
    cooled = ThresholdConfig(name="x", metric="y", absent=Duration(5), cool=Duration(9))
    assert Rule.compile(cooled, DEFAULTS).cool == 9.0


def test_an_instance_that_stops_reporting_fires_and_resolves_when_it_returns():
    h = started([ABSENT])
    assert run_for(h, 10, {ROOT: 50.0, VAR: 60.0}) == []
    assert run_for(h, 29, {VAR: 60.0}) == []              # / silent for 29 s
    (fire,) = run_for(h, 1, {VAR: 60.0})
    assert (fire.status, fire.level, dict(fire.labels)) == ("firing", "critical", {"mount": "/"})
    assert fire.summary == "no data from disk / used for 30s"
    assert (fire.value, fire.limit, fire.op) == (30.0, 30.0, "above")
    assert run_for(h, 100, {VAR: 60.0}) == []             # stays firing, not "stale"
    (back,) = run_for(h, 1, {ROOT: 51.0, VAR: 60.0})
    assert back.status == "resolved" and back.fingerprint == fire.fingerprint
    assert back.summary == "disk / used reports again, after 2m11s without data"


def test_rule_as_a_whole_fires_when_nothing_matching_arrives_after_start():
    h = started([ABSENT])
    assert run_for(h, 29) == []
    (fire,) = run_for(h, 1)
    assert fire.labels == NO_LABELS and fire.status == "firing"
    assert fire.summary.startswith("no data from disk")
    # A sample that does not match the rule does not help.
    assert run_for(h, 5, {labels_of(mount="boot"): 1.0}) == []
    (back,) = run_for(h, 1, {ROOT: 1.0})
    assert back.status == "resolved" and back.labels == NO_LABELS
    # From now on instances are watched one by one; the whole-rule alert never returns.
    assert run_for(h, 29) == []
    (fire_root,) = run_for(h, 1)
    assert fire_root.labels == ROOT


def test_after_reload_a_new_absent_rule_starts_watching_then():
    h = Harness([])
    run_for(h, 100, {ROOT: 1.0})
    h.reconfigure([ABSENT])
    assert run_for(h, 25) == []            # nothing since the reload: 30 s from it
    assert [e.labels for e in run_for(h, 10)] == [NO_LABELS]


def test_restart_keeps_an_absent_alert_firing_until_data_returns():
    h = started([ABSENT])
    run_for(h, 5, {ROOT: 1.0})
    assert statuses(run_for(h, 40)) == [("firing", "critical", None)]
    saved = json.loads(json.dumps(h.ev.export_state(h.clock.monotonic())))
    h2 = started([ABSENT])
    h2.clock.advance(500)
    assert h2.ev.import_state(saved, h2.clock.monotonic(), h2.clock.wall()) == []
    assert run_for(h2, 120) == []          # no resolve, no re-fire
    assert statuses(run_for(h2, 1, {ROOT: 2.0})) == [("resolved", "critical", None)]


def test_restart_keeps_the_whole_rule_alert_of_a_rule_with_match():
    h = started([ABSENT])
    assert len(run_for(h, 30)) == 1
    saved = json.loads(json.dumps(h.ev.export_state(h.clock.monotonic())))
    h2 = started([ABSENT])
    h2.ev.import_state(saved, h2.clock.monotonic(), h2.clock.wall())
    assert run_for(h2, 60) == []
    assert [e.status for e in run_for(h2, 1, {VAR: 1.0})] == ["resolved"]


@settings(max_examples=100, deadline=None)
@given(pattern=st.lists(st.booleans(), min_size=1, max_size=200),
       absent=st.integers(1, 20))
def test_firing_exactly_while_the_gap_is_at_least_absent(pattern, absent):
    """Per second: report or not. The alert is open iff the current gap >= absent."""
    rule = ThresholdConfig(name="gap", metric="disk.used_percent", absent=Duration(absent))
    h = Harness([rule])
    run_for(h, 1, {ROOT: 1.0})
    last = h.clock.monotonic()
    for report in pattern:
        h.advance(1)
        if report:
            h.feed("disk.used_percent", 1.0, ROOT)
        h.tick()
        now = h.clock.monotonic()
        gap_before = now - last
        if report:
            last = now
        is_open = any(a["labels"] == {"mount": "/"} for a in h.ev.open_alerts())
        assert is_open == (not report and gap_before >= absent)
    # events alternate firing/resolved, starting with firing
    st_ = [e.status for e in h.events]
    assert st_ == ["firing", "resolved"] * (len(st_) // 2) + ["firing"] * (len(st_) % 2)


# -- predict -------------------------------------------------------------------------------


FULL = ThresholdConfig(name="root-full-soon", metric="disk.used_percent", above=100.0,
                       match=FrozenDict(mount="/"),
                       window=WindowConfig(over=Duration(60), mode="predict",
                                           ahead=Duration(600)))


def test_predict_fires_when_the_trend_crosses_the_limit_ahead():
    h = Harness([FULL])
    value = 50.0
    events = []
    for _ in range(70):                           # +0.05 %/s: 100 % is 1000 s away
        h.advance(1)
        value += 0.05
        events += h.feed("disk.used_percent", value, ROOT)
    assert events == []                           # 600 s ahead is ~84 %, not 100 %
    for _ in range(300):                          # now +0.1 %/s
        h.advance(1)
        value += 0.1
        events += h.feed("disk.used_percent", value, ROOT)
        if events:
            break
    (fire,) = events
    assert fire.status == "firing" and fire.value > 100.0
    assert value + 0.1 * 600 > 100.0 and value < 100.0
    assert "in 10m at the trend over 1m" in fire.summary
    for _ in range(120):                          # flat: the trend is gone
        h.advance(1)
        events += h.feed("disk.used_percent", value, ROOT)
        events += h.tick()
    assert [e.status for e in events] == ["firing", "resolved"]


def test_predict_needs_the_window_covered_and_three_samples():
    h = Harness([FULL])
    for v in (10.0, 90.0):
        h.advance(70)
        assert h.feed("disk.used_percent", v, ROOT) == []   # 1 sample in 60 s each time
    h.advance(1)
    h.feed("disk.used_percent", 95.0, ROOT)
    h.advance(1)
    (fire,) = h.feed("disk.used_percent", 99.0, ROOT)        # 3 samples, steep
    assert fire.status == "firing"
