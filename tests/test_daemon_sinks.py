"""Whole-daemon checks of alert delivery (issue 3): a real ``pharosd run``
subprocess, its outbox, and real receivers on 127.0.0.1.

Each test writes a config whose threshold on ``uptime.seconds`` always
breaches, so an alert fires within a second or two; where a resolved event
is needed, a SIGHUP to a config with an unreachable limit resolves it.
The file sink is the reference: what it recorded is what every other sink
must deliver, with the same event ids.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from peers import free_port
from peers.alertmanager import Alertmanager
from peers.receiver import HANG, Receiver, Request
from peers.rsyslog import Rsyslog

from pharosd.control.client import query_status
from pharosd.control.protocol import SOCKET_NAME
from pharosd.model import parse_rfc3339
from tests.support.daemon import PharosProcess, wait_until

pytestmark = pytest.mark.timeout(240)

OUTAGE = 30.0           # seconds the webhook receiver of the outage test is down
RETRY = "{initial: 250ms, max: 2s}"


# -- helpers -------------------------------------------------------------------


def threshold(name: str, limit: float = 1) -> str:
    return f"  - {{name: {name}, metric: uptime.seconds, above: {limit!r}}}\n"


def config(tmp: Path, thresholds: str, sinks: str, *, soak: str = "1s") -> str:
    """A daemon config: uptime sampled every 250ms, a file sink first, then ``sinks``."""
    return (f"interval: 250ms\nsoak: {soak}\ncool: 1s\nstate_dir: {tmp}/state\n"
            f"statistics: [uptime]\nthresholds:\n{thresholds}"
            f"sinks:\n  - {{name: file, kind: file, path: {tmp}/alerts.jsonl}}\n{sinks}")


def webhook(name: str, url: str, *, timeout: str = "5s") -> str:
    return (f"  - {{name: {name}, kind: webhook, url: '{url}', timeout: {timeout}, "
            f"retry: {RETRY}}}\n")


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    """Everything a test starts; stopped in reverse order, also when the test fails."""
    with ExitStack() as s:
        yield s


def start(stack: ExitStack, tmp: Path, text: str) -> PharosProcess:
    d = PharosProcess(tmp, text)
    stack.callback(d.stop)
    return d


def json_lines(path: Path) -> list[dict[str, Any]]:
    """The complete lines of a JSON-lines file another process is appending to
    (a line still being written is left for the next look)."""
    if not path.exists():
        return []
    text = path.read_text(errors="replace")
    return [json.loads(line) for line in text[:text.rfind("\n") + 1].splitlines()
            if line.strip()]


def read_events(path: Path) -> list[dict[str, Any]]:
    return json_lines(path)


def by_fingerprint(events: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Event ids per alert, in the order given."""
    out: dict[str, list[str]] = {}
    for e in events:
        out.setdefault(e["fingerprint"], []).append(e["id"])
    return out


def sink_status(tmp: Path, name: str) -> dict[str, Any]:
    state = query_status(str(tmp / "run" / SOCKET_NAME), 5.0)
    (sink,) = [s for s in state["sinks"] if s["name"] == name]
    return dict(sink)


def log_lines(d: PharosProcess, event: str) -> list[str]:
    return [line for line in d.log().splitlines() if f"event={event} " in line + " "]


def delivered(rx: Receiver) -> list[dict[str, Any]]:
    """The bodies the receiver accepted (answered 2xx), in arrival order."""
    return [r.json() for r in rx.received() if 200 <= r.status < 300]


# -- 1. outage, restart, 500s: every event arrives, in order, same ids -----------


@pytest.mark.slow
def test_receiver_down_then_failing_gets_every_event_across_a_restart(tmp_path, stack):
    port = free_port()                    # nothing listens here during the outage
    url = f"http://127.0.0.1:{port}/hook"
    alerts = tmp_path / "alerts.jsonl"
    sinks = webhook("hook", url)
    both = threshold("steady") + threshold("passing")
    outage_started = time.monotonic()

    # First daemon: both alerts fire; the webhook cannot connect.
    d1 = start(stack, tmp_path, config(tmp_path, both, sinks))
    assert wait_until(lambda: len(read_events(alerts)) >= 2, 20), d1.log()
    assert d1.wait_log("alert_delivery_failed"), d1.log()
    d1.signal(signal.SIGTERM)
    assert d1.proc.wait(10) == 0, d1.log()

    # Second daemon on the same state_dir: it takes over the outbox, and a
    # reload resolves one alert while the receiver is still down.
    d2 = start(stack, tmp_path, config(tmp_path, both, sinks))
    assert d2.wait_log("outbox_pending"), d2.log()
    assert d2.notify.wait_for(lambda m: "READY=1" in m), d2.log()
    d2.write_config(config(tmp_path, threshold("steady") + threshold("passing", 1e12), sinks))
    d2.signal(signal.SIGHUP)
    assert wait_until(lambda: len(read_events(alerts)) >= 3, 20), d2.log()
    assert d2.wait_log("alert_delivery_failed"), d2.log()
    recorded = read_events(alerts)
    # (the two alerts fire in the same evaluation, in either order)
    assert sorted((e["rule"], e["status"]) for e in recorded[:2]) == [
        ("passing", "firing"), ("steady", "firing")], recorded
    assert (recorded[2]["rule"], recorded[2]["status"]) == ("passing", "resolved"), recorded

    # The outage ends: two 500s, then 200s.
    remaining = OUTAGE - (time.monotonic() - outage_started)
    if remaining > 0:
        time.sleep(remaining)
    answers = iter([500, 500])
    lock = threading.Lock()

    def respond(_: Request) -> tuple[int, dict[str, str], bytes]:
        with lock:
            return next(answers, 200), {}, b"try again later"

    rx = stack.enter_context(Receiver(respond, port=port))
    ids = {e["id"] for e in recorded}
    assert rx.wait_for(lambda _: {b["id"] for b in delivered(rx)} >= ids, 60), d2.log()

    reqs = rx.received()
    print(f"webhook requests after the outage: {[(r.json()['id'][:8], r.status) for r in reqs]}")
    assert [r.status for r in reqs[:2]] == [500, 500]
    # The events that got a 500 were retried and delivered; each event once.
    assert {r.json()["id"] for r in reqs[:2]} <= {b["id"] for b in delivered(rx)}
    assert sorted(b["id"] for b in delivered(rx)) == sorted(ids)
    # Same events, same ids, and in order per alert.
    assert {b["id"]: b for b in delivered(rx)} == {e["id"]: e for e in recorded}
    assert by_fingerprint(delivered(rx)) == by_fingerprint(recorded)
    assert all(r.headers["x-pharos-event-id"] == r.json()["id"] for r in reqs)
    assert wait_until(lambda: sink_status(tmp_path, "hook")["backlog"] == 0, 10)
    status = sink_status(tmp_path, "hook")
    assert status["delivered"] == 3 and status["dropped"] == {}, status


# -- 2. a 400 is not retried; the daemon logs it and goes on ------------------------


def test_client_error_is_not_retried_and_delivery_goes_on(tmp_path, stack):
    def respond(req: Request) -> tuple[int, dict[str, str], bytes]:
        if req.json()["status"] == "firing":
            return 400, {}, b"rejected: unknown team 'ops'"
        return 200, {}, b""

    rx = stack.enter_context(Receiver(respond))
    alerts = tmp_path / "alerts.jsonl"
    sinks = webhook("hook", rx.url + "/hook")
    d = start(stack, tmp_path, config(tmp_path, threshold("steady"), sinks))
    assert wait_until(lambda: read_events(alerts), 20), d.log()
    assert d.wait_log("alert_delivery_failed_permanently"), d.log()
    (line,) = log_lines(d, "alert_delivery_failed_permanently")
    assert "sink=hook" in line and "HTTP 400" in line, line
    assert "rejected: unknown team" in line, line

    # It goes on: the alert's next event is delivered. Had the firing event been
    # kept for a retry, it would still be ahead of this one (order per alert).
    d.write_config(config(tmp_path, threshold("steady", 1e12), sinks))
    d.signal(signal.SIGHUP)
    assert rx.wait_for(lambda _: delivered(rx), 30), d.log()
    # (the file sink is another worker: it may write the event a moment later)
    assert wait_until(lambda: len(read_events(alerts)) == 2, 10), d.log()
    firing, resolved = read_events(alerts)
    assert [b["id"] for b in delivered(rx)] == [resolved["id"]]
    assert [r.json()["id"] for r in rx.received()] == [firing["id"], resolved["id"]]
    # (counted once the answer reached the daemon, a moment after the receiver saw it)
    assert wait_until(lambda: sink_status(tmp_path, "hook")["delivered"] == 1, 10)
    status = sink_status(tmp_path, "hook")
    assert status["dropped"] == {"permanent": 1} and status["delivered"] == 1, status
    assert d.proc.poll() is None


# -- 3. a receiver that never answers does not delay the file sink --------------------


def test_hanging_receiver_does_not_delay_the_file_sink(tmp_path, stack):
    rx = stack.enter_context(Receiver(lambda _: HANG))
    alerts = tmp_path / "alerts.jsonl"
    sinks = webhook("hook", rx.url + "/hook", timeout="30s")
    d = start(stack, tmp_path, config(tmp_path, threshold("steady"), sinks, soak="0s"))
    # The webhook's worker is now stuck in its first request.
    assert rx.wait_for(lambda reqs: reqs, 20), d.log()
    hung_at = rx.received()[0].at

    # A new alert while it hangs: the file sink must record it anyway.
    d.write_config(config(tmp_path, threshold("steady") + threshold("late"), sinks, soak="0s"))
    d.signal(signal.SIGHUP)

    def late() -> list[dict[str, Any]]:
        return [e for e in read_events(alerts) if e["rule"] == "late"]

    seen = wait_until(late, 20)
    seen_wall, seen_mono = time.time(), time.monotonic()
    requests_then = rx.received()
    failures_then = log_lines(d, "alert_delivery_failed")
    assert seen, d.log()
    # soak is 0s: the alert fires at its first breach, and started_at stamps it
    delay = seen_wall - parse_rfc3339(seen[0]["started_at"])
    print(f"file sink: first breach of 'late' -> file event seen by the test: {delay:.3f}s; "
          f"the webhook request had been hanging for {seen_mono - hung_at:.3f}s")
    # The webhook request was still open: one request, unanswered, and the sink
    # has not yet seen it fail (its timeout is 30s).
    assert len(requests_then) == 1 and requests_then[0].status == HANG[0], requests_then
    assert requests_then[0].json()["rule"] == "steady"
    assert failures_then == [], failures_then


# -- 4. kill -9 with events in the outbox ---------------------------------------------


def test_events_in_the_outbox_survive_kill_9(tmp_path, stack):
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"
    alerts = tmp_path / "alerts.jsonl"
    text = config(tmp_path, threshold("steady") + threshold("other"), webhook("hook", url))
    d1 = start(stack, tmp_path, text)
    assert wait_until(lambda: len(read_events(alerts)) >= 2, 20), d1.log()
    before = read_events(alerts)
    # Both events are queued for the webhook, and delivery has failed at least once.
    def tried() -> bool:
        failed = "\n".join(log_lines(d1, "alert_delivery_failed"))
        return all(f"event_id={e['id']}" in failed for e in before)

    assert wait_until(tried, 20), d1.log()
    status = sink_status(tmp_path, "hook")
    assert status["backlog"] == 2 and status["outbox"] == "ok", status
    d1.signal(signal.SIGKILL)
    assert d1.proc.wait(10) == -signal.SIGKILL

    rx = stack.enter_context(Receiver(port=port))
    d2 = start(stack, tmp_path, text)
    ids = {e["id"] for e in before}
    assert rx.wait_for(lambda _: {b["id"] for b in delivered(rx)} >= ids, 30), d2.log()
    assert d2.wait_log("outbox_pending"), d2.log()
    got = {b["id"]: b for b in delivered(rx)}
    assert {i: got[i] for i in ids} == {e["id"]: e for e in before}
    # Nothing the file sink did not record either. (The alert state is saved
    # every 10s, so a daemon killed sooner fires its alerts again after the
    # start, with new ids; those go to both sinks, each at its own pace.)
    assert wait_until(lambda: set(got) <= {e["id"] for e in read_events(alerts)}, 10), (
        got, read_events(alerts))
    refired = [e for e in read_events(alerts) if e["id"] not in ids]
    print(f"events fired again after the kill -9 and start: {len(refired)}")


# -- 5. pharosd test-alert ------------------------------------------------------------


def test_alert_command(tmp_path, stack):
    good = stack.enter_context(Receiver())
    bad = stack.enter_context(Receiver(lambda _: (500, {}, b"upstream exploded")))
    alerts = tmp_path / "alerts.jsonl"
    cfg = tmp_path / "pharos.yaml"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHAROS")}

    def test_alert(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "pharosd", "test-alert", "-c", str(cfg),
                               *args], capture_output=True, text=True, timeout=60, env=env,
                              cwd=str(tmp_path))

    cfg.write_text(config(tmp_path, threshold("steady"), webhook("good", good.url + "/hook")))
    r = test_alert()
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert r.stdout.splitlines() == ["file: ok", "good: ok"], (r.stdout, r.stderr)
    assert [(e["rule"], e["status"]) for e in read_events(alerts)] == [
        ("pharos-test-alert", "firing"), ("pharos-test-alert", "resolved")]
    bodies = [req.json() for req in good.received()]
    assert [(b["rule"], b["status"], b["labels"]["sink"]) for b in bodies] == [
        ("pharos-test-alert", "firing", "good"), ("pharos-test-alert", "resolved", "good")]

    cfg.write_text(config(tmp_path, threshold("steady"),
                          webhook("good", good.url + "/hook") + webhook("bad", bad.url)))
    r = test_alert("--sink", "bad")
    assert r.returncode == 1, (r.stdout, r.stderr)
    (line,) = r.stdout.splitlines()
    assert line.startswith("bad: failed: ") and "HTTP 500" in line, line
    assert "upstream exploded" in line, line
    assert len(good.received()) == 2 and len(bad.received()) == 1

    r = test_alert("--sink", "nosuch")
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "nosuch" in r.stdout + r.stderr
    assert len(good.received()) == 2 and len(bad.received()) == 1


# -- 6. real rsyslogd and Alertmanager --------------------------------------------------


@pytest.mark.peer("rsyslog")
def test_syslog_sink_to_rsyslogd_over_udp(tmp_path, stack):
    rsyslog = stack.enter_context(Rsyslog(tmp_path / "rsyslog"))
    sinks = (f"  - {{name: syslog, kind: syslog, transport: udp, host: 127.0.0.1, "
             f"port: {rsyslog.udp_port}}}\n")
    alerts = tmp_path / "alerts.jsonl"
    d = start(stack, tmp_path, config(tmp_path, threshold("steady"), sinks))
    assert wait_until(lambda: read_events(alerts), 20), d.log()
    (event,) = read_events(alerts)

    def ours() -> list[dict[str, Any]]:
        return [m for m in json_lines(rsyslog.output) if m.get("app") == "pharosd"]

    assert wait_until(ours, 20), (json_lines(rsyslog.output), d.log())
    (msg,) = ours()
    assert msg["protocol"] == "1" and msg["msgid"] == "ALERT", msg
    assert msg["facility"] == "daemon" and msg["severity"] == "warning", msg
    assert msg["procid"] == str(d.proc.pid), msg
    sd = msg["sd"]
    assert sd.startswith("[pharos@32473 ") and sd.endswith("]"), sd
    for key, value in [("rule", "steady"), ("status", "firing"), ("level", "warning"),
                       ("limit", "1"), ("fingerprint", event["fingerprint"]),
                       ("id", event["id"])]:
        assert f'{key}="{value}"' in sd, (key, sd)
    assert msg["msg"].startswith("steady firing (warning): "), msg


@pytest.mark.peer("alertmanager")
def test_alertmanager_sink_to_a_real_alertmanager(tmp_path, stack):
    hook = stack.enter_context(Receiver())
    am = stack.enter_context(Alertmanager(tmp_path / "am", hook.url + "/am"))
    sinks = f"  - {{name: am, kind: alertmanager, urls: ['{am.url}'], retry: {RETRY}}}\n"
    alerts = tmp_path / "alerts.jsonl"
    d = start(stack, tmp_path, config(tmp_path, threshold("steady"), sinks))
    assert wait_until(lambda: read_events(alerts), 20), d.log()
    (event,) = read_events(alerts)

    def notified() -> list[dict[str, Any]]:
        return [a for r in hook.received() for a in r.json().get("alerts", [])
                if r.json().get("status") == "firing"]

    assert hook.wait_for(lambda _: notified(), 30), (am.log()[-2000:], d.log())
    (alert,) = notified()
    assert alert["status"] == "firing"
    labels = alert["labels"]
    assert labels["alertname"] == "steady" and labels["severity"] == "warning", labels
    assert labels["host"] == event["host"], labels
    assert alert["annotations"]["summary"] == event["summary"], alert
    assert alert["annotations"]["limit"] == "1", alert
