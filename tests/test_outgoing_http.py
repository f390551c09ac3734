"""The one rule for outgoing HTTP (sinks, uplink, http probes): the environment
chooses the route (HTTPS_PROXY/HTTP_PROXY/ALL_PROXY, NO_PROXY; loopback is never
proxied), the config chooses the trust (REQUESTS_CA_BUNDLE and .netrc never apply).

The proxy is a real socket server on 127.0.0.1 that answers every request
itself and records its request line; the proxied host names end in
``.invalid``, so a request that did not go through the proxy cannot succeed.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trustme
from peers.hostile import HostileReceiver
from peers.receiver import Receiver
from peers.sinktools import event

from pharosd.errors import DeliveryError
from pharosd.httpclient import proxies_for
from pharosd.probes.config import HttpProbeConfig
from pharosd.probes.http import HttpProbe
from pharosd.sinks.webhook import WebhookSink
from pharosd.types import Duration

pytestmark = pytest.mark.timeout(60)

PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "requests_ca_bundle",
              "curl_ca_bundle")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


@pytest.mark.parametrize(("url", "env", "expected"), [
    ("https://am.example:9093/x", {"HTTPS_PROXY": "http://p:3128"}, {"https": "http://p:3128"}),
    ("http://am.example/x", {"http_proxy": "http://lower:1", "HTTP_PROXY": "http://upper:2"},
     {"http": "http://lower:1"}),
    ("http://am.example/x", {"HTTPS_PROXY": "http://p:3128"}, {}),
    ("http://am.example/x", {"ALL_PROXY": "socks5://p:1080"}, {"http": "socks5://p:1080"}),
    ("http://127.0.0.1:9/x", {"HTTP_PROXY": "http://p:3128"}, {}),
    ("http://127.8.9.10:9/x", {"HTTP_PROXY": "http://p:3128"}, {}),
    ("http://[::1]:9/x", {"HTTP_PROXY": "http://p:3128"}, {}),
    ("http://localhost:9/x", {"HTTP_PROXY": "http://p:3128"}, {}),
    ("http://am.example/x", {"HTTP_PROXY": "http://p:1", "NO_PROXY": "other, .example"}, {}),
    ("http://am.example/x", {"HTTP_PROXY": "http://p:1", "NO_PROXY": "am.example"}, {}),
    ("http://xam.example/x", {"HTTP_PROXY": "http://p:1", "NO_PROXY": "am.example"},
     {"http": "http://p:1"}),
    ("http://10.1.2.3/x", {"HTTP_PROXY": "http://p:1", "NO_PROXY": "10.0.0.0/8"}, {}),
    ("http://11.1.2.3/x", {"HTTP_PROXY": "http://p:1", "NO_PROXY": "10.0.0.0/8"},
     {"http": "http://p:1"}),
    ("http://am.example:8080/x", {"HTTP_PROXY": "http://p:1", "NO_PROXY": "am.example:9090"},
     {"http": "http://p:1"}),
    ("http://am.example:9090/x", {"HTTP_PROXY": "http://p:1", "NO_PROXY": "am.example:9090"},
     {}),
    ("http://am.example/x", {"HTTP_PROXY": "http://p:1", "NO_PROXY": "*"}, {}),
    ("http://am.example:99999/x", {"HTTP_PROXY": "http://p:1"}, {}),     # bad port: direct
])
def test_proxies_for(url: str, env: dict[str, str], expected: dict[str, str]) -> None:
    assert proxies_for(url, env) == expected


def test_sinks_and_http_probes_go_through_the_proxy_from_the_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    with HostileReceiver("scripted", status=200, body=b"proxied ok") as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        sink = WebhookSink("hook", "http://hook.pharos-test.invalid/alerts", timeout=5.0)
        sink.deliver(event())
        sink.close()
        cfg = HttpProbeConfig(name="api", kind="http", url="http://api.pharos-test.invalid/up",
                              timeout=Duration(5.0))
        result = HttpProbe(cfg, 10.0).check(1.8e9)
        assert dict(result.values)["up"] == 1.0, result.text
        assert [c.request_line for c in proxy.conns] == [
            "POST http://hook.pharos-test.invalid/alerts HTTP/1.1",
            "GET http://api.pharos-test.invalid/up HTTP/1.1",
        ]


def test_loopback_is_never_proxied(monkeypatch: pytest.MonkeyPatch) -> None:
    with HostileReceiver("scripted", status=502) as proxy, Receiver() as target:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        sink = WebhookSink("hook", target.url + "/alerts", timeout=5.0)
        sink.deliver(event())
        sink.close()
        cfg = HttpProbeConfig(name="api", kind="http", url=target.url + "/up",
                              timeout=Duration(5.0), method="POST")
        result = HttpProbe(cfg, 10.0).check(1.8e9)
        assert dict(result.values)["status_code"] == 200.0     # the target's, not a 502
        assert proxy.conns == [] and len(target.requests) == 2


def test_a_ca_bundle_from_the_environment_is_not_trusted(monkeypatch: pytest.MonkeyPatch,
                                                          tmp_path: Path) -> None:
    ca = trustme.CA()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(ctx)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca_file))
    with Receiver(ssl_context=ctx) as rx:
        sink = WebhookSink("hook", rx.url + "/alerts", timeout=5.0)
        with pytest.raises(DeliveryError, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify"):
            sink.deliver(event())
        sink.close()
        trusted = WebhookSink("hook", rx.url + "/alerts", timeout=5.0, ca_file=str(ca_file))
        trusted.deliver(event())           # the config's ca_file is what counts
        trusted.close()
        assert len(rx.requests) == 1
