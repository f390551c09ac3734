"""The notifier (pure): routing by filter, reminders, holds by silences and maintenance
windows, closure never held, and state across restarts. Time is wall seconds, passed in."""

from __future__ import annotations

import itertools
import json
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from pharosd.alerting.maintenance import Schedule, Window
from pharosd.alerting.notifier import Delivery, Notifier
from pharosd.alerting.routing import Route, RouteFilter
from pharosd.alerting.silences import SilenceBook, new_silence
from pharosd.model import AlertEvent, fingerprint, labels_of

T0 = 1_700_000_000.0
LEVELS = ("info", "warning", "critical")


def event(status="firing", level="warning", rule="disk-full", labels=None, at=T0,
          previous=None, started=T0) -> AlertEvent:
    lb = labels_of(labels or {"mount": "/"})
    return AlertEvent(status=status, rule=rule, level=level, metric="disk.used_percent",
                      labels=lb, value=95.0, limit=90.0, op="above", host="h",
                      started_at=started, at=at, summary=f"{rule} {status}",
                      fingerprint=fingerprint(rule, lb), previous_level=previous)


def counter_ids():
    c = itertools.count()
    return lambda: f"r{next(c)}"


def sinks_of(deliveries: list[Delivery]) -> list[str]:
    return [d.sink for d in deliveries]


# -- routing --------------------------------------------------------------------------


def test_filter_parts_all_must_match():
    f = RouteFilter.of(levels=["critical"], rules=["disk-*"], labels={"mount": "/srv*"})
    assert f.why_not(event(level="critical", labels={"mount": "/srv/a"})) is None
    assert "level warning" in f.why_not(event(level="warning", labels={"mount": "/srv/a"}))
    assert "rule memory-high" in f.why_not(event(level="critical", rule="memory-high",
                                                 labels={"mount": "/srv/a"}))
    assert "labels" in f.why_not(event(level="critical", labels={"mount": "/"}))


def test_escalation_reaches_a_critical_sink_which_then_gets_the_rest():
    n = Notifier([Route("all"), Route("pager", RouteFilter.of(levels=["critical"]))])
    fire = event(level="warning")
    assert sinks_of(n.publish(fire, T0)) == ["all"]
    up = replace(event(level="critical", previous="warning"), at=T0 + 5)
    assert sinks_of(n.publish(up, T0 + 5)) == ["all", "pager"]
    down = event(level="warning", previous="critical")
    assert sinks_of(n.publish(down, T0 + 10)) == ["all", "pager"]     # told: gets it anyway
    assert sinks_of(n.publish(event("resolved"), T0 + 20)) == ["all", "pager"]


def test_a_sink_never_told_gets_no_resolved():
    n = Notifier([Route("all"), Route("pager", RouteFilter.of(levels=["critical"]))])
    n.publish(event(level="warning"), T0)
    assert sinks_of(n.publish(event("resolved"), T0 + 1)) == ["all"]


def test_resolved_of_an_unknown_alert_goes_where_its_filter_allows():
    n = Notifier([Route("all"), Route("pager", RouteFilter.of(levels=["critical"])),
                  Route("warn", RouteFilter.of(levels=["warning"]))])
    assert sinks_of(n.publish(event("resolved"), T0)) == ["all", "warn"]


@st.composite
def histories(draw):
    """A sequence of events of one alert as the evaluator emits them."""
    out = []
    t = T0
    for _ in range(draw(st.integers(1, 4))):                 # several alert lifetimes
        level = draw(st.sampled_from(LEVELS))
        out.append(("firing", level, None))
        for _ in range(draw(st.integers(0, 4))):
            new = draw(st.sampled_from([lv for lv in LEVELS if lv != level]))
            out.append(("firing", new, level))
            level = new
        if draw(st.booleans()):
            out.append(("resolved", level, None))
        else:
            break
    evs = []
    for status, level, prev in out:
        t += draw(st.integers(1, 100))
        evs.append(event(status, level, at=t, previous=prev))
    return evs


filters = st.one_of(st.none(), st.builds(
    lambda lv: RouteFilter.of(levels=lv), st.lists(st.sampled_from(LEVELS), min_size=1,
                                                   unique=True)))


@settings(max_examples=300, deadline=None)
@given(history=histories(), fs=st.lists(filters, min_size=1, max_size=4))
def test_every_sink_sees_a_well_formed_story(history, fs):
    routes = [Route(f"s{i}", f) for i, f in enumerate(fs)]
    n = Notifier(routes)
    got: dict[str, list[AlertEvent]] = {r.sink: [] for r in routes}
    for ev in history:
        for d in n.publish(ev, ev.at):
            got[d.sink].append(d.event)
    for route in routes:
        seq = got[route.sink]
        if route.filter is None:
            assert seq == history                   # no filter: everything, in order
            continue
        # It starts at the first firing event its filter passes, within a lifetime,
        # gets everything of that lifetime from there, and a resolved only then.
        lifetimes: list[list[AlertEvent]] = [[]]
        for ev in history:
            lifetimes[-1].append(ev)
            if ev.status == "resolved":
                lifetimes.append([])
        expected: list[AlertEvent] = []
        for life in lifetimes:
            first = next((i for i, e in enumerate(life)
                          if e.status == "firing" and route.accepts(e)), None)
            if first is not None:
                expected += life[first:]
        assert seq == expected
        assert all(e.status == "firing" or i > 0 for i, e in enumerate(seq))


# -- reminders ---------------------------------------------------------------------------


def test_reminders_every_repeat_with_new_id_and_the_flag():
    n = Notifier([Route("a", repeat=60.0), Route("b")], ids=counter_ids())
    fire = event()
    n.publish(fire, T0)
    assert n.tick(T0 + 59.9) == []
    r = n.tick(T0 + 60)
    assert sinks_of(r) == ["a"]
    rem = r[0].event
    assert rem.reminder and rem.id == "r0" and rem.fingerprint == fire.fingerprint
    assert rem.at == T0 + 60 and rem.started_at == fire.started_at
    assert "reminder: firing for 1m" in rem.summary
    assert rem.to_dict()["reminder"] is True and "reminder" not in fire.to_dict()
    assert AlertEvent.from_dict(rem.to_dict()).reminder
    assert n.tick(T0 + 100) == []
    assert sinks_of(n.tick(T0 + 121)) == ["a"]          # due at last + repeat = T0+120
    # a level change resets the period (it was news)
    n.publish(event(level="critical", previous="warning"), T0 + 150)
    assert n.tick(T0 + 181) == [] and sinks_of(n.tick(T0 + 210)) == ["a"]
    n.publish(event("resolved"), T0 + 220)
    assert n.tick(T0 + 1000) == []


@settings(max_examples=200, deadline=None)
@given(repeat=st.floats(1, 500), gaps=st.lists(st.floats(0.1, 300), min_size=1, max_size=60),
       restart_at=st.integers(0, 60))
def test_reminder_cadence_and_restart_neither_bursts_nor_resets(repeat, gaps, restart_at):
    routes = [Route("a", repeat=repeat)]
    n = Notifier(routes)
    n.publish(event(), T0)
    last = T0
    t = T0
    for i, gap in enumerate(gaps):
        if i == restart_at:                     # a restart: state through JSON
            data = json.loads(json.dumps(n.export_state()))
            n = Notifier(routes)
            assert n.import_state(data) == 0
        t += gap
        out = n.tick(t)
        due = t - last >= repeat
        assert len(out) == (1 if due else 0)    # at most one per tick, exactly when due
        if due:
            assert out[0].event.reminder
            last = t


# -- holds: silences and maintenance --------------------------------------------------------


def book_with(*silences):
    b = SilenceBook()
    for s in silences:
        b.add(s, T0)
    return b


def test_silence_holds_firing_then_delivers_it_when_it_ends():
    s = new_silence("s1", ["disk-*"], {}, now=T0, ends_at=T0 + 100, comment="swap disk")
    n = Notifier([Route("a", repeat=30.0)], silences=book_with(s))
    fire = event()
    assert n.publish(fire, T0 + 1) == []
    assert n.tick(T0 + 50) == []                          # no reminder while silenced
    hold = n.hold(fire.rule, fire.labels, T0 + 50)
    assert (hold.kind, hold.id, hold.comment, hold.until) == ("silence", "s1", "swap disk",
                                                               T0 + 100)
    out = n.tick(T0 + 100)
    assert [(d.sink, d.event.id) for d in out] == [("a", fire.id)]
    assert n.counters["held"] == 1


def test_silence_expired_early_delivers_at_the_next_tick():
    s = new_silence("s1", ["*"], {}, now=T0, ends_at=T0 + 1000)
    book = book_with(s)
    n = Notifier([Route("a")], silences=book)
    n.publish(event(), T0)
    book.expire("s1", T0 + 5)
    assert sinks_of(n.tick(T0 + 5)) == ["a"]


def test_resolved_while_silenced_goes_to_sinks_told_before_and_to_no_other():
    n = Notifier([Route("a")])
    n.publish(event(), T0)
    n.silences.add(new_silence("s1", ["*"], {}, now=T0 + 1, ends_at=T0 + 1000), T0 + 1)
    assert n.publish(event(level="critical", previous="warning"), T0 + 2) == []
    assert sinks_of(n.publish(event("resolved"), T0 + 3)) == ["a"]
    # An alert that fires and resolves inside the silence is never told.
    other = event(rule="disk-other")
    assert n.publish(other, T0 + 4) == []
    assert n.publish(event("resolved", rule="disk-other"), T0 + 5) == []


def test_held_escalation_is_delivered_after_the_hold_to_sinks_already_told():
    n = Notifier([Route("a"), Route("pager", RouteFilter.of(levels=["critical"]))])
    n.publish(event(), T0)
    n.silences.add(new_silence("s1", ["*"], {}, now=T0, ends_at=T0 + 10), T0)
    up = event(level="critical", previous="warning")
    assert n.publish(up, T0 + 1) == []
    out = n.tick(T0 + 10)
    assert [(d.sink, d.event.id) for d in out] == [("a", up.id), ("pager", up.id)]


def test_maintenance_window_holds_with_its_name_as_reason():
    sched = Schedule((Window.of("patching", "22:00", 3600, rules=["disk-*"]),), None)
    n = Notifier([Route("a")], schedule=sched)
    # T0 = 2023-11-14 22:13:20 UTC: inside 22:00-23:00 UTC.
    fire = event()
    assert n.publish(fire, T0) == []
    hold = n.hold(fire.rule, fire.labels, T0)
    assert hold.kind == "maintenance" and hold.id == "patching"
    assert "22:00 for 1h" in hold.comment
    assert n.tick(T0 + 2000) == []
    assert sinks_of(n.tick(T0 + 2800)) == ["a"]                     # 23:00 passed
    assert n.publish(event(rule="memory-high"), T0) != []           # not matched


@settings(max_examples=200, deadline=None)
@given(windows=st.lists(st.tuples(st.floats(0, 500), st.floats(1, 200)), max_size=4),
       ticks=st.lists(st.floats(0.5, 50), min_size=1, max_size=40))
def test_a_held_alert_is_delivered_exactly_once_at_the_first_tick_outside_every_silence(
        windows, ticks):
    book = SilenceBook()
    for i, (start, length) in enumerate(windows):
        book.add(new_silence(f"s{i:03d}", ["*"], {}, now=T0, starts_at=T0 + start,
                             ends_at=T0 + start + length), T0)
    n = Notifier([Route("a")], silences=book)
    fire = event()
    delivered_at = []
    held = book.matching(fire.rule, fire.labels, T0) is not None
    if n.publish(fire, T0):
        delivered_at.append(T0)
    t = T0
    for gap in ticks:
        t += gap
        if n.tick(t):
            delivered_at.append(t)
    assert len(delivered_at) <= 1
    times = list(itertools.accumulate(ticks, initial=T0))
    free = [x for x in times if book.matching(fire.rule, fire.labels, x) is None]
    assert delivered_at == free[:1]
    assert held == (delivered_at[:1] != [T0])


# -- reload and restart ------------------------------------------------------------------------


def test_reconfigure_keeps_what_remaining_sinks_were_told_and_new_sinks_catch_up():
    n = Notifier([Route("a"), Route("b")])
    fire = event()
    n.publish(fire, T0)
    n.reconfigure([Route("a", repeat=10.0), Route("c")])
    out = n.tick(T0 + 10)
    assert [(d.sink, d.event.reminder) for d in out] == [("a", True), ("c", False)]
    assert sinks_of(n.publish(event("resolved"), T0 + 11)) == ["a", "c"]


def test_import_state_skips_unreadable_entries_and_forgets_removed_sinks():
    n = Notifier([Route("a"), Route("b")])
    n.publish(event(), T0)
    data = json.loads(json.dumps(n.export_state()))
    data["alerts"].append({"event": {"status": "firing"}})
    m = Notifier([Route("a")])
    assert m.import_state(data) == 1
    assert m.told(event().fingerprint) == {"a": T0}
    assert sinks_of(m.publish(event("resolved"), T0 + 5)) == ["a"]


def test_an_event_published_again_after_a_restart_is_dropped_once_routed():
    """The evaluator republishes what it saved but may not have published (a crash);
    what the notifier already routed is not delivered twice, across its own restart."""
    n = Notifier([Route("a")])
    fire = event()
    assert sinks_of(n.publish(fire, T0)) == ["a"]
    assert n.publish(fire, T0 + 1) == [] and n.counters["duplicates"] == 1
    m = Notifier([Route("a")])
    m.import_state(json.loads(json.dumps(n.export_state())))
    assert m.publish(fire, T0 + 2) == []
    resolved = event("resolved", at=T0 + 3)
    assert sinks_of(m.publish(resolved, T0 + 3)) == ["a"]
    k = Notifier([Route("a")])
    k.import_state(json.loads(json.dumps(m.export_state())))
    assert k.publish(resolved, T0 + 4) == []          # not "unknown alert: to every sink"
    assert k.counters["duplicates"] == 1


def test_remembered_ids_are_bounded_oldest_forgotten_first():
    from pharosd.alerting.notifier import RECENT_IDS

    n = Notifier([Route("a")])
    ids = [f"e{i}" for i in range(RECENT_IDS + 5)]
    for i, eid in enumerate(ids):
        n.publish(replace(event(labels={"n": str(i)}), id=eid), T0)
    recent = n.export_state()["recent"]
    assert recent == ids[5:]
    assert sinks_of(n.publish(replace(event(labels={"n": "0"}), id="e0"), T0)) == []  # open
    assert n.counters["duplicates"] == 0


def test_reconcile_closes_alerts_the_evaluator_does_not_have_open():
    n = Notifier([Route("a", repeat=60.0), Route("pager", RouteFilter.of(levels=["critical"]))],
                 ids=counter_ids())
    kept, lost = event(labels={"mount": "/"}), event(labels={"mount": "/srv"})
    silenced = event(rule="quiet")
    n.silences.add(new_silence("s1", ["quiet"], {}, now=T0, ends_at=T0 + 3600,
                               comment="", created_by=0), T0)
    for e in (kept, lost, silenced):
        n.publish(e, T0)
    out = n.reconcile({kept.fingerprint}, T0 + 10)
    assert [(d.sink, d.event.status, d.event.fingerprint) for d in out] == [
        ("a", "resolved", lost.fingerprint)]          # told sinks only; the silenced: none
    closing = out[0].event
    assert closing.id == "r0" and closing.at == T0 + 10 and closing.started_at == T0
    assert "no longer evaluated" in closing.summary and not closing.reminder
    assert [e.fingerprint for e in n.open_alerts()] == [kept.fingerprint]
    assert n.counters["reconciled"] == 2
    # Forgotten: no reminder follows, and a late resolved from nowhere is news to none.
    assert sinks_of(n.tick(T0 + 120)) == ["a"]       # the kept alert's reminder only
    assert n.reconcile({kept.fingerprint}, T0 + 121) == []
