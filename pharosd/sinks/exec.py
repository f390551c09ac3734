"""The exec sink: run a command per alert event (Monit's "then exec", a Nagios event handler).

The command runs from an argv list (never a shell), with ``cwd=/``, in a
session and process group of its own, with the event's JSON object (one
line) on stdin and a small environment: ``PATH``, ``LANG=C.UTF-8``, the
sink's ``env``, then ``PHAROS_RULE``, ``PHAROS_STATUS``, ``PHAROS_LEVEL``,
``PHAROS_FINGERPRINT``, ``PHAROS_EVENT_ID`` and ``PHAROS_REMINDER`` (``true`` or
``false``; pharosd's own environment is not passed on). stdout is discarded; the
first ``STDERR_CAP`` bytes of stderr are kept for the error message (the rest is
read and dropped).

``classify_exit`` is the pure rule: exit 0 is delivered; 75 (EX_TEMPFAIL)
is a ``DeliveryError`` (retried); any other exit, or death by a signal, is a
``PermanentDeliveryError``. A command that runs past ``timeout`` gets its
whole process group SIGTERMed, then SIGKILLed after ``KILL_GRACE``, and is
retried (the outbox's backoff applies). A command that cannot be started
(missing, not executable) is retried too: fixing it delivers the backlog.
Processes the command left running in its group are killed after it exits
(SIGTERM, then SIGKILL). When the daemon stops mid-run, the command gets
SIGTERM and its event stays in the outbox.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import structlog

from pharosd.clock import Clock, SystemClock
from pharosd.errors import DeliveryError, PermanentDeliveryError
from pharosd.model import AlertEvent

log = structlog.get_logger(__name__)

RETRY_EXIT = 75                  # EX_TEMPFAIL (sysexits.h)
STDERR_CAP = 1024                # bytes of stderr kept for the error message
KILL_GRACE = 1.0                 # seconds between SIGTERM and SIGKILL
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_READ = 65536


@dataclass(frozen=True, slots=True)
class ExecResult:
    returncode: int | None       # None: timed out (then killed)
    stderr: bytes
    timed_out: bool


def event_env(event: AlertEvent, extra: Mapping[str, str]) -> dict[str, str]:
    env = {"PATH": DEFAULT_PATH, "LANG": "C.UTF-8"}
    env.update(extra)
    env.update(PHAROS_RULE=event.rule, PHAROS_STATUS=event.status, PHAROS_LEVEL=event.level,
               PHAROS_FINGERPRINT=event.fingerprint, PHAROS_EVENT_ID=event.id,
               PHAROS_REMINDER="true" if event.reminder else "false")
    return env


def _excerpt(stderr: bytes) -> str:
    text = " ".join(stderr.decode("utf-8", "replace").split())
    return f": {text}" if text else ""


def classify_exit(result: ExecResult, program: str, timeout: float) -> None:
    """Return when delivered; raise ``DeliveryError`` or ``PermanentDeliveryError``."""
    where = f"exec {program}"
    if result.timed_out:
        raise DeliveryError(f"{where}: still running after {timeout:g}s, killed"
                            f"{_excerpt(result.stderr)}")
    rc = result.returncode
    if rc == 0:
        return
    if rc == RETRY_EXIT:
        raise DeliveryError(f"{where}: exit {rc} (EX_TEMPFAIL: retry){_excerpt(result.stderr)}")
    if rc is not None and rc < 0:
        name = signal.Signals(-rc).name if -rc in signal.valid_signals() else str(-rc)
        raise PermanentDeliveryError(f"{where}: killed by {name}{_excerpt(result.stderr)}")
    raise PermanentDeliveryError(f"{where}: exit {rc}{_excerpt(result.stderr)}")


def _exited(pid: int) -> bool:
    """True once our child ``pid`` exited; it stays unreaped (its pid stays the group id)."""
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return info is not None and info.si_pid != 0


def _signal_group(pgid: int, grace: float, leader_exited: bool, clock: Clock) -> None:
    """SIGTERM the group, SIGKILL it after ``grace`` if the leader or others remain."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            return
        if sig == signal.SIGKILL:
            return
        until = clock.monotonic() + grace
        while clock.monotonic() < until:
            if leader_exited or _exited(pgid):
                # the leader is gone; other members get the SIGKILL regardless
                break
            time.sleep(0.02)


def run(argv: Sequence[str], stdin: bytes, env: Mapping[str, str], timeout: float, *,
        grace: float = KILL_GRACE, running: set[int] | None = None,
        clock: Clock | None = None) -> ExecResult:
    """Run ``argv`` with ``stdin``; raise ``OSError`` when it cannot start."""
    clock = clock or SystemClock()
    deadline = clock.monotonic() + timeout
    with tempfile.TemporaryFile() as fin:   # no pipe: a command that ignores stdin is fine
        fin.write(stdin)
        fin.seek(0)
        proc = subprocess.Popen(list(argv), stdin=fin, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, env=dict(env), cwd="/",
                                close_fds=True, start_new_session=True)
    if running is not None:
        running.add(proc.pid)
    kept = bytearray()
    timed_out = False
    assert proc.stderr is not None
    fd = proc.stderr.fileno()
    os.set_blocking(fd, False)
    try:
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            eof = False
            while not _exited(proc.pid):
                remaining = deadline - clock.monotonic()
                if remaining <= 0:
                    timed_out = True
                    break
                if eof:
                    time.sleep(min(remaining, 0.02))
                    continue
                for _ in sel.select(min(remaining, 0.1)):
                    eof = not _read_into(fd, kept)
                    if eof:
                        sel.unregister(fd)
            if not eof:
                _read_into(fd, kept)
        # Before reaping the leader: its pid is still the group id and ours to signal.
        _signal_group(proc.pid, grace, leader_exited=not timed_out, clock=clock)
    finally:
        if running is not None:
            running.discard(proc.pid)
        proc.stderr.close()
        try:
            proc.wait(timeout=grace + 1.0)
        except subprocess.TimeoutExpired:
            log.warning("exec_sink_not_reaped", pid=proc.pid, command=argv[0])
    return ExecResult(None if timed_out else proc.returncode, bytes(kept[:STDERR_CAP]),
                      timed_out)


def _read_into(fd: int, kept: bytearray) -> bool:
    """Read what is there (up to the cap kept, the rest dropped); False at EOF."""
    for _ in range(32):
        try:
            data = os.read(fd, _READ)
        except BlockingIOError:
            return True
        except OSError:
            return False
        if not data:
            return False
        if len(kept) < STDERR_CAP:
            kept += data[:STDERR_CAP - len(kept)]
    return True


class ExecSink:
    def __init__(self, name: str, command: Sequence[str], *,
                 env: Mapping[str, str] | None = None, timeout: float = 30.0,
                 grace: float = KILL_GRACE, clock: Clock | None = None) -> None:
        self.name = name
        self._clock: Clock = clock or SystemClock()
        self.command = tuple(command)
        self.env = dict(env or {})
        self.timeout = timeout
        self.grace = grace
        self.blocking_timeout = timeout + 2 * grace + 2.0
        self._running: set[int] = set()
        self._closing = threading.Event()

    def deliver(self, event: AlertEvent) -> None:
        stdin = (event.to_json() + "\n").encode()
        try:
            result = run(self.command, stdin, event_env(event, self.env), self.timeout,
                         grace=self.grace, running=self._running, clock=self._clock)
        except OSError as e:
            raise DeliveryError(f"exec {self.command[0]}: cannot run: "
                                f"{e.strerror or e}") from None
        if self._closing.is_set() and result.returncode != 0:
            raise DeliveryError(f"exec {self.command[0]}: stopped with the daemon, "
                                "retried at the next start")
        classify_exit(result, self.command[0], self.timeout)

    def reopen(self) -> None:
        pass

    def close(self) -> None:
        """The daemon stops: a command still running gets SIGTERM; its event stays
        in the outbox (retried at the next start) unless it still exited 0."""
        self._closing.set()
        for pgid in list(self._running):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGTERM)
