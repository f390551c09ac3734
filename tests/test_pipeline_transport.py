"""The uplink's HTTP transport against a scripted receiver on 127.0.0.1, and the launchers."""

from __future__ import annotations

import threading
from email.utils import formatdate
from typing import Any

import pytest
import requests
from peers import free_port
from peers.receiver import Receiver, Request

from pharosd.clock import FakeClock
from pharosd.pipeline.config import RemoteWriteConfig
from pharosd.pipeline.receiver import ReceiverSettings, resolve_settings
from pharosd.pipeline.transport import HttpTransport, InlineLauncher, Reply, ThreadLauncher

pytestmark = pytest.mark.timeout(60)


def settings(url: str, **kw: Any) -> ReceiverSettings:
    return resolve_settings(RemoteWriteConfig(url=url, **kw), index=0, host="h", capacity=100)


def test_http_transport_posts_and_reads_the_answer() -> None:
    clock = FakeClock(wall=1_700_000_000.0)
    answers = iter([
        (204, {}, b"ignored"),
        (429, {"Retry-After": "3"}, b"slow down"),
        (503, {"Retry-After": formatdate(clock.wall() + 40, usegmt=True)}, b"x" * 5000),
    ])

    def respond(r: Request) -> tuple[int, dict[str, str], bytes]:
        return next(answers)

    with Receiver(respond) as rec:
        t = HttpTransport(clock)
        s = settings(rec.url + "/api/v1/write", headers={"X-Scope-OrgID": "t1"})
        try:
            assert t.post(s, b"one") == Reply(204, "", None)
            assert t.post(s, b"two") == Reply(429, "slow down", 3.0)
            third = t.post(s, b"three")
        finally:
            t.close()
        assert (third.status, len(third.body), third.retry_after) == (503, 2048, 40.0)
        reqs = rec.received()
        assert [r.body for r in reqs] == [b"one", b"two", b"three"]
        assert reqs[0].headers["x-scope-orgid"] == "t1"
        assert reqs[0].headers["content-encoding"] == "snappy"


def test_no_answer_raises_and_a_new_url_gets_a_new_session() -> None:
    t = HttpTransport()
    try:
        with pytest.raises(requests.exceptions.ConnectionError):
            t.post(settings(f"http://127.0.0.1:{free_port()}/w", timeout=2.0), b"x")
        with Receiver() as rec:
            assert t.post(settings(rec.url + "/w"), b"y").status == 200
            assert rec.received()[0].body == b"y"
    finally:
        t.close()


def test_launchers_run_the_job_inline_or_on_a_daemon_thread() -> None:
    ran: list[str] = []
    InlineLauncher().launch(lambda: ran.append(threading.current_thread().name))
    assert ran == [threading.current_thread().name]
    done = threading.Event()

    def job() -> None:
        ran.append(threading.current_thread().name)
        assert threading.current_thread().daemon
        done.set()

    ThreadLauncher().launch(job)
    assert done.wait(5)
    assert ran[-1] == "uplink-request"
