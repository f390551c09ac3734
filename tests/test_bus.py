"""The event bus: fan-out, isolation of a failing subscriber, run-time (un)subscribe."""

from __future__ import annotations

from pharosd.bus import Bus
from pharosd.model import AlertEvent


def event(n: int = 0) -> AlertEvent:
    return AlertEvent(status="firing", rule="r", level="warning", metric="m", labels=(),
                      value=float(n), limit=1.0, op="above", host="h", started_at=0.0,
                      at=0.0, summary="s", fingerprint="f")


def test_every_subscriber_gets_every_event_and_a_raising_one_affects_none():
    bus = Bus()
    got_a: list[AlertEvent] = []
    got_b: list[AlertEvent] = []

    def broken(_e: AlertEvent) -> None:
        raise RuntimeError("sink bug")

    bus.subscribe("a", got_a.append)
    bus.subscribe("broken", broken)
    bus.subscribe("b", got_b.append)
    events = [event(i) for i in range(3)]
    for e in events:
        bus.publish(e)
    assert got_a == events and got_b == events
    assert bus.subscriber_failures == 3 and bus.published == 3


def test_unsubscribe_at_run_time():
    bus = Bus()
    got: list[AlertEvent] = []
    h = bus.subscribe("a", got.append)
    bus.publish(event(1))
    assert bus.unsubscribe(h)
    assert not bus.unsubscribe(h)
    bus.publish(event(2))
    assert [e.value for e in got] == [1.0]
    assert bus.subscribers() == []


def test_subscriber_may_unsubscribe_itself_during_publish():
    bus = Bus()
    got: list[AlertEvent] = []
    handle = 0

    def once(e: AlertEvent) -> None:
        got.append(e)
        bus.unsubscribe(handle)

    handle = bus.subscribe("once", once)
    bus.publish(event(1))
    bus.publish(event(2))
    assert len(got) == 1
