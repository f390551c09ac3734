"""The webhook sink against a real HTTP(S) receiver on 127.0.0.1: bodies, auth,
HMAC (checked with the snippet from docs/sinks.md), TLS, retry classification."""

from __future__ import annotations

import json
import re
import ssl
import time
from collections.abc import Callable
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest
import trustme
from peers import free_port
from peers.receiver import HANG, Receiver, Request
from peers.sinktools import event

from pharosd import __version__
from pharosd.backoff import parse_retry_after
from pharosd.errors import DeliveryError, PermanentDeliveryError
from pharosd.sinks.config import WebhookSinkConfig
from pharosd.sinks.factory import build_sink
from pharosd.sinks.http import classify_response
from pharosd.sinks.webhook import WebhookSink, sign

DOCS = Path(__file__).resolve().parents[1] / "docs" / "sinks.md"


def docs_verify() -> Callable[..., bool]:
    """The receiver-side ``verify`` function exactly as docs/sinks.md shows it."""
    text = DOCS.read_text()
    m = re.search(r"<!-- hmac-verify -->\n```python\n(.*?)```", text, re.S)
    assert m, "docs/sinks.md lost its HMAC verification snippet"
    ns: dict[str, Any] = {}
    exec(compile(m.group(1), str(DOCS), "exec"), ns)
    return ns["verify"]  # type: ignore[no-any-return]


def deliver_one(sink: WebhookSink, ev: Any = None) -> Any:
    ev = ev or event()
    try:
        sink.deliver(ev)
    finally:
        sink.close()
    return ev


def test_pharos_body_and_headers() -> None:
    with Receiver() as rx:
        ev = deliver_one(WebhookSink("ops", rx.url + "/hook", headers={"X-Team": "db"}))
    (req,) = rx.received()
    assert req.path == "/hook"
    assert req.json() == ev.to_dict()
    assert req.headers["content-type"] == "application/json"
    assert req.headers["x-pharos-event-id"] == ev.id
    assert req.headers["user-agent"] == f"pharosd/{__version__}"
    assert req.headers["x-team"] == "db"
    assert "authorization" not in req.headers and "x-pharos-signature" not in req.headers


def test_alertmanager_body_is_the_webhook_v4_shape() -> None:
    with Receiver() as rx:
        sink = WebhookSink("ops", rx.url, fmt="alertmanager",
                           external_url="http://pharos.example", generator_url="http://g/")
        firing = event("disk-full", level="critical", labels={"mount": "/", "device": "sda1"})
        resolved = event("disk-full", "resolved", level="critical",
                         labels={"mount": "/", "device": "sda1"})
        deliver_one(sink, firing)
        sink.deliver(resolved)
        sink.close()
    body_f, body_r = (r.json() for r in rx.received())
    labels = {"alertname": "disk-full", "severity": "critical", "host": "web1",
              "mount": "/", "device": "sda1"}
    annotations = {"summary": firing.summary, "value": "93.5", "limit": "90"}
    assert body_f == {
        "version": "4", "groupKey": '{}:{alertname="disk-full"}', "truncatedAlerts": 0,
        "status": "firing", "receiver": "ops", "groupLabels": {"alertname": "disk-full"},
        "commonLabels": labels, "commonAnnotations": annotations,
        "externalURL": "http://pharos.example",
        "alerts": [{"status": "firing", "labels": labels, "annotations": annotations,
                    "startsAt": firing.to_dict()["started_at"],
                    "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://g/",
                    "fingerprint": firing.fingerprint}],
    }
    assert body_r["status"] == "resolved"
    assert body_r["alerts"][0]["status"] == "resolved"
    assert body_r["alerts"][0]["endsAt"] == resolved.to_dict()["at"]


def test_hmac_signature_verifies_with_the_documented_snippet() -> None:
    verify = docs_verify()
    with Receiver() as rx:
        deliver_one(WebhookSink("ops", rx.url, secret="s3cret"))
    (req,) = rx.received()
    ts, sig = req.headers["x-pharos-timestamp"], req.headers["x-pharos-signature"]
    assert abs(int(ts) - time.time()) < 60
    assert verify(b"s3cret", ts, sig, req.body)
    assert not verify(b"other", ts, sig, req.body)
    assert not verify(b"s3cret", ts, sig, req.body.replace(b"web1", b"web2"))
    assert not verify(b"s3cret", str(int(ts) - 1), sig, req.body)
    stale = str(int(time.time()) - 3600)
    assert not verify(b"s3cret", stale, sign("s3cret", int(stale), req.body), req.body)
    # and the signature is what the module says it is
    assert sig == sign("s3cret", int(ts), req.body)


def test_bearer_token_from_a_file_and_basic_auth(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("  tok-123\n")
    with Receiver() as rx:
        cfg = WebhookSinkConfig(name="ops", kind="webhook", url=rx.url,
                                token_file=str(token_file))
        deliver_one(build_sink(cfg, state_dir=str(tmp_path), host="h"))  # type: ignore[arg-type]
        basic = WebhookSinkConfig(name="b", kind="webhook", url=rx.url, username="u",
                                  password="p w")
        deliver_one(build_sink(basic, state_dir=str(tmp_path), host="h"))  # type: ignore[arg-type]
    bearer_req, basic_req = rx.received()
    assert bearer_req.headers["authorization"] == "Bearer tok-123"
    assert basic_req.headers["authorization"] == "Basic dTpwIHc="   # base64("u:p w")


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, str]:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(ctx)
    ca_file = tmp_path_factory.mktemp("tls") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return ctx, str(ca_file)


def test_tls_is_verified_by_default_and_ca_file_or_insecure_work(
        tls: tuple[ssl.SSLContext, str]) -> None:
    ctx, ca_file = tls
    with Receiver(ssl_context=ctx) as rx:
        assert rx.url.startswith("https://")
        with pytest.raises(DeliveryError) as info:
            deliver_one(WebhookSink("ops", rx.url, timeout=5))
        assert not isinstance(info.value, PermanentDeliveryError)   # fixable: retried
        assert "SSLError" in str(info.value)
        deliver_one(WebhookSink("ops", rx.url, ca_file=ca_file, timeout=5))
        deliver_one(WebhookSink("ops", rx.url, insecure=True, timeout=5))
    assert len(rx.received()) == 2


@pytest.mark.parametrize(("status", "permanent"), [
    (400, True), (401, True), (403, True), (404, True), (422, True),
    (408, False), (425, False), (429, False), (500, False), (502, False), (503, False),
    (302, False),
])
def test_status_classification(status: int, permanent: bool) -> None:
    with Receiver(lambda req: (status, {"Location": "/x"}, b"nope")) as rx:
        with pytest.raises(DeliveryError) as info:
            deliver_one(WebhookSink("ops", rx.url))
        assert isinstance(info.value, PermanentDeliveryError) is permanent
        assert f"HTTP {status}" in str(info.value)
    assert len(rx.received()) == 1            # no redirect followed, no retry inside


@pytest.mark.parametrize("status", [200, 201, 202, 204])
def test_any_2xx_is_delivered(status: int) -> None:
    with Receiver(lambda req: (status, {}, b"")) as rx:
        deliver_one(WebhookSink("ops", rx.url))
    assert len(rx.received()) == 1


def test_retry_after_is_passed_on_in_seconds_or_as_a_date() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after("120", now) == 120.0
    assert parse_retry_after(formatdate(now + 30, usegmt=True), now) == 30.0
    assert parse_retry_after(formatdate(now - 30, usegmt=True), now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None
    with pytest.raises(DeliveryError) as info:
        classify_response(503, b"", "7", now, "POST x")
    assert info.value.retry_after == 7.0
    with Receiver(lambda req: (429, {"Retry-After": "12"}, b"slow down")) as rx, \
            pytest.raises(DeliveryError) as info:
        deliver_one(WebhookSink("ops", rx.url))
    assert info.value.retry_after == 12.0
    assert "slow down" in str(info.value)


def test_errors_never_show_secrets() -> None:
    port = free_port()                       # nothing listens: connection refused
    sink = WebhookSink("ops", f"http://user:pa55word@127.0.0.1:{port}/h?key=qu3ry",
                       token="t0ken-value", secret="hm4c-secret",
                       headers={"X-Api-Key": "h3ader-secret"})
    with pytest.raises(DeliveryError) as info:
        deliver_one(sink)
    text = str(info.value)
    assert f"127.0.0.1:{port}" in text
    for secret in ("pa55word", "qu3ry", "t0ken-value", "hm4c-secret", "h3ader-secret"):
        assert secret not in text


def test_a_receiver_that_never_answers_times_out() -> None:
    with Receiver(lambda req: HANG) as rx:
        sink = WebhookSink("ops", rx.url, timeout=0.5)
        with pytest.raises(DeliveryError, match="Timeout"):
            deliver_one(sink)
        rx.stop()


def test_the_same_event_keeps_its_id_on_every_attempt() -> None:
    answers = [503, 503, 200]
    with Receiver(lambda req: (answers.pop(0), {}, b"")) as rx:
        sink = WebhookSink("ops", rx.url, secret="k")
        ev = event()
        for _ in range(2):
            with pytest.raises(DeliveryError):
                sink.deliver(ev)
        sink.deliver(ev)
        sink.close()
    reqs: list[Request] = rx.received()
    assert {r.json()["id"] for r in reqs} == {ev.id}
    assert {r.headers["x-pharos-event-id"] for r in reqs} == {ev.id}
    assert len({r.body for r in reqs}) == 1
    assert json.loads(reqs[0].body)["fingerprint"] == ev.fingerprint
