"""Probe configs through the real YAML loader: every kind, every key, positioned errors."""

from __future__ import annotations

import pytest

from pharosd.config.hints import check_schema
from pharosd.config.loader import parse_config
from pharosd.config.schema import Config
from pharosd.errors import ConfigError
from pharosd.probes.config import (
    ExecProbeConfig,
    FileProbeConfig,
    HttpProbeConfig,
    ProcessProbeConfig,
    TcpProbeConfig,
)
from pharosd.probes.factory import build_probe, status_thresholds
from pharosd.types import Duration, FrozenDict, Size

FULL = r"""
interval: 15s
probes:
  - name: ntp
    kind: exec
    command: [/usr/lib/nagios/plugins/check_ntp_time, -H, ntp.example]
    every: 1m
    timeout: 5s
    env: {TZ: UTC}
    unknown: critical
    soak: 0s
    cool: 5m
  - name: api
    kind: http
    url: "https://127.0.0.1:8443/health"
    method: POST
    headers: {Authorization: "Bearer ${API_TOKEN}"}
    body: '{"ping": 1}'
    status: [200, 204]
    body_regex: '"ok": *true'
    follow_redirects: true
    ca_file: /etc/ssl/internal-ca.pem
    level: warning
  - {name: redis, kind: tcp, port: 6379, host: 127.0.0.2, send: "PING\r\n", expect: "+PONG",
     timeout: 2s}
  - {name: workers, kind: process, cmdline: "celery .*worker", user: app, min_count: 4,
     max_count: 8}
  - {name: nginx, kind: process, pidfile: /run/nginx.pid}
  - {name: backup, kind: file, path: "/var/backups/db-*.sql.gz", max_age: 26h, min_size: 1MiB}
"""


def test_the_schema_uses_only_the_loader_vocabulary():
    check_schema(Config)


def test_every_kind_and_key_loads():
    cfg = parse_config(FULL, environ={"API_TOKEN": "s3cret"})
    ntp, api, redis, workers, nginx, backup = cfg.probes
    assert ntp == ExecProbeConfig(
        name="ntp", kind="exec",
        command=("/usr/lib/nagios/plugins/check_ntp_time", "-H", "ntp.example"),
        every=Duration(60.0), timeout=Duration(5.0), env=FrozenDict(TZ="UTC"),
        unknown="critical", soak=Duration(0.0), cool=Duration(300.0))
    assert api == HttpProbeConfig(
        name="api", kind="http", url="https://127.0.0.1:8443/health", method="POST",
        headers=FrozenDict(Authorization="Bearer s3cret"), body='{"ping": 1}', status=(200, 204),
        body_regex='"ok": *true', follow_redirects=True, ca_file="/etc/ssl/internal-ca.pem",
        level="warning")
    assert redis == TcpProbeConfig(name="redis", kind="tcp", port=6379, host="127.0.0.2",
                                   send="PING\r\n", expect="+PONG", timeout=Duration(2.0))
    assert workers == ProcessProbeConfig(name="workers", kind="process",
                                         cmdline="celery .*worker", user="app", min_count=4,
                                         max_count=8)
    assert nginx == ProcessProbeConfig(name="nginx", kind="process", pidfile="/run/nginx.pid")
    assert backup == FileProbeConfig(name="backup", kind="file", path="/var/backups/db-*.sql.gz",
                                     max_age=Duration(93600.0), min_size=Size(1024 * 1024))
    probes = [build_probe(p, cfg.interval) for p in cfg.probes]
    assert [p.every for p in probes] == [60.0, 15.0, 15.0, 15.0, 15.0, 15.0]
    assert [t.name for t in status_thresholds(cfg.probes)] == [
        "probe:ntp", "probe:api", "probe:redis", "probe:workers", "probe:nginx", "probe:backup"]


@pytest.mark.parametrize(("yaml_probe", "where", "message"), [
    ("{name: 'a b', kind: file, path: /x}", "probes[0].name", "expected a probe name"),
    ("{name: x, kind: exec, command: [check_load]}", "probes[0].command", "absolute path"),
    ("{name: x, kind: exec, command: []}", "probes[0].command", "non-empty list"),
    ("{name: x, kind: http, url: 'ftp://x/'}", "probes[0].url", "http:// or https://"),
    ("{name: x, kind: http, url: 'http://x/', body_regex: '('}", "probes[0].body_regex",
     "regular expression"),
    ("{name: x, kind: tcp, port: 0}", "probes[0].port", "between 1 and 65535"),
    ("{name: x, kind: process}", "probes[0]", "at least one of process, cmdline"),
    ("{name: x, kind: process, pidfile: /p, user: root}", "probes[0].pidfile", "alone"),
    ("{name: x, kind: file, path: relative}", "probes[0].path", "absolute path"),
    ("{name: x, kind: file, path: /x, unknown: maybe}", "probes[0].unknown", "maybe"),
    ("{name: x, kind: ping}", "probes[0].kind", "ping"),
])
def test_errors_name_the_key(yaml_probe, where, message):
    with pytest.raises(ConfigError) as info:
        parse_config(f"probes:\n  - {yaml_probe}\n")
    text = str(info.value)
    assert f": {where}: " in text and message in text, text
    assert text.startswith("<string>:2:")
