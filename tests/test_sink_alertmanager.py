"""The Alertmanager sink: the pure active-set rules, re-sending with a FakeClock,
restarts, HA failover, then real Alertmanager 0.25 alone and clustered."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from peers import free_port, wait_for
from peers.alertmanager import CLUSTER_GROUP_INTERVAL, PEER_TIMEOUT, Alertmanager
from peers.receiver import Receiver, Request
from peers.sinktools import event

from pharosd.clock import FakeClock
from pharosd.errors import DeliveryError, PermanentDeliveryError
from pharosd.model import parse_rfc3339, rfc3339
from pharosd.sinks.alertmanager import AlertmanagerSink, apply_event, to_api
from pharosd.sinks.config import AlertmanagerSinkConfig
from pharosd.sinks.factory import alertmanager_state_path, build_sink

NOW = 1_700_000_000.0


# -- pure rules ------------------------------------------------------------------------


def test_labels_and_annotations_of_an_alert() -> None:
    ev = event("disk-full", level="critical", labels={"mount": "/", "fs.type": "ext4"},
               at=NOW)
    _, send = apply_event({}, ev, NOW, 300.0)
    (alert,) = to_api(send, NOW, 60.0, "http://gen", {"team": "ops", "severity": "x"})
    assert alert == {
        "labels": {"alertname": "disk-full", "severity": "critical", "host": "web1",
                   "mount": "/", "fs_type": "ext4", "team": "ops"},
        "annotations": {"summary": ev.summary, "value": "93.5", "limit": "90"},
        "startsAt": rfc3339(ev.started_at),
        "endsAt": rfc3339(NOW + 240.0),
        "generatorURL": "http://gen",
    }


def test_resolved_alert_ends_at_its_resolve_time_and_expires_later() -> None:
    firing = event("r", at=NOW - 100)
    resolved = event("r", "resolved", at=NOW - 10)
    active, _ = apply_event({}, firing, NOW - 100, 300.0)
    active, send = apply_event(active, resolved, NOW, 300.0)
    (entry,) = active.values()
    assert entry.resolved_at == NOW - 10
    assert entry.until == NOW + 300.0          # re-sent for 5 minutes after delivery
    assert [a["endsAt"] for a in to_api(send, NOW, 60.0)] == [rfc3339(NOW - 10)]


def test_a_level_change_resolves_the_old_severity() -> None:
    warn = event("r", level="warning", at=NOW)
    crit = event("r", level="critical", at=NOW + 5)
    active, _ = apply_event({}, warn, NOW, 300.0)
    active, send = apply_event(active, crit, NOW + 5, 300.0)
    sent = {a["labels"]["severity"]: a["endsAt"] for a in to_api(send, NOW + 5, 60.0)}
    assert sent == {"warning": rfc3339(NOW + 5), "critical": rfc3339(NOW + 5 + 240)}
    assert len(active) == 2
    resolved = event("r", "resolved", level="critical", at=NOW + 9)
    active, send = apply_event(active, resolved, NOW + 9, 300.0)
    assert all(a.resolved_at is not None for a in active.values())


# -- the sink with a FakeClock against a recording receiver ------------------------------


def _alerts(req: Request) -> list[dict[str, Any]]:
    body: list[dict[str, Any]] = req.json()
    return body


def test_firing_alerts_are_re_sent_every_resend_and_resolved_ones_for_a_while(
        tmp_path: Path) -> None:
    clock = FakeClock(wall=NOW)
    with Receiver() as rx:
        sink = AlertmanagerSink("am", [rx.url], resend=60.0, resolved_for=300.0,
                                state_path=str(tmp_path / "am.json"), clock=clock)
        a, b = event("a", at=NOW), event("b", at=NOW)
        sink.deliver(a)
        sink.deliver(b)
        assert [r.path for r in rx.received()] == ["/api/v2/alerts"] * 2
        sink.periodic(clock.wall())              # the first call re-sends at once
        assert len(rx.received()) == 3
        clock.advance(30)
        sink.periodic(clock.wall())
        assert len(rx.received()) == 3           # not yet
        clock.advance(30)
        sink.periodic(clock.wall())
        resent = _alerts(rx.received()[-1])
        assert sorted(x["labels"]["alertname"] for x in resent) == ["a", "b"]
        assert {x["endsAt"] for x in resent} == {rfc3339(NOW + 60 + 240)}
        resolved = event("a", "resolved", at=clock.wall())
        sink.deliver(resolved)
        for _ in range(5):                       # 5 x 60 s = resolved_for
            clock.advance(60)
            sink.periodic(clock.wall())
            ends = {x["labels"]["alertname"]: x["endsAt"] for x in _alerts(rx.received()[-1])}
            if clock.wall() < resolved.at + 300:
                assert ends["a"] == rfc3339(resolved.at)
            assert ends["b"] == rfc3339(clock.wall() + 240)
        clock.advance(60)
        sink.periodic(clock.wall())
        assert [x["labels"]["alertname"] for x in _alerts(rx.received()[-1])] == ["b"]
        sink.close()


def test_a_restarted_sink_goes_on_re_sending(tmp_path: Path) -> None:
    state = str(tmp_path / "state" / "am.json")
    with Receiver() as rx:
        first = AlertmanagerSink("am", [rx.url], state_path=state, clock=FakeClock(wall=NOW))
        ev = event("still-firing", at=NOW)
        first.deliver(ev)
        first.close()
        again = AlertmanagerSink("am", [rx.url], state_path=state,
                                 clock=FakeClock(wall=NOW + 500))
        again.periodic(NOW + 500)
        (alert,) = _alerts(rx.received()[-1])
        assert alert["labels"]["alertname"] == "still-firing"
        assert alert["endsAt"] == rfc3339(NOW + 500 + 240)
        again.close()


def test_a_failed_delivery_changes_no_state(tmp_path: Path) -> None:
    sink = AlertmanagerSink("am", [f"http://127.0.0.1:{free_port()}"],
                            state_path=str(tmp_path / "am.json"), timeout=2)
    with pytest.raises(DeliveryError):
        sink.deliver(event())
    assert sink.active == {}
    assert not (tmp_path / "am.json").exists()


def test_one_live_member_of_a_cluster_is_enough(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    with Receiver() as rx:
        sink = AlertmanagerSink("am", [dead, rx.url], timeout=2)
        with structlog.testing.capture_logs() as logs:
            sink.deliver(event())
        assert len(rx.received()) == 1
        assert any(x["event"] == "alertmanager_peer_failed" for x in logs)
    with Receiver(lambda r: (400, {}, b"bad labels")) as r1, \
            Receiver(lambda r: (422, {}, b"bad")) as r2:
        refused = AlertmanagerSink("am", [r1.url, r2.url])
        with pytest.raises(PermanentDeliveryError, match="bad labels"):
            refused.deliver(event())
    with Receiver(lambda r: (400, {}, b"")) as r1:
        mixed = AlertmanagerSink("am", [r1.url, dead], timeout=2)
        with pytest.raises(DeliveryError) as info:
            mixed.deliver(event())
        assert not isinstance(info.value, PermanentDeliveryError)


def test_build_sink_places_the_state_under_state_dir(tmp_path: Path) -> None:
    cfg = AlertmanagerSinkConfig(name="am", kind="alertmanager",
                                 urls=("http://127.0.0.1:9/",))
    sink = build_sink(cfg, state_dir=str(tmp_path), host="h")
    assert isinstance(sink, AlertmanagerSink)
    assert sink.state_path == alertmanager_state_path(str(tmp_path), "am")
    assert sink.state_path == str(tmp_path / "alertmanager" / "am.json")
    assert sink.urls == ["http://127.0.0.1:9/api/v2/alerts"]
    ephemeral = build_sink(cfg, state_dir=str(tmp_path), host="h", ephemeral=True)
    assert ephemeral.state_path is None  # type: ignore[attr-defined]


# -- real Alertmanager -------------------------------------------------------------------


def _notifications(rx: Receiver, rule: str, status: str) -> list[dict[str, Any]]:
    out = []
    for r in rx.received():
        body = r.json()
        if body.get("status") == status and \
                any(a["labels"].get("alertname") == rule for a in body.get("alerts", [])):
            out.append(body)
    return out


@pytest.fixture
def hook() -> Iterator[Receiver]:
    with Receiver() as rx:
        yield rx


@pytest.mark.peer("alertmanager")
def test_alertmanager_notifies_firing_then_resolved(tmp_path: Path, hook: Receiver) -> None:
    with Alertmanager(tmp_path / "am", hook.url + "/notify") as am:
        sink = AlertmanagerSink("am", [am.url], resend=60.0)
        rule = f"pharos-am-{time.monotonic_ns()}"
        firing = event(rule, level="critical", labels={"mount": "/data"})
        sink.deliver(firing)
        got = wait_for(lambda: _notifications(hook, rule, "firing"), timeout=30)
        assert got, am.log()[-2000:]
        alert = got[0]["alerts"][0]
        assert alert["labels"] == {"alertname": rule, "severity": "critical",
                                   "host": "web1", "mount": "/data"}
        assert alert["annotations"]["summary"] == firing.summary
        assert alert["endsAt"] == "0001-01-01T00:00:00Z"
        (stored,) = [a for a in am.alerts() if a["labels"]["alertname"] == rule]
        assert abs(parse_rfc3339(stored["endsAt"]) - (time.time() + 240)) < 30
        sink.deliver(event(rule, "resolved", level="critical", labels={"mount": "/data"}))
        done = wait_for(lambda: _notifications(hook, rule, "resolved"), timeout=30)
        assert done, am.log()[-2000:]
        assert done[0]["alerts"][0]["status"] == "resolved"
        sink.close()


@pytest.mark.slow
@pytest.mark.peer("alertmanager")
def test_two_clustered_alertmanagers_notify_exactly_once(tmp_path: Path,
                                                         hook: Receiver) -> None:
    p1, p2 = free_port(), free_port()
    with Alertmanager(tmp_path / "am1", hook.url + "/notify", cluster_port=p1,
                      peers=(p2,)) as am1, \
            Alertmanager(tmp_path / "am2", hook.url + "/notify", cluster_port=p2,
                         peers=(p1,)) as am2:
        assert wait_for(lambda: am1.cluster_ready(2) and am2.cluster_ready(2),
                        timeout=30), am1.log()[-2000:]
        sink = AlertmanagerSink("am", [am1.url, am2.url])
        rule = f"pharos-ha-{time.monotonic_ns()}"
        # the member at position 1 would send a duplicate within peer_timeout of its
        # next flush: wait longer than that after each notification
        settle = PEER_TIMEOUT + CLUSTER_GROUP_INTERVAL + 2
        sink.deliver(event(rule))
        assert wait_for(lambda: _notifications(hook, rule, "firing"), timeout=30)
        time.sleep(settle)
        sink.deliver(event(rule, "resolved"))
        assert wait_for(lambda: _notifications(hook, rule, "resolved"), timeout=30)
        time.sleep(settle)
        assert len(_notifications(hook, rule, "firing")) == 1
        assert len(_notifications(hook, rule, "resolved")) == 1
        sink.close()
