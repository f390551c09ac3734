"""The exec probe: run a Nagios-compatible plugin, bounded in time and memory.

``run_command`` owns the child process. The plugin runs from an argv list
(never a shell) with stdin from /dev/null, ``cwd=/``, a small environment
(``PATH``, ``LANG=C.UTF-8`` and the probe's ``env``), in a session and
process group of its own. stdout (capped at 64 KiB) and stderr (4 KiB) are
read without blocking until the plugin exits or the timeout expires; bytes
past a cap are read and dropped, so a chatty plugin can neither fill memory
nor block on a full pipe. On timeout the whole process group gets SIGTERM,
then SIGKILL after ``KILL_GRACE``; processes the plugin left running in its
group after a normal exit get the same. The leader is reaped only after
that, so its process group id cannot be reused while it is signalled. So
``collect`` returns within ``timeout + 2 * KILL_GRACE``.

``ExecProbe`` maps the exit code (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN,
anything else or death by a signal UNKNOWN), parses the output
(``pharosd.probes.nagios``) and turns perfdata into samples.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import structlog

from pharosd.errors import ProbeError
from pharosd.probes.base import CheckResult, Probe
from pharosd.probes.config import ExecProbeConfig
from pharosd.probes.nagios import parse_output, perfdata_values
from pharosd.units import format_duration

log = structlog.get_logger(__name__)

OUTPUT_CAP = 64 * 1024
STDERR_CAP = 4 * 1024
KILL_GRACE = 1.0             # seconds between SIGTERM and SIGKILL
_POLL = 0.05                 # seconds; only without pidfd support
_READ = 65536
_DRAIN_READS = 32            # reads per pipe after exit: 2 MiB at most
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Metric suffixes of the exec probe itself; perfdata labels that would take
# one of these become perf_<label>.
RESERVED = ("status", "state", "duration_seconds")


@dataclass(frozen=True, slots=True)
class RunResult:
    """How one run of a command ended, and what it wrote."""

    returncode: int | None          # None when it timed out (then killed)
    stdout: bytes
    stderr: bytes
    timed_out: bool
    duration: float                 # seconds, monotonic
    stdout_dropped: int = 0         # bytes past OUTPUT_CAP, read and dropped
    killed: int = 0                 # processes of the group still alive, then killed

    @property
    def signal(self) -> int | None:
        """The signal that killed the command, if one did."""
        rc = self.returncode
        return -rc if rc is not None and rc < 0 else None


class _Capped:
    __slots__ = ("cap", "dropped", "parts", "size")

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.parts: list[bytes] = []
        self.size = 0
        self.dropped = 0

    def feed(self, data: bytes) -> None:
        take = min(len(data), self.cap - self.size)
        if take > 0:
            self.parts.append(data[:take])
            self.size += take
        self.dropped += len(data) - max(take, 0)

    def value(self) -> bytes:
        return b"".join(self.parts)


def child_env(extra: Mapping[str, str]) -> dict[str, str]:
    """The environment of a plugin: a fixed PATH and locale, then ``extra``."""
    env = {"PATH": DEFAULT_PATH, "LANG": "C.UTF-8"}
    env.update(extra)
    return env


class LiveGroups:
    """Process groups of plugin runs in flight, killed when the daemon stops.

    ``close()`` SIGKILLs them and closes the set; a run whose thread had already
    started its plugin but not registered it yet is killed as it registers,
    so no plugin outlives a stop.
    """

    def __init__(self, probe: str) -> None:
        self.probe = probe
        self._lock = threading.Lock()
        self._pgids: set[int] = set()
        self._closed = False

    def add(self, pgid: int) -> None:
        with self._lock:
            if not self._closed:
                self._pgids.add(pgid)
                return
        self._kill(pgid)

    def discard(self, pgid: int) -> None:
        with self._lock:
            self._pgids.discard(pgid)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pgids = sorted(self._pgids)
        for pgid in pgids:
            self._kill(pgid)

    def _kill(self, pgid: int) -> None:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except OSError:
            return
        log.info("plugin_killed_on_stop", probe=self.probe, pgid=pgid)


def run_command(argv: Sequence[str], env: Mapping[str, str], timeout: float, *,
                cap: int = OUTPUT_CAP, grace: float = KILL_GRACE,
                live: LiveGroups | None = None) -> RunResult:
    """Run ``argv`` to completion or ``timeout``; raise ``ProbeError`` if it cannot start.

    ``live``, when given, holds the plugin's process group id while it runs,
    so that the owner can kill it when the daemon stops mid-run.
    """
    started = time.monotonic()
    deadline = started + timeout
    try:
        proc = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env=dict(env), cwd="/", close_fds=True,
            start_new_session=True,
        )
    except OSError as e:
        raise ProbeError(f"cannot run {argv[0]}: {e.strerror or e}") from e
    if live is not None:
        live.add(proc.pid)
    out, err = _Capped(cap), _Capped(STDERR_CAP)
    sel = selectors.DefaultSelector()
    pidfd: int | None = None
    timed_out = False
    killed = 0
    try:
        assert proc.stdout is not None and proc.stderr is not None
        for stream, buf in ((proc.stdout, out), (proc.stderr, err)):
            fd = stream.fileno()
            os.set_blocking(fd, False)
            sel.register(fd, selectors.EVENT_READ, buf)
        pidfd = _pidfd_open(proc.pid)
        if pidfd is not None:
            sel.register(pidfd, selectors.EVENT_READ, None)
        exited = False
        while True:
            if not exited:
                exited = _has_exited(proc.pid)
            if exited:
                _drain(sel)
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            for key, _ in sel.select(remaining if pidfd is not None else min(remaining, _POLL)):
                if key.data is None:
                    exited = True
                else:
                    _read(sel, key.fd, key.data)
        # The leader is not reaped yet, so its pid (the group id) is still ours.
        killed = kill_group(proc.pid, grace)
    finally:
        if live is not None:
            live.discard(proc.pid)
        sel.close()
        if pidfd is not None:
            os.close(pidfd)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            log.warning("plugin_not_reaped", pid=proc.pid, command=argv[0])
    return RunResult(
        returncode=None if timed_out else proc.returncode,
        stdout=out.value(), stderr=err.value(), timed_out=timed_out,
        duration=time.monotonic() - started, stdout_dropped=out.dropped,
        killed=killed,
    )


def _pidfd_open(pid: int) -> int | None:
    opener = getattr(os, "pidfd_open", None)
    if opener is None:
        return None
    try:
        return int(opener(pid))
    except OSError:
        return None


def _has_exited(pid: int) -> bool:
    """True once ``pid`` (our child) has exited; it stays unreaped (WNOWAIT)."""
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return info is not None and info.si_pid != 0


def _read(sel: selectors.BaseSelector, fd: int, buf: _Capped) -> bool:
    """Read what is there; False (and unregister) at EOF."""
    try:
        data = os.read(fd, _READ)
    except BlockingIOError:
        return True
    except OSError:
        data = b""
    if not data:
        sel.unregister(fd)
        return False
    buf.feed(data)
    return True


def _drain(sel: selectors.BaseSelector) -> None:
    """After the plugin exited: take what is already in its pipes, then stop
    (a process it left behind may hold them open; it gets killed next)."""
    for key in list(sel.get_map().values()):
        if key.data is None:
            continue
        for _ in range(_DRAIN_READS):
            try:
                data = os.read(key.fd, _READ)
            except BlockingIOError:
                break
            except OSError:
                data = b""
            if not data:
                break
            key.data.feed(data)


def live_group_members(pgid: int) -> list[int]:
    """Pids in process group ``pgid`` that are not zombies (from /proc)."""
    members: list[int] = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return members
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2:].split()
        if len(fields) > 2 and fields[0] not in (b"Z", b"X") and int(fields[2]) == pgid:
            members.append(int(entry))
    return members


def kill_group(pgid: int, grace: float) -> int:
    """SIGTERM the live processes of group ``pgid``, SIGKILL them after ``grace``;
    the number of processes that were alive at the start."""
    members = live_group_members(pgid)
    if not members:
        return 0
    count = len(members)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return count
        except PermissionError as e:
            log.warning("plugin_kill_refused", pgid=pgid, error=str(e))
            return count
        until = time.monotonic() + grace
        while True:
            members = live_group_members(pgid)
            if not members or time.monotonic() >= until:
                break
            time.sleep(0.02)
        if not members:
            return count
    log.warning("plugin_group_survived", pgid=pgid, pids=members)
    return count


class ExecProbe(Probe):
    """A Nagios plugin as a probe (see the module docstring)."""

    kind = "exec"
    cfg: ExecProbeConfig

    def __init__(self, cfg: ExecProbeConfig, every: float) -> None:
        super().__init__(cfg, every)
        self.env = child_env(cfg.env)
        self.perfdata_errors = 0         # malformed perfdata items and fields, in total
        self._last_problem: str | None = None
        self._live = LiveGroups(self.name)     # process groups of runs in flight

    def close(self) -> None:
        """SIGKILL the process group of a run in flight, or starting (the daemon is stopping)."""
        self._live.close()

    def check(self, now: float) -> CheckResult:
        cfg = self.cfg
        run = run_command(cfg.command, self.env, float(cfg.timeout), live=self._live)
        duration = ("duration_seconds", run.duration)
        if run.timed_out:
            return CheckResult.failed(f"timed out after {format_duration(cfg.timeout)}",
                                      [duration])
        if run.killed:
            log.info("plugin_left_processes", probe=self.name, killed=run.killed)
        if run.stdout_dropped:
            log.info("plugin_output_truncated", probe=self.name, cap=OUTPUT_CAP,
                     dropped=run.stdout_dropped)
        output = parse_output(run.stdout.decode("utf-8", errors="replace"))
        self._count_problems(output.errors, output.problems)
        values = [*perfdata_values(output.perfdata, RESERVED), duration]
        text = output.text or _first_line(run.stderr)
        sig = run.signal
        if sig is not None:
            return CheckResult.failed(f"killed by signal {_signal_name(sig)}"
                                      + (f": {text}" if text else ""), values)
        code = run.returncode
        if code is None or not 0 <= code <= 3:
            return CheckResult.failed(f"exit code {code}" + (f": {text}" if text else ""),
                                      values)
        return CheckResult(code, text, tuple(values))

    def _count_problems(self, errors: int, problems: Sequence[str]) -> None:
        if not errors:
            self._last_problem = None
            return
        self.perfdata_errors += errors
        first = problems[0] if problems else None
        if first != self._last_problem:
            self._last_problem = first
            log.warning("plugin_perfdata_skipped", probe=self.name, errors=errors,
                        problem=first)


def _first_line(data: bytes) -> str:
    for line in data.decode("utf-8", errors="replace").splitlines():
        if line.strip():
            return line.strip()
    return ""


def _signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return str(sig)
