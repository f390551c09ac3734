"""The process probe against processes this test starts."""

from __future__ import annotations

import os
import pwd
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import psutil
import pytest

from pharosd.model import Sample
from pharosd.probes.config import ProcessProbeConfig
from pharosd.probes.factory import build_probe
from pharosd.probes.process import ProcessProbe

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def spawn() -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(*argv: str) -> subprocess.Popen[bytes]:
        p = subprocess.Popen(list(argv))
        procs.append(p)
        return p

    yield start
    for p in procs:
        p.kill()
        p.wait()


@pytest.fixture
def marker() -> str:
    return f"{os.getpid()}.{time.monotonic_ns() % 10**9}"


def probe(**kw: Any) -> ProcessProbe:
    cfg = ProcessProbeConfig(name="svc", kind="process", **kw)
    assert cfg.check() == []
    p = build_probe(cfg, 10.0)
    assert isinstance(p, ProcessProbe)
    return p


def run(p: ProcessProbe) -> dict[str, Sample]:
    return {s.metric.removeprefix("probe.svc."): s for s in p.collect(time.time())}


def wait_for_exec(proc: subprocess.Popen[bytes], name: str) -> None:
    """Popen returns after fork; wait until the child has exec'd ``name`` and its
    arguments are in place (the kernel names the process before it sets up the new
    program's arguments: for a moment ``/proc/PID/cmdline`` is empty)."""
    for _ in range(500):
        p = psutil.Process(proc.pid)
        if p.name() == name and p.cmdline():
            return
        time.sleep(0.01)
    raise AssertionError(f"{proc.pid} never became {name}")


def test_cmdline_match_and_usage(spawn, marker):
    proc = spawn("sleep", marker)
    wait_for_exec(proc, "sleep")
    p = probe(cmdline=rf"^sleep {re.escape(marker)}$")
    s = run(p)
    assert s["status"].value == 0
    assert s["status"].note == f"1 process matching cmdline /^sleep {re.escape(marker)}$/"
    info = psutil.Process(proc.pid)
    assert s["count"].value == 1 and s["up"].value == 1
    assert s["rss_bytes"].value == pytest.approx(info.memory_info().rss, rel=0.5)
    assert s["rss_bytes"].value > 0
    assert s["threads"].value == 1
    assert s["open_fds"].value == info.num_fds()
    assert s["restarts"].value == 0
    assert "cpu_percent" not in s                    # needs two runs
    s = run(p)
    assert s["cpu_percent"].value == 0               # sleep uses no cpu
    assert s["restarts"].value == 0


def test_cpu_percent_of_a_busy_process(spawn, marker):
    spawn(sys.executable, "-c", "while True: pass", marker)
    p = probe(cmdline=re.escape(marker))
    assert run(p)["count"].value == 1
    time.sleep(0.5)
    assert run(p)["cpu_percent"].value > 0


def test_restart_is_counted_once(spawn, marker):
    first = spawn("sleep", marker)
    wait_for_exec(first, "sleep")
    p = probe(process="sleep", cmdline=re.escape(marker))
    assert run(p)["restarts"].value == 0
    first.kill()
    first.wait()
    second = spawn("sleep", marker)
    wait_for_exec(second, "sleep")
    s = run(p)
    assert s["count"].value == 1 and s["restarts"].value == 1
    assert run(p)["restarts"].value == 0


def test_down_is_the_level_and_count_bounds(spawn, marker):
    p = probe(cmdline=re.escape(marker))
    s = run(p)
    assert s["status"].value == 2 and s["up"].value == 0 and s["count"].value == 0
    assert (s["status"].note or "").endswith("expected at least 1")
    a, b = spawn("sleep", marker), spawn("sleep", marker)
    wait_for_exec(a, "sleep")
    wait_for_exec(b, "sleep")
    s = run(probe(cmdline=re.escape(marker), max_count=1, level="warning"))
    assert s["status"].value == 1 and s["count"].value == 2
    assert (s["status"].note or "").endswith("expected at most 1")
    assert run(probe(cmdline="no-such-" + re.escape(marker), min_count=0))["status"].value == 0


def test_user_and_name(spawn, marker):
    proc = spawn("sleep", marker)
    wait_for_exec(proc, "sleep")
    me = pwd.getpwuid(os.getuid()).pw_name
    s = run(probe(user=me, process="sleep", cmdline=re.escape(marker)))
    assert s["count"].value == 1
    s = run(probe(user="nobody", cmdline=re.escape(marker)))
    assert s["count"].value == 0
    assert run(probe(user=me))["count"].value >= 1


def test_pidfile(spawn, marker, tmp_path):
    proc = spawn("sleep", marker)
    pidfile = tmp_path / "svc.pid"
    pidfile.write_text(f"{proc.pid}\n")
    s = run(probe(pidfile=str(pidfile)))
    assert s["count"].value == 1 and s["status"].value == 0
    pidfile.unlink()
    s = run(probe(pidfile=str(pidfile)))
    assert s["count"].value == 0 and s["status"].value == 2
    pidfile.write_text("garbage")
    s = run(probe(pidfile=str(pidfile)))
    assert s["status"].value == 3
    assert s["status"].note == f"check failed: pidfile {pidfile}: expected a pid, got 'garbage'"


SELF_MATCH = """
import re, sys, time, psutil
from pharosd.probes.config import ProcessProbeConfig
from pharosd.probes.factory import build_probe
me = "^" + re.escape(" ".join(psutil.Process().cmdline())) + "$"
seen = sum(1 for p in psutil.process_iter(["cmdline"])
           if re.search(me, " ".join(p.info["cmdline"] or [])))
cfg = ProcessProbeConfig(name="svc", kind="process", cmdline=me, min_count=0)
[count] = [s.value for s in build_probe(cfg, 10.0).collect(time.time())
           if s.metric == "probe.svc.count"]
print(seen, count, flush=True)
"""


def test_pharosd_never_matches_itself(marker):
    # In a process of its own with a unique command line (pytest-xdist workers share
    # theirs): psutil sees exactly that process, the probe leaves it out.
    out = subprocess.run([sys.executable, "-c", SELF_MATCH, marker], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1].split() == ["1", "0.0"], out.stdout


def test_config_checks():
    def fields(**kw: Any) -> list[str]:
        return sorted(f for f, _ in ProcessProbeConfig(name="p", kind="process", **kw).check())

    assert fields() == [""]
    assert fields(process="x", pidfile="/run/x.pid") == ["pidfile"]
    assert fields(cmdline="(") == ["cmdline"]
    assert fields(process="x", min_count=2, max_count=1) == ["max_count"]
    assert fields(process="x", cmdline="y", user="z") == []
