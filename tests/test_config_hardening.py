"""Config values that used to pass `check-config` and then fail at run time,
checked through a real `pharosd check-config` subprocess: each must be a
positioned error (file:line:col, key path, what was expected), exit 1."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def check_config(path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHAROS")}
    return subprocess.run([sys.executable, "-m", "pharosd", "check-config", str(path)],
                          capture_output=True, text=True, env=env, timeout=60)


def test_a_nul_byte_in_an_exec_argument_or_environment_value_is_a_positioned_error(
        tmp_path: Path) -> None:
    cfg = tmp_path / "pharos.yaml"
    cfg.write_text('statistics: []\n'
                   'probes:\n'
                   '  - name: ntp\n'
                   '    kind: exec\n'
                   '    command: [/bin/echo, "ok", "a\\0b"]\n'
                   '    env: {OK: fine, TOKEN: "s3cr\\0t"}\n')
    r = check_config(cfg)
    assert r.returncode == 1, r.stdout
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert lines == [
        f"{cfg}:5:32: probes[0].command[2]: expected no NUL byte (\\0) in an argument",
        f"{cfg}:6:28: probes[0].env.TOKEN: expected no NUL byte (\\0) in the value",
        f"{cfg}: 2 errors",
    ]
    assert "s3cr" not in r.stderr            # an environment value may be a secret


def test_insecure_with_a_ca_file_is_a_positioned_error_on_webhook_and_alertmanager(
        tmp_path: Path) -> None:
    cfg = tmp_path / "pharos.yaml"
    cfg.write_text("statistics: []\n"
                   "sinks:\n"
                   "  - name: hook\n"
                   "    kind: webhook\n"
                   "    url: https://127.0.0.1:9/hook\n"
                   "    ca_file: /etc/pharos/ca.pem\n"
                   "    insecure: true\n"
                   "  - {name: am, kind: alertmanager, urls: ['https://127.0.0.1:9'],\n"
                   "     ca_file: /etc/pharos/ca.pem, insecure: true}\n")
    r = check_config(cfg)
    assert r.returncode == 1, r.stdout
    lines = r.stderr.strip().splitlines()
    expected = "expected either 'ca_file' or 'insecure: true', not both"
    assert lines[0].startswith(f"{cfg}:7:15: sinks[0].insecure: {expected}"), lines
    assert lines[1].startswith(f"{cfg}:9:45: sinks[1].insecure: {expected}"), lines
    assert lines[2] == f"{cfg}: 2 errors"
