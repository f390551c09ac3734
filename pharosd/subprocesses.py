"""Running an external command, bounded in time and memory: the exec probe's and exec sink's runner.

``run_command`` owns the child process. The command runs from an argv list
(never a shell) with ``cwd=/``, the environment it is given (``base_env``:
``PATH`` and ``LANG=C.UTF-8`` under the caller's additions), in a session
and process group of its own. Its stdin is ``/dev/null`` or the given bytes
(from a temporary file, not a pipe, so a command that ignores its stdin
never blocks). stdout (capped at ``stdout_cap``, or discarded) and stderr
(capped at ``stderr_cap``) are read without blocking until the command
exits or the timeout expires; bytes past a cap are read and dropped, so a
chatty command can neither fill memory nor block on a full pipe. On timeout
the whole process group gets SIGTERM, then SIGKILL after ``grace``;
processes the command left running in its group after a normal exit get the
same (``kill_group``). The leader is reaped only after that, so its process
group id cannot be reused while it is signalled.

``live`` (a ``LiveGroups``), when given, holds the process group id while the
command runs, so that its owner can signal it when the daemon stops mid-run;
a command that starts just as its owner closes the set is signalled as it
registers, so none outlives a stop.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO

import structlog

from pharosd.clock import Clock, SystemClock

log = structlog.get_logger(__name__)

OUTPUT_CAP = 64 * 1024       # bytes of stdout kept by default
STDERR_CAP = 4 * 1024        # bytes of stderr kept by default
KILL_GRACE = 1.0             # seconds between SIGTERM and SIGKILL
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_POLL = 0.05                 # seconds; only without pidfd support
_READ = 65536
_DRAIN_READS = 32            # reads per pipe after exit: 2 MiB at most


@dataclass(frozen=True, slots=True)
class RunResult:
    """How one run of a command ended, and what it wrote."""

    returncode: int | None          # None when it timed out (then killed)
    stdout: bytes
    stderr: bytes
    timed_out: bool
    duration: float                 # seconds, monotonic
    stdout_dropped: int = 0         # bytes past the stdout cap, read and dropped
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


def base_env(extra: Mapping[str, str]) -> dict[str, str]:
    """The environment of a command: a fixed PATH and locale, then ``extra``."""
    env = {"PATH": DEFAULT_PATH, "LANG": "C.UTF-8"}
    env.update(extra)
    return env


def _start(argv: Sequence[str], env: Mapping[str, str], stdin: bytes | None,
           capture_stdout: bool) -> subprocess.Popen[bytes]:
    stdout = subprocess.PIPE if capture_stdout else subprocess.DEVNULL
    if stdin is None:
        return subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=stdout,
                                stderr=subprocess.PIPE, env=dict(env), cwd="/",
                                close_fds=True, start_new_session=True)
    with tempfile.TemporaryFile() as fin:
        fin.write(stdin)
        fin.seek(0)
        return subprocess.Popen(list(argv), stdin=fin, stdout=stdout,
                                stderr=subprocess.PIPE, env=dict(env), cwd="/",
                                close_fds=True, start_new_session=True)


class LiveGroups:
    """The process groups of the runs in flight, for their owner to signal on stop.

    ``close(sig)`` sends ``sig`` to every group and closes the set; a group
    registered after that (its command started between the owner's check and
    the close) gets ``sig`` at once instead of outliving the daemon.
    ``signalled(pgid)`` is called for every group that got the signal.
    """

    def __init__(self, signalled: Callable[[int], None] | None = None) -> None:
        self._signalled = signalled
        self._lock = threading.Lock()
        self._pgids: set[int] = set()
        self._closed_with: int | None = None

    def add(self, pgid: int) -> None:
        with self._lock:
            sig = self._closed_with
            if sig is None:
                self._pgids.add(pgid)
                return
        self._signal(pgid, sig)

    def discard(self, pgid: int) -> None:
        with self._lock:
            self._pgids.discard(pgid)

    def close(self, sig: int) -> None:
        """Signal every group in flight now, and any that registers later."""
        with self._lock:
            self._closed_with = sig
            pgids = sorted(self._pgids)
        for pgid in pgids:
            self._signal(pgid, sig)

    def _signal(self, pgid: int, sig: int) -> None:
        try:
            os.killpg(pgid, sig)
        except OSError:             # gone already, or not ours to signal
            return
        if self._signalled is not None:
            self._signalled(pgid)


def run_command(argv: Sequence[str], env: Mapping[str, str], timeout: float, *,
                stdin: bytes | None = None, stdout_cap: int | None = OUTPUT_CAP,
                stderr_cap: int = STDERR_CAP, grace: float = KILL_GRACE,
                live: LiveGroups | None = None, clock: Clock | None = None) -> RunResult:
    """Run ``argv`` to completion or ``timeout``; raise ``OSError`` if it cannot start.

    ``stdout_cap=None`` discards stdout (``/dev/null``); ``stdin=None`` reads
    ``/dev/null``.
    """
    clock = clock or SystemClock()
    started = clock.monotonic()
    deadline = started + timeout
    proc = _start(argv, env, stdin, stdout_cap is not None)
    if live is not None:
        live.add(proc.pid)
    out, err = _Capped(stdout_cap or 0), _Capped(stderr_cap)
    sel = selectors.DefaultSelector()
    pidfd: int | None = None
    timed_out = False
    killed = 0
    try:
        pipes: list[tuple[IO[bytes] | None, _Capped]] = [(proc.stdout, out), (proc.stderr, err)]
        for stream, buf in pipes:
            if stream is not None:
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
            remaining = deadline - clock.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            for key, _ in sel.select(remaining if pidfd is not None else min(remaining, _POLL)):
                if key.data is None:
                    exited = True
                else:
                    _read(sel, key.fd, key.data)
        # The leader is not reaped yet, so its pid (the group id) is still ours.
        killed = kill_group(proc.pid, grace, clock)
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
            log.warning("command_not_reaped", pid=proc.pid, command=argv[0])
    return RunResult(
        returncode=None if timed_out else proc.returncode,
        stdout=out.value(), stderr=err.value(), timed_out=timed_out,
        duration=clock.monotonic() - started, stdout_dropped=out.dropped,
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
    """After the command exited: take what is already in its pipes, then stop
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


def kill_group(pgid: int, grace: float, clock: Clock | None = None) -> int:
    """SIGTERM the live processes of group ``pgid``, SIGKILL them after ``grace``;
    the number of processes that were alive at the start."""
    members = live_group_members(pgid)
    if not members:
        return 0
    clock = clock or SystemClock()
    count = len(members)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return count
        except PermissionError as e:
            log.warning("command_kill_refused", pgid=pgid, error=str(e))
            return count
        until = clock.monotonic() + grace
        while True:
            members = live_group_members(pgid)
            if not members or clock.monotonic() >= until:
                break
            time.sleep(0.02)
        if not members:
            return count
    log.warning("command_group_survived", pgid=pgid, pids=members)
    return count
