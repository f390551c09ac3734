"""Maintenance windows: local time, windows crossing midnight, DST (Europe/Berlin), days."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pharosd.alerting.maintenance import (
    DAYS,
    Schedule,
    Window,
    local_zone,
    parse_start,
)

BERLIN = ZoneInfo("Europe/Berlin")
UTC = ZoneInfo("UTC")
ZONES = [BERLIN, UTC, ZoneInfo("America/New_York"), ZoneInfo("Australia/Lord_Howe")]


def at(zone, *args) -> float:
    return datetime(*args, tzinfo=zone).timestamp()


def utc(*args) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()


@pytest.mark.parametrize("text,minutes", [("00:00", 0), ("7:05", 425), ("23:59", 1439),
                                          (" 22:30 ", 1350)])
def test_parse_start(text, minutes):
    assert parse_start(text) == minutes


@pytest.mark.parametrize("text", ["24:00", "12:60", "12", "1230", "12:3", "noon", "", "-1:00"])
def test_parse_start_refuses(text):
    with pytest.raises(ValueError, match="HH:MM"):
        parse_start(text)


def test_window_crossing_midnight_belongs_to_the_day_it_opens():
    w = Window.of("backup", "23:00", 2 * 3600, days=["fri"])
    # 2024-05-03 is a Friday.
    assert w.occurrence(at(UTC, 2024, 5, 3, 22, 59), UTC) is None
    opens = at(UTC, 2024, 5, 3, 23, 0)
    assert w.occurrence(opens, UTC) == (opens, opens + 7200)
    assert w.occurrence(at(UTC, 2024, 5, 4, 0, 30), UTC) == (opens, opens + 7200)  # Saturday
    assert w.occurrence(at(UTC, 2024, 5, 4, 1, 0), UTC) is None                   # closed
    assert w.occurrence(at(UTC, 2024, 5, 4, 23, 30), UTC) is None                 # not Saturday's
    assert w.occurrence(at(UTC, 2024, 5, 2, 23, 30), UTC) is None                 # nor Thursday's


def test_local_time_is_the_zone_passed_in():
    w = Window.of("nightly", "02:00", 3600)
    # 02:00 in Berlin in summer is 00:00 UTC.
    assert w.occurrence(utc(2024, 7, 1, 0, 30), BERLIN) is not None
    assert w.occurrence(utc(2024, 7, 1, 2, 30), BERLIN) is None
    assert w.occurrence(utc(2024, 7, 1, 2, 30), UTC) is not None


def test_dst_spring_forward_gap_start_opens_at_the_shifted_instant():
    # Berlin, 2024-03-31: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist.
    w = Window.of("gap", "02:30", 3600)
    opens, closes = w.occurrence(utc(2024, 3, 31, 1, 45), BERLIN)
    assert opens == utc(2024, 3, 31, 1, 30)             # 03:30 CEST, as fold=0 reads 02:30
    assert closes - opens == 3600                       # elapsed time
    assert w.occurrence(utc(2024, 3, 31, 1, 29), BERLIN) is None
    # The day after, 02:30 CEST is 00:30 UTC.
    assert w.occurrence(utc(2024, 4, 1, 0, 30), BERLIN)[0] == utc(2024, 4, 1, 0, 30)


def test_dst_fall_back_repeated_hour_opens_at_its_first_occurrence():
    # Berlin, 2024-10-27: 03:00 CEST goes back to 02:00 CET; 02:30 happens twice.
    w = Window.of("repeat", "02:30", 2 * 3600)
    opens, closes = w.occurrence(utc(2024, 10, 27, 1, 0), BERLIN)
    assert opens == utc(2024, 10, 27, 0, 30)            # 02:30 CEST, the first one
    assert closes == utc(2024, 10, 27, 2, 30)           # two hours later: 03:30 CET
    assert w.occurrence(utc(2024, 10, 27, 2, 30), BERLIN) is None


def test_window_spanning_the_dst_switch_lasts_its_duration():
    w = Window.of("long", "22:00", 8 * 3600, days=["sat"])   # Sat 2024-03-30 22:00 CET
    opens, closes = w.occurrence(utc(2024, 3, 31, 3, 0), BERLIN)
    assert opens == utc(2024, 3, 30, 21, 0)
    assert closes == utc(2024, 3, 31, 5, 0)                  # 07:00 CEST local


def _brute(w: Window, now: float, tz) -> tuple[float, float] | None:
    """The definition, by scanning local days around ``now``."""
    today = datetime.fromtimestamp(now, tz).date()
    for k in range(-1, 10):
        day = today - timedelta(days=k)
        if w.days and day.weekday() not in w.days:
            continue
        local = datetime(day.year, day.month, day.day, w.start // 60, w.start % 60,
                         tzinfo=tz)
        opens = local.timestamp()
        if opens <= now < opens + w.duration:
            return opens, opens + w.duration
    return None


@settings(max_examples=300, deadline=None)
@given(start=st.integers(0, 1439), duration=st.integers(60, 3 * 86400),
       days=st.sets(st.sampled_from(DAYS), max_size=7), zone=st.sampled_from(ZONES),
       now=st.integers(int(utc(2023, 1, 1)), int(utc(2026, 1, 1))))
def test_occurrence_matches_the_definition(start, duration, days, zone, now):
    w = Window.of("w", f"{start // 60:02d}:{start % 60:02d}", float(duration), days=days)
    occ = w.occurrence(float(now), zone)
    brute = _brute(w, float(now), zone)
    # Overlapping occurrences (duration > a day) may report either; both contain now.
    assert (occ is None) == (brute is None)
    if occ is not None:
        opens, closes = occ
        assert opens <= now < closes and closes - opens == duration
        assert not days or DAYS[datetime.fromtimestamp(opens, zone).weekday()] in days
        # next_opening is after now and is itself an opening
        nxt = w.next_opening(float(now), zone)
        assert nxt > now and w.occurrence(nxt, zone) is not None


@settings(max_examples=200, deadline=None)
@given(start=st.integers(0, 1439), duration=st.integers(60, 86400),
       zone=st.sampled_from(ZONES),
       now=st.integers(int(utc(2023, 1, 1)), int(utc(2026, 1, 1))))
def test_daily_window_is_open_about_duration_per_day(start, duration, zone, now):
    # Walking a day in steps finds it open for about duration seconds (DST: +- 1h overlap).
    w = Window.of("w", f"{start // 60:02d}:{start % 60:02d}", float(duration))
    step = 300
    open_steps = sum(1 for k in range(0, 86400, step) if w.occurrence(now + k, zone))
    assert abs(open_steps * step - duration) <= 3600 + 2 * step


def test_schedule_holding_matches_rules_and_labels_and_picks_the_latest_close():
    s = Schedule((Window.of("a", "10:00", 3600, rules=["disk-*"]),
                  Window.of("b", "10:00", 7200, labels={"mount": "/srv*"}),
                  Window.of("c", "11:00", 3600)), UTC)
    now = utc(2024, 5, 1, 10, 30)
    assert [w.name for w, *_ in s.in_effect(now)] == ["a", "b"]
    assert s.holding("disk-full", (("mount", "/"),), now)[0].name == "a"
    w, closes = s.holding("disk-full", (("mount", "/srv/x"),), now)
    assert w.name == "b" and closes == utc(2024, 5, 1, 12, 0)
    assert s.holding("memory-high", (), now) is None
    assert s.holding("memory-high", (), utc(2024, 5, 1, 11, 5))[0].name == "c"


def test_window_bounds():
    with pytest.raises(ValueError, match="duration"):
        Window.of("x", "10:00", 0)
    with pytest.raises(ValueError, match="duration"):
        Window.of("x", "10:00", 8 * 86400)
    w = Window.of("x", "09:05", 5400, days=["mon", "fri"])
    assert w.describe() == "mon,fri 09:05 for 1h30m"


def test_local_zone_reads_tz_then_localtime(tmp_path):
    assert local_zone({"TZ": "Europe/Berlin"}).utcoffset(datetime(2024, 7, 1)) == \
        timedelta(hours=2)
    assert local_zone({"TZ": ":Europe/Berlin"}).utcoffset(datetime(2024, 1, 1)) == \
        timedelta(hours=1)
    missing = tmp_path / "none"
    assert local_zone({}, str(missing)).utcoffset(datetime(2024, 1, 1)) == timedelta(0)
    z = local_zone({}, "/usr/share/zoneinfo/Europe/Berlin")
    assert z.utcoffset(datetime(2024, 7, 1)) == timedelta(hours=2)
