"""Sink config through the real loader: every kind, defaults, cross-field rules,
secret files read at build time."""

from __future__ import annotations

from pathlib import Path

import pytest

from pharosd.config.loader import parse_config
from pharosd.errors import ConfigError
from pharosd.sinks.config import (
    AlertmanagerSinkConfig,
    FileSinkConfig,
    RetryConfig,
    SyslogSinkConfig,
    WebhookSinkConfig,
)
from pharosd.sinks.factory import build_sink, read_secret
from pharosd.sinks.syslog import SyslogSink
from pharosd.sinks.webhook import WebhookSink

FULL = """
sinks:
  - {name: local, kind: file, path: /tmp/x.jsonl, max_size: 1MiB, keep: 3, fsync: false}
  - {name: journal, kind: log, retry: {initial: 2s, max: 1m, max_age: 1h}, max_backlog: 50}
  - {name: sys, kind: syslog, transport: tcp, host: 127.0.0.1, port: 5514,
     format: rfc3164, facility: local2, hostname: web1, timeout: 2s}
  - name: hook
    kind: webhook
    url: https://hooks.example/x
    format: alertmanager
    headers: {X-Team: db}
    secret: ${HOOK_SECRET}
    username: u
    password_file: /run/pw
    ca_file: /etc/ca.pem
    timeout: 3s
    external_url: http://pharos
  - {name: am, kind: alertmanager, urls: [http://a:9093, http://b:9093], resend: 30s,
     resolved_for: 10m, labels: {team: ops}, token: abc}
"""


def test_every_kind_loads_with_its_keys() -> None:
    cfg = parse_config(FULL, "pharos.yaml", {"HOOK_SECRET": "s3"})
    local, journal, sys_, hook, am = cfg.sinks
    assert isinstance(local, FileSinkConfig)
    assert (local.kind, local.max_size, local.keep, local.fsync) == ("file", 1048576, 3, False)
    assert journal.retry == RetryConfig(initial=2.0, max=60.0, max_age=3600.0)  # type: ignore[arg-type]
    assert journal.max_backlog == 50
    assert isinstance(sys_, SyslogSinkConfig)
    assert (sys_.transport, sys_.port, sys_.format, sys_.facility, sys_.timeout) == \
        ("tcp", 5514, "rfc3164", "local2", 2.0)
    assert isinstance(hook, WebhookSinkConfig)
    assert (hook.secret, hook.password_file, hook.format, dict(hook.headers)) == \
        ("s3", "/run/pw", "alertmanager", {"X-Team": "db"})
    assert isinstance(am, AlertmanagerSinkConfig)
    assert (am.urls, am.resend, am.resolved_for, dict(am.labels)) == \
        (("http://a:9093", "http://b:9093"), 30.0, 600.0, {"team": "ops"})


def test_defaults() -> None:
    cfg = parse_config("sinks:\n  - {name: s, kind: syslog}\n"
                       "  - {name: w, kind: webhook, url: 'http://x'}\n")
    s, w = cfg.sinks
    assert isinstance(s, SyslogSinkConfig) and isinstance(w, WebhookSinkConfig)
    assert (s.transport, s.socket, s.format, s.facility) == \
        ("unix", "/dev/log", "rfc5424", "daemon")
    assert (w.format, w.insecure, w.timeout) == ("pharos", False, 10.0)
    assert w.retry == RetryConfig(initial=1.0, max=300.0, max_age=86400.0)  # type: ignore[arg-type]


@pytest.mark.parametrize(("yaml", "message"), [
    ("{name: s, kind: syslog, transport: udp}", "sinks[0].host: expected a host"),
    ("{name: w, kind: webhook, url: 'ftp://x'}", "expected an http:// or https:// URL"),
    ("{name: w, kind: webhook, url: 'http://x', token: a, token_file: /t}",
     "expected either token or token_file"),
    ("{name: w, kind: webhook, url: 'http://x', secret: a, secret_file: /t}",
     "expected either secret or secret_file"),
    ("{name: w, kind: webhook, url: 'http://x', password: p}", "expected a username"),
    ("{name: w, kind: webhook, url: 'http://x', username: u, token: t}",
     "bearer token or basic auth"),
    ("{name: a, kind: alertmanager, urls: []}", "expected at least one URL"),
    ("{name: a, kind: alertmanager, urls: ['http://a'], resend: 0s}", "sinks[0].resend"),
    ("{name: l, kind: log, retry: {initial: 10s, max: 1s}}", "sinks[0].retry.max"),
    ("{name: s, kind: syslog, facility: local9}", "sinks[0].facility"),
    ("{name: f, kind: file, bogus: 1}", "bogus"),
])
def test_bad_sink_config_is_positioned(yaml: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(f"sinks:\n  - {yaml}\n", "pharos.yaml")
    assert message in str(info.value)
    assert "pharos.yaml:2:" in str(info.value)


def test_secret_files_are_read_and_stripped_at_build_time(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("\n hmac-key \n")
    cfg = WebhookSinkConfig(name="w", kind="webhook", url="http://x",
                            secret_file=str(tmp_path / "secret"))
    assert read_secret(cfg, "secret") == "hmac-key"
    sink = build_sink(cfg, state_dir=str(tmp_path), host="h")
    assert isinstance(sink, WebhookSink)


def test_an_unreadable_secret_file_is_a_config_error_without_the_secret(tmp_path: Path) -> None:
    cfg = WebhookSinkConfig(name="w", kind="webhook", url="http://x",
                            token_file=str(tmp_path / "missing"))
    with pytest.raises(ConfigError) as info:
        build_sink(cfg, state_dir=str(tmp_path), host="h")
    assert "sinks[w].token_file" in str(info.value)
    assert "No such file" in str(info.value)


def test_syslog_hostname_defaults_to_the_daemon_host(tmp_path: Path) -> None:
    cfg = parse_config("sinks:\n  - {name: s, kind: syslog}\n").sinks[0]
    sink = build_sink(cfg, state_dir=str(tmp_path), host="web7")
    assert isinstance(sink, SyslogSink) and sink.hostname == "web7"
