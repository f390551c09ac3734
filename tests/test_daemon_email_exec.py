"""A real ``pharosd run`` delivers one alert by email (to aiosmtpd, which defers the first
attempt with a 451) and runs an exec sink for it; the file sink is the reference for the
event ids. A SIGHUP to an unreachable limit resolves the alert: both sinks get that too.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from peers.smtp import Smtpd

from tests.support.daemon import PharosProcess, wait_until

pytestmark = pytest.mark.timeout(120)


def config(tmp: Path, smtp_port: int, handler: Path, limit: float) -> str:
    return f"""
interval: 250ms
soak: 0s
cool: 0s
state_dir: {tmp}/state
statistics: [uptime]
thresholds:
  - {{name: up, metric: uptime.seconds, above: {limit!r}, level: critical}}
sinks:
  - {{name: file, kind: file, path: {tmp}/alerts.jsonl}}
  - name: mail
    kind: email
    host: 127.0.0.1
    port: {smtp_port}
    from: pharos@test.example
    to: [ops@test.example]
    subject: "{{host}}: {{rule}} {{status}}"
    retry: {{initial: 200ms, max: 1s}}
  - name: fix
    kind: exec
    command: [{handler}, --from-pharos]
    env: {{TARGET: nginx.service}}
    timeout: 10s
"""


def test_email_and_exec_sinks_in_the_daemon(tmp_path: Path) -> None:
    smtpd = Smtpd(tmp_path / "smtp", "--data-reply", "451 4.3.0 greylisted",
                  "--data-fail", "1").start()
    handler = tmp_path / "handler"
    runs = tmp_path / "runs.jsonl"
    handler.write_text(f"""#!/bin/sh
# a remediation hook: remembers what it was asked (stdin + environment)
{{ cat; printf '%s %s %s %s\\n' "$PHAROS_RULE" "$PHAROS_STATUS" "$TARGET" "$1"; }} >> {runs}
""")
    handler.chmod(0o755)
    d = PharosProcess(tmp_path, config(tmp_path, smtpd.port, handler, 1))
    try:
        alerts = tmp_path / "alerts.jsonl"
        assert wait_until(lambda: len(smtpd.records()) >= 1, 30), d.log()
        firing = json.loads(alerts.read_text().splitlines()[0])
        # the first attempt was deferred (451), retried, then accepted
        assert "451 4.3.0 greylisted" in d.log()
        (msg,) = smtpd.messages()
        assert msg["Subject"] == f"{firing['host']}: up firing"
        assert msg["Message-ID"].startswith(f"<{firing['id']}@")   # the same on every retry
        assert msg["X-Pharos-Fingerprint"] == firing["fingerprint"]
        body = msg.get_content()
        assert body.startswith(firing["summary"] + "\n")
        assert "status:      firing" in body and "level:       critical" in body
        assert wait_until(lambda: runs.exists() and len(runs.read_text().splitlines()) >= 2,
                          20), d.log()
        lines = runs.read_text().splitlines()
        assert json.loads(lines[0]) == firing
        assert lines[1] == "up firing nginx.service --from-pharos"

        d.write_config(config(tmp_path, smtpd.port, handler, 1e12))
        d.signal(signal.SIGHUP)
        assert wait_until(lambda: len(smtpd.records()) >= 2, 30), d.log()
        resolved = json.loads(alerts.read_text().splitlines()[1])
        assert resolved["status"] == "resolved"
        assert smtpd.messages()[1]["X-Pharos-Event-Id"] == resolved["id"]
        assert wait_until(lambda: len(runs.read_text().splitlines()) >= 4, 20), d.log()
        assert runs.read_text().splitlines()[3] == "up resolved nginx.service --from-pharos"
    finally:
        assert d.stop() == 0
        smtpd.stop()
