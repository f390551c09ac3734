"""Webhook, Alertmanager and remote_write against receivers that misbehave on purpose.

A real socket server on 127.0.0.1 (peers.hostile) drips the body or the
headers, sends a 200 MiB body, or answers garbage. The promise: a POST is
over by its ``timeout`` whatever the receiver does (the connection is hung
up, not drained), at most a few KiB of an answer are read, at most one
request per client is ever left running, and every outcome is a
``DeliveryError`` or ``PermanentDeliveryError`` (fuzzed with Hypothesis).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from peers import wait_for
from peers.hostile import HUGE, HostileReceiver
from peers.sinktools import event

from pharosd.config.schema import Config
from pharosd.errors import DeliveryError, PermanentDeliveryError
from pharosd.httpclient import MAX_BODY
from pharosd.model import Sample
from pharosd.pipeline.config import RemoteWriteConfig, UplinkConfig
from pharosd.pipeline.worker import Pipeline
from pharosd.sinks.alertmanager import AlertmanagerSink
from pharosd.sinks.http import HttpPoster
from pharosd.sinks.webhook import WebhookSink
from pharosd.types import Duration
from pharosd.worker import WorkerContext

pytestmark = pytest.mark.timeout(120)

TIMEOUT = 1.0     # the sinks' `timeout`: the whole request must be over by then


def helpers_alive() -> int:
    return sum(1 for t in threading.enumerate() if t.name == "http-post" and t.is_alive())


def test_a_dripping_body_is_given_up_at_the_timeout_and_hung_up() -> None:
    with HostileReceiver("drip_body") as rx:
        sink = WebhookSink("hook", rx.url + "/hook", timeout=TIMEOUT)
        with pytest.raises(DeliveryError, match="whole request's deadline") as err:
            sink.deliver(event())
        assert not isinstance(err.value, PermanentDeliveryError)
        # The receiver was still dripping when deliver returned, and then saw the
        # connection go away: the body is not read to its end by a thread left behind.
        assert not rx.conns[0].complete
        assert rx.wait_gone(1)
        assert wait_for(lambda: helpers_alive() == 0, 10) is True
        sink.close()


def test_dripping_headers_leave_at_most_one_request_running() -> None:
    with HostileReceiver("drip_headers") as rx:
        sink = WebhookSink("hook", rx.url, timeout=TIMEOUT)
        with pytest.raises(DeliveryError, match="whole request's deadline"):
            sink.deliver(event())
        for _ in range(3):      # the first is still stuck in the headers: fail at once
            with pytest.raises(DeliveryError, match="still running"):
                sink.deliver(event())
        assert len(rx.conns) == 1 and helpers_alive() == 1
        rx.stop()               # the receiver goes away: the stuck request ends
        assert wait_for(lambda: helpers_alive() == 0, 10) is True
        sink.close()


@pytest.mark.parametrize(("status", "error"), [(500, DeliveryError),
                                               (400, PermanentDeliveryError)])
def test_a_200_mib_answer_is_read_only_to_a_few_kib(status: int, error: type) -> None:
    with HostileReceiver("huge_body", status=status) as rx:
        sink = WebhookSink("hook", rx.url, timeout=30.0)
        with pytest.raises(error, match=f"HTTP {status}: xxxx") as err:
            sink.deliver(event())
        assert len(str(err.value)) < 400          # an excerpt, not the body
        assert rx.wait_gone(1)                    # hung up, not drained
        sent = rx.conns[0].sent
        # What the receiver could write before noticing: our few KiB plus the
        # kernel's socket buffers, far from the 200 MiB it meant to send.
        assert sent < 32 * 1024 * 1024, sent
        assert sent < HUGE
        sink.close()


def test_alertmanager_sink_is_bounded_the_same_way() -> None:
    with HostileReceiver("drip_body") as dripping, \
            HostileReceiver("huge_body", status=503) as huge:
        sink = AlertmanagerSink("am", [dripping.url, huge.url], timeout=TIMEOUT)
        with pytest.raises(DeliveryError) as err:
            sink.deliver(event())
        message = str(err.value)
        assert "whole request's deadline" in message and "HTTP 503: xxx" in message
        assert dripping.wait_gone(1) and huge.wait_gone(1)
        sink.close()


def test_the_uplink_gives_up_on_a_dripping_receiver_and_keeps_the_samples(
        tmp_path: Path) -> None:
    with HostileReceiver("drip_body") as rx:
        cfg = Config(uplink=UplinkConfig(remote_write=(RemoteWriteConfig(
            url=rx.url + "/api/v1/write", timeout=Duration(TIMEOUT)),)))
        pipeline = Pipeline(cfg, state_dir=str(tmp_path), host="test")
        [worker] = pipeline.workers()
        ctx = WorkerContext()
        thread = threading.Thread(target=worker.run, args=(ctx,), daemon=True)
        thread.start()
        try:
            pipeline.offer([Sample("test.value", (), 1.0, 1_800_000_000.0)])

            def receiver() -> dict:
                return pipeline.status()["receivers"][0]

            assert wait_for(lambda: "deadline" in (receiver()["last_error"] or ""), 20)
            assert rx.wait_gone(1)
            assert not rx.conns[0].complete
            assert receiver()["retried"] >= 1 and receiver()["sent"] == 0
        finally:
            ctx.stop()
            thread.join(10)
            pipeline.close()


# -- fuzz: whatever a receiver answers, the sink classifies it --------------------------


@pytest.fixture(scope="module")
def scripted() -> Iterator[HostileReceiver]:
    with HostileReceiver("scripted") as rx:
        yield rx


_header_values = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7e), max_size=40)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(status=st.integers(min_value=200, max_value=999),
       body=st.one_of(st.binary(max_size=3 * MAX_BODY),
                      st.text(max_size=500).map(lambda t: t.encode())),
       retry_after=st.one_of(st.none(), _header_values,
                             st.integers(min_value=-5, max_value=10**12).map(str)))
def test_any_status_and_body_is_delivered_or_a_delivery_error(
        scripted: HostileReceiver, status: int, body: bytes, retry_after: str | None) -> None:
    scripted.mode = "scripted"
    scripted.status, scripted.body = status, body
    scripted.headers = {} if retry_after is None else {"Retry-After": retry_after}
    poster = HttpPoster(timeout=5.0)
    try:
        poster.post(scripted.url, b"{}", {"Content-Type": "application/json"}, 1.8e9)
    except PermanentDeliveryError as e:
        assert 400 <= status < 500 and f"HTTP {status}" in str(e)
    except DeliveryError as e:
        assert not 200 <= status < 300
        assert e.retry_after is None or e.retry_after >= 0
    else:
        assert 200 <= status < 300
    finally:
        poster.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(answer=st.one_of(
    st.binary(max_size=2000),
    st.builds(lambda head, rest: head + rest,
              st.sampled_from([b"HTTP/1.1 200 OK\r\n", b"HTTP/1.1 500 X\r\n", b"HTTP/1.0 ",
                               b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n",
                               b"HTTP/1.1 404 N\r\nTransfer-Encoding: chunked\r\n\r\n",
                               b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n\r\n"]),
              st.binary(max_size=500))))
def test_garbage_answers_are_delivery_errors_only(scripted: HostileReceiver,
                                                  answer: bytes) -> None:
    scripted.mode, scripted.body = "raw", answer
    poster = HttpPoster(timeout=5.0)
    try:
        poster.post(scripted.url, b"{}", {}, 1.8e9)
    except DeliveryError:
        pass         # retry or permanent: both are the sink's to handle
    finally:
        poster.close()
