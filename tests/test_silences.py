"""Silences as data: matching, activity in time, expiry by id or prefix, bounds, the file."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pharosd.alerting.matchers import Selector, glob
from pharosd.alerting.silences import (
    MAX_COMMENT,
    RETAIN,
    Silence,
    SilenceBook,
    new_silence,
)
from pharosd.errors import SilenceError

NOW = 1_700_000_000.0


def silence(id: str = "a1b2c3d4", rules=("disk-*",), labels=None, start=NOW, end=NOW + 3600,
            comment="") -> Silence:
    return new_silence(id, rules, labels or {}, now=NOW, ends_at=end, starts_at=start,
                       comment=comment, created_by=1000)


def test_selector_rules_are_alternatives_and_labels_all_must_match():
    sel = Selector.of(["disk-*", "root-full"], {"mount": "/srv*", "fstype": "ext4"})
    labels = (("fstype", "ext4"), ("mount", "/srv/data"))
    assert sel.matches("disk-full", labels) and sel.matches("root-full", labels)
    assert not sel.matches("memory-high", labels)
    assert not sel.matches("disk-full", (("mount", "/srv/data"),))       # fstype missing
    assert not sel.matches("disk-full", (("fstype", "xfs"), ("mount", "/srv")))
    assert Selector.of([], {"mount": "/"}).matches("anything", (("mount", "/"),))
    assert glob("a[bc]?")("acx") and not glob("a*")("ba") and glob("x")("x")
    assert sel.describe() == "rule=disk-*|root-full, fstype=ext4, mount=/srv*"


@settings(max_examples=200, deadline=None)
@given(start=st.floats(-1e5, 1e5), length=st.floats(1, 1e5), t=st.floats(-2e5, 3e5))
def test_active_exactly_between_start_and_end(start, length, t):
    s = silence(start=NOW + start, end=NOW + max(start, 0) + length)
    assert s.active(NOW + t) == (s.starts_at <= NOW + t < s.ends_at)
    book = SilenceBook([s])
    held = book.matching("disk-full", (), NOW + t)
    assert (held is s) == s.active(NOW + t)
    assert book.matching("memory-high", (), NOW + t) is None


@settings(max_examples=100, deadline=None)
@given(ends=st.lists(st.floats(1, 1e5), min_size=1, max_size=8), t=st.floats(0, 1e5))
def test_matching_picks_the_active_silence_ending_last(ends, t):
    book = SilenceBook()
    for i, e in enumerate(ends):
        book.add(silence(id=f"id{i:04d}", end=NOW + e), NOW)
    held = book.matching("disk-full", (), NOW + t)
    live = [NOW + e for e in ends if NOW + t < NOW + e]
    assert (held is None) == (not live)
    if held is not None:
        assert held.ends_at == max(live)


def test_expire_by_id_or_unique_prefix_then_it_no_longer_holds():
    book = SilenceBook()
    book.add(silence(id="abcd1111"), NOW)
    book.add(silence(id="abcd2222"), NOW)
    with pytest.raises(SilenceError, match="ambiguous"):
        book.expire("abcd", NOW + 1)
    with pytest.raises(SilenceError, match="at least 4"):
        book.expire("ab", NOW + 1)
    with pytest.raises(SilenceError, match="no silence"):
        book.expire("ffff", NOW + 1)
    ended = book.expire("abcd1", NOW + 10)
    assert ended.id == "abcd1111" and ended.ends_at == NOW + 10
    assert book.find("abcd1111").state(NOW + 10) == "expired"
    assert book.matching("disk-x", (), NOW + 10).id == "abcd2222"
    with pytest.raises(SilenceError, match="already expired"):
        book.expire("abcd1111", NOW + 11)


def test_expiring_a_pending_silence_ends_it_before_it_starts():
    book = SilenceBook([silence(id="future00", start=NOW + 100, end=NOW + 200)])
    assert book.find("future00").state(NOW) == "pending"
    ended = book.expire("future00", NOW)
    assert ended.ended(NOW + 100) and not ended.active(NOW + 150)


def test_ended_silences_are_listed_for_a_day_then_forgotten():
    book = SilenceBook([silence(id="old00000", end=NOW + 10)])
    assert [s.id for s in book.prune(NOW + 10 + RETAIN)] == []
    assert len(book) == 1
    assert [s.id for s in book.prune(NOW + 11 + RETAIN)] == ["old00000"]
    assert len(book) == 0


@pytest.mark.parametrize("kwargs,message", [
    ({"rules": (), "labels": {}}, "at least one"),
    ({"end": NOW - 1}, "in the future"),
    ({"end": NOW}, "in the future"),
    ({"start": NOW + 100, "end": NOW + 50}, "after the start"),
    ({"rules": ("",)}, "non-empty"),
    ({"comment": "x" * (MAX_COMMENT + 1)}, "comment"),
])
def test_new_silence_refuses(kwargs, message):
    with pytest.raises(SilenceError, match=message):
        silence(**kwargs)


def test_round_trip_through_data_skips_what_it_cannot_read():
    book = SilenceBook([silence(id="s1000000", labels={"mount": "/"}, comment="disk swap"),
                        silence(id="s2000000", rules=("*",))])
    data = book.to_data()
    data["silences"].append({"id": "broken"})
    data["silences"].append("nonsense")
    back, bad = SilenceBook.from_data(data)
    assert bad == 2
    assert back.all() == book.all()
    with pytest.raises(ValueError):
        SilenceBook.from_data({"version": 99})
