"""The command line as a user runs it: exit codes, messages, config lookup."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pharosd import __version__
from tests.support.machine import PACKAGE, machine_lock


def pharosd(*args: str, env: dict[str, str] | None = None,
            cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("PHAROS")}
    full.update(env or {})
    return subprocess.run([sys.executable, "-m", "pharosd", *args], capture_output=True,
                          text=True, env=full, cwd=cwd, timeout=60)


def test_version():
    r = pharosd("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"pharosd {__version__}"


def test_check_config_reports_every_error_with_positions(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("interval: soon\nthresholds:\n  - {name: x, metric: m, abvoe: 3}\n"
                   "sinks:\n  - {name: s, kind: fiel}\n")
    r = pharosd("check-config", str(cfg))
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert f"{cfg}:1:11: interval: expected a duration" in lines[0]
    assert any(f"{cfg}:3:26: thresholds[0]: unknown key 'abvoe', did you mean 'above'?" in x
               for x in lines), lines
    assert any(":5:" in x and "fiel" in x and "'file'" in x for x in lines), lines
    assert lines[-1] == f"{cfg}: 3 errors"


def test_check_config_ok_and_lookup_order(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("interval: 5s\nstatistics: [memory]\n")
    r = pharosd("check-config", "-c", str(good))
    assert r.returncode == 0 and r.stdout.startswith(f"{good}: ok (1 statistics")
    # $PHAROS_CONFIG is used when no -c is given ...
    r = pharosd("check-config", env={"PHAROS_CONFIG": str(good)})
    assert r.returncode == 0 and r.stdout.startswith(f"{good}: ok")
    # ... and -c wins over it.
    missing = tmp_path / "missing.yaml"
    r = pharosd("check-config", "-c", str(missing), env={"PHAROS_CONFIG": str(good)})
    assert r.returncode == 1 and str(missing) in r.stderr


def test_embedded_default_when_nothing_is_given(tmp_path):
    # Only where the package is not installed (its tests purge it after use, and
    # hold the lock while it is installed).
    with machine_lock(PACKAGE):
        if os.path.exists("/etc/pharos.yaml"):
            pytest.skip("/etc/pharos.yaml exists here: it is the lookup's answer")
        r = pharosd("check-config")
    assert r.returncode == 0
    assert r.stdout.startswith("<embedded default>: ok (13 statistics, 0 probes, 7 thresholds")


def test_status_without_a_daemon_exits_3(tmp_path):
    r = pharosd("status", "--socket", str(tmp_path / "none.sock"))
    assert r.returncode == 3
    assert "not running" in (r.stderr + r.stdout)


def test_usage_error_exits_nonzero():
    r = pharosd("frobnicate")
    assert r.returncode != 0 and "invalid choice" in r.stderr


def test_config_errors_carry_the_journal_priority_only_on_the_journal(tmp_path):
    """Under systemd, stderr is the journal (JOURNAL_STREAM names it): the
    errors of a bad config at start must land at priority err; on any other
    stream they stay plain."""
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("interval: soon\n")
    err = tmp_path / "stderr"
    with open(err, "w") as stream:
        st = os.fstat(stream.fileno())
        full = {k: v for k, v in os.environ.items() if not k.startswith("PHAROS")}
        full["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
        code = subprocess.run([sys.executable, "-m", "pharosd", "run", "-c", str(cfg)],
                              stdout=subprocess.DEVNULL, stderr=stream, env=full,
                              timeout=60).returncode
    assert code == 1
    lines = err.read_text().splitlines()
    assert lines == [f"<3>{cfg}:1:11: interval: expected a duration like 30s, got 'soon'",
                     f"<3>{cfg}: 1 error"]
    other = pharosd("run", "-c", str(cfg), env={"JOURNAL_STREAM": "1:2"})
    assert other.returncode == 1
    assert other.stderr.splitlines()[0].startswith(f"{cfg}:1:11: ")
