"""The uplink, buffer and spill keys of pharos.yaml: loading, defaults, checks, secrets."""

from __future__ import annotations

import base64

import pytest

from pharosd.config.hints import check_schema
from pharosd.config.loader import parse_config
from pharosd.errors import ConfigError
from pharosd.pipeline.config import (
    BufferConfig,
    RemoteWriteConfig,
    SpillConfig,
    TLSConfig,
    UplinkConfig,
)
from pharosd.pipeline.receiver import resolve_settings

FULL = """
buffer: {capacity: 50000}
spill: {path: /tmp/x/spill.db, max_size: 64MiB, max_age: 2h}
uplink:
  stale_markers: true
  stale_floor: 15s
  remote_write:
    - url: https://metrics.example:8443/api/v1/write
      name: central
      headers: {X-Scope-OrgID: tenant-1}
      basic_auth: {username: pharos, password: "${RW_PASSWORD}"}
      tls: {ca_file: /etc/ssl/ca.pem, cert_file: /etc/pharos/c.pem, key_file: /etc/pharos/c.key}
      timeout: 5s
      external_labels: {dc: fra1, job: node}
      batch: 500
      flush: 2s
      min_backoff: 500ms
      max_backoff: 1m
      max_pending: 10000
    - url: http://127.0.0.1:8428/api/v1/write
      bearer_token_file: /run/secrets/vm
"""


def test_check_schema_accepts_the_pipeline_shapes() -> None:
    for cls in (BufferConfig, SpillConfig, UplinkConfig, RemoteWriteConfig, TLSConfig):
        check_schema(cls)


def test_every_key_loads() -> None:
    cfg = parse_config(FULL, environ={"RW_PASSWORD": "pw"})
    assert cfg.buffer.capacity == 50000
    assert (cfg.spill.path, cfg.spill.max_size, cfg.spill.max_age) == (
        "/tmp/x/spill.db", 64 * 1024 * 1024, 7200.0)
    assert cfg.uplink.stale_floor == 15.0
    a, b = cfg.uplink.remote_write
    assert a.name == "central" and a.receiver_name() == "central"
    assert dict(a.headers) == {"X-Scope-OrgID": "tenant-1"}
    assert a.basic_auth is not None and a.basic_auth.password == "pw"
    assert a.tls.cert_file == "/etc/pharos/c.pem"
    assert (a.timeout, a.batch, a.flush, a.min_backoff, a.max_backoff, a.max_pending) == (
        5.0, 500, 2.0, 0.5, 60.0, 10000)
    assert b.receiver_name() == "127.0.0.1:8428"
    assert b.bearer_token_file == "/run/secrets/vm"


def test_defaults_follow_the_issue() -> None:
    rw = RemoteWriteConfig(url="http://x/api/v1/write")
    assert (rw.batch, rw.flush, rw.min_backoff, rw.max_backoff, rw.timeout) == (
        2000, 1.0, 1.0, 30.0, 10.0)
    assert BufferConfig().capacity == 100_000
    assert SpillConfig().max_size == 512 * 1024 * 1024 and SpillConfig().max_age == 86400.0
    s = resolve_settings(rw, index=0, host="web1", capacity=100_000)
    assert s.max_pending == 50_000                        # half the buffer, as in the seed
    assert dict(s.external_labels) == {"host": "web1", "job": "pharosd"}


def test_external_labels_override_and_an_empty_value_removes_a_default() -> None:
    cfg = parse_config("""
uplink:
  remote_write:
    - url: http://x/api/v1/write
      external_labels: {job: "", dc: fra1}
""")
    s = resolve_settings(cfg.uplink.remote_write[0], index=0, host="web1", capacity=10)
    assert dict(s.external_labels) == {"host": "web1", "dc": "fra1"}


@pytest.mark.parametrize(("yaml_rw", "message"), [
    ("{url: ftp://x/}", "remote_write[0].url: expected an http:// or https:// URL"),
    ("{url: 'http://x/', tls: {insecure: true}}", "expected an https:// url when 'tls' is set"),
    ("{url: 'https://x/', tls: {cert_file: /c.pem}}", "expected both 'cert_file' and 'key_file'"),
    ("{url: 'https://x/', tls: {insecure: true, ca_file: /ca}}", "not both"),
    ("{url: 'http://x/', basic_auth: {username: u}}",
     "expected exactly one of 'password' or 'password_file'"),
    ("{url: 'http://x/', bearer_token: a, bearer_token_file: /b}", "at most one of"),
    ("{url: 'http://x/', headers: {Content-Type: text/plain}}",
     "expected a header the protocol does not own"),
    ("{url: 'http://x/', bearer_token: a, headers: {Authorization: x}}",
     "no Authorization header"),
    ("{url: 'http://x/', external_labels: {'bad-name': x}}", "expected a label name"),
    ("{url: 'http://x/', min_backoff: 10s, max_backoff: 1s}", "expected at least min_backoff"),
    ("{url: 'http://x/', batch: 0}", "batch"),
    ("{url: 'http://x/', flush: 0s}", "flush"),
    ("{url: 'http://x/', bach: 10}", "did you mean 'batch'"),
])
def test_bad_uplink_keys_are_positioned_errors(yaml_rw: str, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_config(f"uplink:\n  remote_write:\n    - {yaml_rw}\n", filename="p.yaml")
    text = str(e.value)
    assert message in text
    assert text.startswith("p.yaml:")


def test_two_receivers_need_distinct_names() -> None:
    with pytest.raises(ConfigError, match="unique receiver name"):
        parse_config("uplink:\n  remote_write:\n    - {url: 'http://x:1/a'}\n"
                     "    - {url: 'http://x:1/b'}\n")


def test_secret_files_are_read_stripped_and_never_shown(tmp_path) -> None:
    pw = tmp_path / "pw"
    pw.write_text("s3cret\n")
    tok = tmp_path / "tok"
    tok.write_text("  tok3n \n")
    cfg = parse_config(f"""
uplink:
  remote_write:
    - {{url: 'http://a/w', name: a, basic_auth: {{username: u, password_file: {pw}}}}}
    - {{url: 'http://b/w', name: b, bearer_token_file: {tok}}}
    - {{url: 'http://c/w', name: c, bearer_token: inline-secret}}
""")
    a, b, c = (resolve_settings(rw, index=i, host="h", capacity=10)
               for i, rw in enumerate(cfg.uplink.remote_write))
    assert a.headers["Authorization"] == "Basic " + base64.b64encode(b"u:s3cret").decode()
    assert b.headers["Authorization"] == "Bearer tok3n"
    assert c.headers["Authorization"] == "Bearer inline-secret"
    for shown in (repr(cfg), repr(a), repr(b), repr(c)):
        assert "s3cret" not in shown and "tok3n" not in shown and "inline-secret" not in shown


def test_an_unreadable_secret_file_is_a_config_error_naming_the_key(tmp_path) -> None:
    cfg = parse_config(f"uplink:\n  remote_write:\n    - {{url: 'http://a/w', "
                       f"bearer_token_file: {tmp_path}/missing}}\n")
    with pytest.raises(ConfigError, match=r"remote_write\[0\]\.bearer_token_file"):
        resolve_settings(cfg.uplink.remote_write[0], index=0, host="h", capacity=10)


def test_the_receiver_name_never_carries_credentials() -> None:
    rw = RemoteWriteConfig(url="https://user:pw@metrics.example/api/v1/write?token=t")
    s = resolve_settings(rw, index=0, host="h", capacity=10)
    assert rw.receiver_name() == "metrics.example"
    assert s.safe_url == "https://***@metrics.example/api/v1/write?token=***"
