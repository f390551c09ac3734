"""``run_test_alert``: a synthetic firing + resolved pair straight through the sinks."""

from __future__ import annotations

import io
import json
from pathlib import Path

from peers import free_port
from peers.receiver import Receiver

from pharosd.config.loader import parse_config
from pharosd.sinks.testalert import TEST_RULE, run_test_alert


def _config(tmp_path: Path, hook_url: str, am_url: str) -> str:
    return f"""
state_dir: {tmp_path / "state"}
host: test-host
sinks:
  - {{name: local, kind: file, path: {tmp_path / "alerts.jsonl"}}}
  - {{name: hook, kind: webhook, url: "{hook_url}/h"}}
  - {{name: am, kind: alertmanager, urls: ["{am_url}"]}}
  - {{name: dead, kind: webhook, url: "http://127.0.0.1:{free_port()}/h", timeout: 2s}}
"""


def test_every_sink_gets_a_pair_and_failures_are_reported(tmp_path: Path) -> None:
    with Receiver() as hook, Receiver() as am:
        cfg = parse_config(_config(tmp_path, hook.url, am.url))
        out = io.StringIO()
        code = run_test_alert(cfg, None, out)
    lines = out.getvalue().splitlines()
    assert lines[:3] == ["local: ok", "hook: ok", "am: ok"]
    assert lines[3].startswith("dead: failed: POST http://127.0.0.1:")
    assert "ConnectionError" in lines[3]
    assert code == 1
    written = [json.loads(x) for x in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert [(e["rule"], e["status"], e["host"]) for e in written] == \
        [(TEST_RULE, "firing", "test-host"), (TEST_RULE, "resolved", "test-host")]
    assert written[0]["fingerprint"] == written[1]["fingerprint"]
    assert written[0]["id"] != written[1]["id"]
    assert [r.json()["status"] for r in hook.received()] == ["firing", "resolved"]
    am_alerts = [r.json()[0] for r in am.received()]
    assert [a["labels"]["alertname"] for a in am_alerts] == [TEST_RULE, TEST_RULE]
    # test-alert does not touch the Alertmanager sink's re-send state or any outbox
    assert not (tmp_path / "state" / "alertmanager").exists()
    assert not (tmp_path / "state" / "outbox").exists()


def test_one_named_sink_only_and_exit_zero(tmp_path: Path) -> None:
    with Receiver() as hook, Receiver() as am:
        cfg = parse_config(_config(tmp_path, hook.url, am.url))
        out = io.StringIO()
        assert run_test_alert(cfg, "hook", out) == 0
        assert out.getvalue() == "hook: ok\n"
        assert len(hook.received()) == 2 and am.received() == []
    assert not (tmp_path / "alerts.jsonl").exists()


def test_an_unknown_sink_name_is_exit_2(tmp_path: Path) -> None:
    cfg = parse_config(_config(tmp_path, "http://127.0.0.1:1", "http://127.0.0.1:1"))
    out = io.StringIO()
    assert run_test_alert(cfg, "nope", out) == 2
    assert "unknown sink 'nope'" in out.getvalue()
    assert "local, hook, am, dead" in out.getvalue()


def test_a_sink_that_cannot_be_built_fails_with_its_reason(tmp_path: Path) -> None:
    cfg = parse_config(f"""
sinks:
  - {{name: w, kind: webhook, url: "http://127.0.0.1:1/", secret_file: {tmp_path}/nope}}
""")
    out = io.StringIO()
    assert run_test_alert(cfg, None, out) == 1
    assert out.getvalue().startswith("w: failed: ")
    assert "secret_file" in out.getvalue()


def test_filters_are_honoured_and_skipped_sinks_say_why(tmp_path: Path) -> None:
    from pharosd.alerting.routing import route_of

    cfg = parse_config(f"""
state_dir: {tmp_path}
sinks:
  - {{name: all, kind: file, path: {tmp_path}/all.jsonl}}
  - {{name: pager, kind: file, path: {tmp_path}/pager.jsonl, filter: {{levels: [critical]}}}}
  - {{name: disks, kind: file, path: {tmp_path}/disks.jsonl, filter: {{rules: ["disk-*"]}}}}
""", "pharos.yaml", {})

    def skip(sink, event):
        return route_of(sink).why_not(event)

    out = io.StringIO()
    assert run_test_alert(cfg, None, out, skip=skip) == 0
    assert out.getvalue().splitlines() == [
        "all: ok",
        "pager: skipped: its filter refuses this alert: level warning is not in levels "
        "[critical]",
        f"disks: skipped: its filter refuses this alert: rule {TEST_RULE} matches none of "
        "rules [disk-*]"]
    assert not (tmp_path / "pager.jsonl").exists()
    out = io.StringIO()
    assert run_test_alert(cfg, "pager", out, level="critical", skip=skip) == 0
    assert out.getvalue() == "pager: ok\n"
    events = [json.loads(x) for x in (tmp_path / "pager.jsonl").read_text().splitlines()]
    assert [(e["status"], e["level"]) for e in events] == [("firing", "critical"),
                                                           ("resolved", "critical")]
