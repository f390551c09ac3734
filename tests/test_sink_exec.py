"""The exec sink with real scripts: what the command gets (argv, stdin, environment),
how its exit is classified (0 delivered, 75 retried, else permanent), the timeout that
kills its whole process group, and its config errors."""

from __future__ import annotations

import json
import os
import stat
import time
from dataclasses import replace
from pathlib import Path

import pytest

from pharosd.config.loader import parse_config
from pharosd.errors import ConfigError, DeliveryError, PermanentDeliveryError
from pharosd.model import AlertEvent, fingerprint, labels_of
from pharosd.sinks.config import ExecSinkConfig
from pharosd.sinks.exec import STDERR_CAP, ExecSink
from pharosd.sinks.factory import build_sink
from tests.support.daemon import wait_until

pytestmark = pytest.mark.timeout(60)


def event(status: str = "firing") -> AlertEvent:
    labels = labels_of(unit="nginx.service")
    return AlertEvent(status=status, rule="probe:nginx", level="critical",  # type: ignore[arg-type]
                      metric="probe.nginx.state", labels=labels, value=2.0, limit=None,
                      op="above", host="web-01", started_at=1.7e9, at=1.7e9 + 5,
                      summary="nginx is down", fingerprint=fingerprint("probe:nginx", labels))


def script(tmp: Path, name: str, body: str) -> str:
    path = tmp / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_argv_stdin_and_environment(tmp_path: Path) -> None:
    out = tmp_path / "out"
    prog = script(tmp_path, "handler", f"""
cat > {out}.json
printf '%s\\n' "$#" "$1" "$2" "$PHAROS_RULE" "$PHAROS_STATUS" "$PHAROS_LEVEL" \\
  "$PHAROS_FINGERPRINT" "$PHAROS_EVENT_ID" "$TEAM" "$PATH" "${{HOME:-unset}}" "$(pwd)" > {out}.txt
""")
    ev = event()
    os.environ["PHAROS_SINK_TEST_LEAK"] = "1"
    try:
        ExecSink("x", [prog, "one arg", "$HOME;rm -rf /"], env={"TEAM": "ops",
                                                                "PHAROS_RULE": "overridden?"},
                 timeout=10).deliver(ev)
    finally:
        del os.environ["PHAROS_SINK_TEST_LEAK"]
    assert json.loads((tmp_path / "out.json").read_text()) == ev.to_dict()
    lines = (tmp_path / "out.txt").read_text().splitlines()
    # argv as given, no shell: "$HOME;rm -rf /" arrives as one literal argument
    assert lines[:3] == ["2", "one arg", "$HOME;rm -rf /"]
    assert lines[3:8] == ["probe:nginx", "firing", "critical", ev.fingerprint, ev.id]
    assert lines[8] == "ops" and lines[9].startswith("/usr/local/sbin:")
    assert lines[10:] == ["unset", "/"]      # nothing of pharosd's environment, cwd /


def test_a_reminder_says_so_in_the_environment(tmp_path: Path) -> None:
    out = tmp_path / "out"
    prog = script(tmp_path, "handler", f'echo "$PHAROS_REMINDER" >> {out}\n')
    sink = ExecSink("x", [prog], timeout=10)
    sink.deliver(event())
    sink.deliver(replace(event(), reminder=True))
    assert out.read_text().splitlines() == ["false", "true"]


def test_exit_codes(tmp_path: Path) -> None:
    def run(body: str) -> None:
        ExecSink("x", [script(tmp_path, "s", body)], timeout=10).deliver(event())

    run("exit 0\n")
    with pytest.raises(DeliveryError, match=r"exit 75 \(EX_TEMPFAIL: retry\): queue busy") as e:
        run("echo 'queue busy' >&2; exit 75\n")
    assert type(e.value) is DeliveryError
    with pytest.raises(PermanentDeliveryError, match="exit 3: no such unit"):
        run("echo 'no such unit' >&2; exit 3\n")
    with pytest.raises(PermanentDeliveryError, match="killed by SIGKILL"):
        run("kill -KILL $$\n")
    # stderr is bounded in the error
    with pytest.raises(PermanentDeliveryError) as e:
        run("head -c 100000 /dev/zero | tr '\\0' x >&2; exit 1\n")
    assert str(e.value).split("exit 1: ", 1)[1] == "x" * STDERR_CAP


def test_a_command_that_cannot_run_is_retried(tmp_path: Path) -> None:
    with pytest.raises(DeliveryError, match="cannot run") as e:
        ExecSink("x", [str(tmp_path / "missing")]).deliver(event())
    assert type(e.value) is DeliveryError
    noexec = tmp_path / "noexec"
    noexec.write_text("#!/bin/sh\n")
    with pytest.raises(DeliveryError, match="Permission denied"):
        ExecSink("x", [str(noexec)]).deliver(event())


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in (b"Z", b"X")


def test_timeout_kills_the_process_group(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    # a child that ignores SIGTERM, in the same group, and a leader that sleeps
    prog = script(tmp_path, "slow", f"""
sh -c 'trap "" TERM; echo $$ > {pids}.child; while :; do sleep 0.05; done' &
echo $$ > {pids}.leader
sleep 30
""")
    started = time.monotonic()
    with pytest.raises(DeliveryError, match=r"still running after 0.5s, killed") as e:
        ExecSink("x", [prog], timeout=0.5, grace=0.2).deliver(event())
    assert type(e.value) is DeliveryError
    assert time.monotonic() - started < 10      # bounded, not the script's 30 s
    leader = int((tmp_path / "pids.leader").read_text())
    child = int((tmp_path / "pids.child").read_text())
    # SIGKILL is delivered asynchronously: wait (with a deadline) for both to be gone
    assert wait_until(lambda: not _alive(leader) and not _alive(child), timeout=5)


def test_leftovers_are_killed_after_a_normal_exit(tmp_path: Path) -> None:
    pidfile = tmp_path / "bg"
    prog = script(tmp_path, "bg", f"sleep 30 > /dev/null 2>&1 &\necho $! > {pidfile}\nexit 0\n")
    ExecSink("x", [prog], timeout=10).deliver(event())
    pid = int(pidfile.read_text())
    assert wait_until(lambda: not _alive(pid), timeout=5)


def test_config_and_factory(tmp_path: Path) -> None:
    prog = script(tmp_path, "ok", "exit 0\n")
    cfg = parse_config(f"sinks:\n  - {{name: fix, kind: exec, command: [{prog}, --now], "
                       f"timeout: 5s, env: {{A: b}}}}\n", "p.yaml", {})
    (sink_cfg,) = cfg.sinks
    assert isinstance(sink_cfg, ExecSinkConfig)
    built = build_sink(sink_cfg, state_dir=str(tmp_path), host="h")
    assert isinstance(built, ExecSink)
    assert (built.command, built.env, built.timeout) == ((prog, "--now"), {"A": "b"}, 5.0)
    built.deliver(event())


@pytest.mark.parametrize(("yaml", "message"), [
    ("{name: x, kind: exec, command: []}", "p.yaml:2:36: sinks[0].command: expected a "
                                           "non-empty list"),
    ("{name: x, kind: exec, command: [restart.sh]}", "p.yaml:2:36: sinks[0].command: "
                                                     "expected an absolute path"),
    ("{name: x, kind: exec, command: [/bin/true], timeout: 0s}", "sinks[0].timeout: "
                                                                 "expected a duration above 0"),
    ("{name: x, kind: exec, command: [/bin/true], env: {'A=B': c}}", "sinks[0].env: "
                                                                     "expected environment"),
    ("{name: x, kind: exec, command: /bin/true}", "sinks[0].command: expected a list"),
    # the same command rules as the exec probe's (pharosd.checks): execve takes C strings
    ('{name: x, kind: exec, command: [/bin/true, "a\\0b"]}',
     "sinks[0].command[1]: expected no NUL byte"),
    ('{name: x, kind: exec, command: [/bin/true], env: {T: "x\\0"}}',
     "sinks[0].env.T: expected no NUL byte"),
])
def test_bad_config_is_positioned(yaml: str, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_config(f"sinks:\n  - {yaml}\n", "p.yaml", {})
    assert message in str(e.value), str(e.value)
