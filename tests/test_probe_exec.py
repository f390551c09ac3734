"""The exec probe with Debian's real monitoring plugins and a few scripted plugins.

Each real plugin (check_load, check_disk, check_procs, check_tcp, check_http)
is run through the probe with arguments that give OK, WARNING, CRITICAL and
UNKNOWN; the samples must carry the status, the plugin's text and its
perfdata in base units. A plugin that hangs with children of its own must be
killed with all of them at its timeout, and the next run must go on.
"""

from __future__ import annotations

import http.server
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from conftest import free_port, require_binary
from structlog.testing import capture_logs

from pharosd.model import Sample
from pharosd.probes.config import ExecProbeConfig
from pharosd.probes.exec import OUTPUT_CAP, ExecProbe, run_command
from pharosd.probes.factory import build_probe
from pharosd.probes.nagios import MAX_ITEMS
from pharosd.subprocesses import LiveGroups
from pharosd.types import Duration, FrozenDict

pytestmark = pytest.mark.timeout(120)

NOW = 1_700_000_000.0
HERE = Path(__file__).parent
HANG = HERE / "probe_plugins" / "hang.sh"
PLUGINS = "/usr/lib/nagios/plugins"


def plugin(name: str) -> str:
    return require_binary(name, f"{PLUGINS}/{name}")


def probe(*command: str, timeout: float = 10.0, env: dict[str, str] | None = None,
          unknown: str = "warning") -> ExecProbe:
    cfg = ExecProbeConfig(name="t", kind="exec", command=tuple(command),
                          timeout=Duration(timeout), env=FrozenDict(env or {}),
                          unknown=unknown)  # type: ignore[arg-type]
    p = build_probe(cfg, 10.0)
    assert isinstance(p, ExecProbe)
    return p


def run(p: ExecProbe) -> dict[str, Sample]:
    samples = p.collect(NOW)
    assert all(s.ts == NOW and s.labels == () for s in samples)
    assert all(s.metric.startswith("probe.t.") for s in samples)
    return {s.metric.removeprefix("probe.t."): s for s in samples}


def values(samples: dict[str, Sample]) -> dict[str, float]:
    return {k: s.value for k, s in samples.items()}


def assert_status(samples: dict[str, Sample], status: int, text_start: str) -> None:
    assert samples["status"].value == status, samples["status"].note
    note = samples["status"].note or ""
    assert note.startswith(text_start), note
    assert samples["state"].note == note


def sh(script: str) -> tuple[str, ...]:
    return ("/bin/sh", "-c", script)


def dead(pid: int) -> bool:
    """Gone, or a zombie waiting for a reaper (PID 1 here may not reap)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


# -- check_load -------------------------------------------------------------------------


def test_check_load_ok_with_perfdata():
    s = run(probe(plugin("check_load"), "-w", "1000,1000,1000", "-c", "2000,2000,2000"))
    assert_status(s, 0, "LOAD OK - total load average:")
    assert s["state"].value == 0
    v = values(s)
    for n in ("load1", "load5", "load15"):
        assert 0 <= v[n] < 1000
        assert v[f"{n}.warn"] == 1000 and v[f"{n}.crit"] == 2000 and v[f"{n}.min"] == 0
    # the plugin's own numbers, as it printed them in its text
    text = s["status"].note or ""
    printed = [float(x) for x in text.split(":")[1].split(",")]
    assert printed == [v["load1"], v["load5"], v["load15"]]


def test_check_load_warning():
    if os.getloadavg()[2] == 0.0:
        pytest.skip("the 15-minute load average is 0.00: nothing can exceed a limit of 0")
    s = run(probe(plugin("check_load"), "-w", "1000,1000,0", "-c", "1000,1000,1000"))
    assert_status(s, 1, "LOAD WARNING - total load average:")
    assert s["state"].value == 1


def test_check_load_critical():
    if os.getloadavg()[2] == 0.0:
        pytest.skip("the 15-minute load average is 0.00: nothing can exceed a limit of 0")
    s = run(probe(plugin("check_load"), "-w", "0,0,0", "-c", "0,0,0"))
    assert_status(s, 2, "LOAD CRITICAL - total load average:")
    assert s["state"].value == 2


def test_check_load_unknown_is_mapped_by_the_unknown_key():
    args = (plugin("check_load"), "-w", "x")
    for unknown, state in (("warning", 1), ("critical", 2), ("ok", 0)):
        s = run(probe(*args, unknown=unknown))
        assert_status(s, 3, "check failed: Warning threshold must be float")
        assert s["state"].value == state


# -- check_disk: bytes ---------------------------------------------------------------


def test_check_disk_ok_bytes_match_the_filesystem():
    s = run(probe(plugin("check_disk"), "-w", "0%", "-c", "0%", "-p", "/"))
    assert_status(s, 0, "DISK OK - free space: /")
    v = values(s)
    st = os.statvfs("/")
    total = st.f_blocks * st.f_frsize
    used = (st.f_blocks - st.f_bfree) * st.f_frsize
    assert v["_"] == pytest.approx(used, rel=0.02)       # label "/" -> "_"
    assert v["_.max"] == pytest.approx(total, rel=0.001)
    assert v["_.min"] == 0


def test_check_disk_warning_and_critical():
    s = run(probe(plugin("check_disk"), "-w", "100%", "-c", "0%", "-p", "/"))
    assert_status(s, 1, "DISK WARNING - free space: /")
    s = run(probe(plugin("check_disk"), "-w", "100%", "-c", "100%", "-p", "/"))
    assert_status(s, 2, "DISK CRITICAL - free space: /")
    assert s["state"].value == 2


def test_check_disk_unknown():
    s = run(probe(plugin("check_disk"), "-w", "10%", "-c", "5%", "--no-such-option"))
    assert s["status"].value == 3
    assert (s["status"].note or "").startswith("check failed: ")


# -- check_procs: ranges in perfdata ----------------------------------------------------------


@pytest.fixture
def marker_process() -> Iterator[str]:
    """A process whose arguments hold a unique marker, for check_procs -a."""
    marker = f"{os.getpid()}.{free_port()}"
    proc = subprocess.Popen(["sleep", marker])
    try:
        yield marker
    finally:
        proc.kill()
        proc.wait()


def test_check_procs_all_outcomes(marker_process):
    cp = plugin("check_procs")
    s = run(probe(cp, "-a", marker_process, "-c", "1:"))
    assert_status(s, 0, f"PROCS OK: 1 process with args '{marker_process}'")
    assert values(s)["procs"] == 1
    assert values(s)["procs.crit_low"] == 1 and "procs.crit" not in s
    s = run(probe(cp, "-a", marker_process, "-w", "0:0", "-c", "0:5"))
    assert_status(s, 1, "PROCS WARNING: 1 process")
    assert values(s)["procs.warn"] == 0 and values(s)["procs.crit"] == 5
    s = run(probe(cp, "-a", marker_process + ".none", "-c", "1:"))
    assert_status(s, 2, "PROCS CRITICAL: 0 processes")
    assert values(s)["procs"] == 0
    s = run(probe(cp, "-w", "1", "-c", "2", "--no-such-option"))
    assert s["status"].value == 3


# -- check_tcp and check_http against loopback servers -----------------------------------------


@pytest.fixture
def hello_server() -> Iterator[int]:
    """Accepts connections on 127.0.0.1, says ``hello`` and closes."""
    srv = socket.create_server(("127.0.0.1", 0))
    srv.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.sendall(b"hello\n")

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        yield srv.getsockname()[1]
    finally:
        stop.set()
        t.join(5)
        srv.close()


def test_check_tcp_all_outcomes(hello_server):
    ct = plugin("check_tcp")
    port = str(hello_server)
    s = run(probe(ct, "-H", "127.0.0.1", "-p", port, "-e", "hello"))
    assert_status(s, 0, "TCP OK - ")
    v = values(s)
    assert 0 <= v["time"] <= 10 and v["time.max"] == 10 and v["time.min"] == 0
    s = run(probe(ct, "-H", "127.0.0.1", "-p", port, "-e", "nope", "-M", "warn"))
    assert_status(s, 1, "TCP WARNING - Unexpected response from host/socket: hello")
    s = run(probe(ct, "-H", "127.0.0.1", "-p", str(free_port())))
    assert_status(s, 2, "")
    assert "Connection refused" in (s["status"].note or "")
    s = run(probe(ct, "-H", "127.0.0.1", "-p", port, "--no-such-option"))
    assert_status(s, 3, "check failed: Usage:")


class _Handler(http.server.BaseHTTPRequestHandler):
    sent: dict[str, int] = {}

    def do_GET(self) -> None:
        code = {"/ok": 200, "/missing": 404, "/error": 500}.get(self.path, 200)
        body = b"hello from the test\n"
        raw = (f"HTTP/1.0 {code} {self.responses[code][0]}\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body
        self.wfile.write(raw)
        self.sent[self.path] = len(raw)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[tuple[int, dict[str, int]]]:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield srv.server_address[1], _Handler.sent
    finally:
        srv.shutdown()
        srv.server_close()
        t.join(5)


def test_check_http_all_outcomes(http_server):
    port, sent = http_server
    ch = plugin("check_http")
    base = (ch, "-H", "127.0.0.1", "-p", str(port))
    s = run(probe(*base, "-u", "/ok"))
    assert_status(s, 0, "HTTP OK: HTTP/1.0 200 OK")
    v = values(s)
    assert v["size"] == sent["/ok"]                     # B: bytes as they were sent
    assert 0 <= v["time"] <= 10                         # s: seconds
    s = run(probe(*base, "-u", "/missing"))
    assert_status(s, 1, "HTTP WARNING: HTTP/1.0 404 Not Found")
    assert values(s)["size"] == sent["/missing"]
    s = run(probe(*base, "-u", "/error"))
    assert_status(s, 2, "HTTP CRITICAL: HTTP/1.0 500 Internal Server Error")
    s = run(probe(ch))
    assert_status(s, 3, "check failed: check_http: Could not parse arguments")


# -- a plugin that hangs with children -------------------------------------------------------


def test_hanging_plugin_is_killed_with_its_children_and_the_next_run_goes_on(tmp_path):
    pidfile, flag = tmp_path / "pids", tmp_path / "hang"
    flag.touch()
    p = probe("/bin/sh", str(HANG), str(pidfile), str(flag), timeout=3.0)
    s = run(p)
    assert_status(s, 3, "check failed: timed out after 3s")
    assert s["state"].value == 1
    assert values(s)["duration_seconds"] >= 3.0
    pids = [int(x) for x in pidfile.read_text().split()]
    assert len(pids) == 4, pids         # the shell, two children, a grandchild
    assert (tmp_path / "hang.started").exists()
    assert all(dead(pid) for pid in pids), [(pid, dead(pid)) for pid in pids]
    flag.unlink()
    s = run(p)
    assert_status(s, 0, "HANG OK - not hanging")
    assert values(s)["runs"] == 1


def test_processes_left_behind_are_killed_and_do_not_hold_the_run(tmp_path):
    pidfile = tmp_path / "pid"
    s = run(probe(*sh(f"sleep 300 & echo $! > {pidfile}; echo 'OK - left a child'"),
                  timeout=60))
    assert_status(s, 0, "OK - left a child")
    assert dead(int(pidfile.read_text()))


# -- exit codes, signals, output ------------------------------------------------------------


@pytest.mark.parametrize(("code", "status"), [(0, 0), (1, 1), (2, 2), (3, 3)])
def test_exit_codes(code, status):
    s = run(probe(*sh(f"echo 'TEXT {code} | v=1'; exit {code}")))
    assert s["status"].value == status
    assert (s["status"].note or "").endswith(f"TEXT {code}")
    assert values(s)["v"] == 1


@pytest.mark.parametrize("code", [4, 127, 255])
def test_other_exit_codes_are_unknown(code):
    s = run(probe(*sh(f"echo 'weird | v=2'; exit {code}")))
    assert_status(s, 3, f"check failed: exit code {code}: weird")
    assert values(s)["v"] == 2


def test_death_by_signal_is_unknown():
    s = run(probe(*sh("echo partial; kill -SEGV $$")))
    assert_status(s, 3, "check failed: killed by signal SIGSEGV: partial")


def test_missing_program_is_unknown():
    s = run(probe("/nonexistent/check_nothing"))
    assert_status(s, 3, "check failed: cannot run /nonexistent/check_nothing: No such file")
    assert set(s) == {"status", "state"}


def test_perfdata_units_become_base_units():
    s = run(probe(*sh("echo \"OK - fine | rt=250ms;500;1000;0 mem=2KB;;;0;1024 "
                      "'Queue Len'=3;~:10 up=U;1 big=1.5TB c=12c\"")))
    v = values(s)
    assert v["rt"] == 0.25 and v["rt.warn"] == 0.5 and v["rt.crit"] == 1.0 and v["rt.min"] == 0
    assert v["mem"] == 2048 and v["mem.max"] == 1024 * 1024
    assert v["queue_len"] == 3 and v["queue_len.warn"] == 10
    assert "up" not in v and v["up.warn"] == 1
    assert v["big"] == 1.5 * 1024**4 and v["c"] == 12


def test_long_output_perfdata_and_malformed_items():
    script = ("printf 'OK - first | a=1 broken b=2\\nlong text\\nmore | c=3ms\\nd=4 =5\\n'")
    p = probe(*sh(script))
    s = run(p)
    assert_status(s, 0, "OK - first")
    v = values(s)
    assert (v["a"], v["b"], v["c"], v["d"]) == (1, 2, 0.003, 4)
    assert p.perfdata_errors == 2


def test_non_utf8_output_is_replaced_not_fatal():
    s = run(probe(*sh(r"printf 'OK \377\376 caf\303\251 | v=1\n'")))
    assert s["status"].value == 0
    assert s["status"].note == "OK \ufffd\ufffd café"
    assert values(s)["v"] == 1


def test_output_is_capped(tmp_path):
    script = ("echo 'OK - chatty | first=1'; "
              "head -c 3000000 /dev/zero | tr '\\0' 'x'; echo")
    result = run_command(sh(script), {"PATH": "/usr/bin:/bin"}, 30.0)
    assert result.returncode == 0
    assert len(result.stdout) == OUTPUT_CAP
    assert result.stdout_dropped > 3_000_000 - OUTPUT_CAP
    s = run(probe(*sh(script), timeout=30))
    assert_status(s, 0, "OK - chatty")
    assert values(s)["first"] == 1


def test_stderr_is_the_text_when_stdout_is_empty():
    s = run(probe(*sh("echo 'oops on stderr' >&2; exit 2")))
    assert_status(s, 2, "oops on stderr")


def test_environment_is_small_and_explicit(monkeypatch):
    monkeypatch.setenv("PHAROS_TEST_SECRET", "do-not-leak")
    s = run(probe(*sh('echo "OK $FOO [$PHAROS_TEST_SECRET] $LANG $(pwd)"'),
                  env={"FOO": "bar"}))
    assert s["status"].note == "OK bar [] C.UTF-8 /"


def test_no_shell_is_involved(tmp_path):
    target = tmp_path / "x"
    s = run(probe("/bin/echo", f"OK; touch {target}", "$(id)"))
    assert s["status"].note == f"OK; touch {target} $(id)"
    assert not target.exists()


def test_python_plugin_with_many_perfdata_items():
    items = " ".join(f"'item {i}'={i}ms;{i + 1};{i + 2}" for i in range(200))
    code = f"print({'OK - many | ' + items!r})"
    s = run(probe(sys.executable, "-c", code))
    v = values(s)
    assert v["item_199"] == pytest.approx(0.199)
    assert v["item_0.warn"] == pytest.approx(0.001)
    assert sum(1 for k in v if "." not in k and k.startswith("item_")) == 200


def test_env_key_validation():
    cfg = ExecProbeConfig(name="t", kind="exec", command=("relative",),
                          env=FrozenDict({"A=B": "x"}))
    fields = [f for f, _ in cfg.check()]
    assert fields == ["command", "env"]
    assert shutil.which("sh")


def test_without_pidfd_support(tmp_path, monkeypatch):
    """Kernels before 5.3 have no pidfd: the runner polls for the exit instead."""
    import pharosd.subprocesses as exec_module

    monkeypatch.setattr(exec_module, "_pidfd_open", lambda pid: None)
    s = run(probe(*sh("echo 'OK - polled | v=7'")))
    assert_status(s, 0, "OK - polled")
    assert values(s)["v"] == 7
    pidfile, flag = tmp_path / "pids", tmp_path / "hang"
    flag.touch()
    s = run(probe("/bin/sh", str(HANG), str(pidfile), str(flag), timeout=2.0))
    assert_status(s, 3, "check failed: timed out after 2s")
    pids = [int(x) for x in pidfile.read_text().split()]
    assert len(pids) == 4 and all(dead(pid) for pid in pids)


def test_sixteen_thousand_perfdata_items_are_capped_counted_and_logged_once(tmp_path):
    # A real plugin printing 16,000 items with one label (64 KiB, just under the
    # output cap): names de-duplicated as a, a_2, ...; the items past the limit are
    # counted, not read, and logged when the cutting starts (not on every run).
    script = tmp_path / "check_many"
    script.write_text(f"#!{sys.executable}\n"
                      "import sys\n"
                      "sys.stdout.write('OK - many | ' + ' '.join(['a=1'] * 16000) + '\\n')\n")
    script.chmod(0o755)
    p = probe(str(script))
    with capture_logs() as logs:
        first = run(p)
        run(p)
    assert_status(first, 0, "OK - many")
    perf = {k for k in first if k not in ("status", "state", "duration_seconds")}
    assert perf == {"a"} | {f"a_{k}" for k in range(2, MAX_ITEMS + 1)}
    assert p.perfdata_truncated == 2 * (16000 - MAX_ITEMS)
    truncated = [e for e in logs if e["event"] == "plugin_perfdata_truncated"]
    assert len(truncated) == 1 and truncated[0]["dropped"] == 16000 - MAX_ITEMS


def test_a_run_that_registers_after_the_stop_is_killed_at_once():
    # The daemon may stop between a run's Popen and its registration: close() then
    # finds nothing to kill, and the late registration must kill the group itself.
    signalled: list[int] = []
    live = LiveGroups(signalled.append)
    first = subprocess.Popen(["sleep", "30"], start_new_session=True)
    late = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        live.add(first.pid)
        live.close(signal.SIGKILL)
        assert first.wait(5) == -signal.SIGKILL
        live.add(late.pid)
        assert late.wait(5) == -signal.SIGKILL
        assert signalled == [first.pid, late.pid]
    finally:
        for p in (first, late):
            p.kill()
            p.wait()
