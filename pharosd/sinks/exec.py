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
(SIGTERM, then SIGKILL). ``pharosd.subprocesses.run_command`` runs it, as it
runs the exec probe's plugins. When the daemon stops mid-run, the command gets
SIGTERM and its event stays in the outbox.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Mapping, Sequence

from pharosd.clock import Clock, SystemClock
from pharosd.errors import DeliveryError, PermanentDeliveryError
from pharosd.model import AlertEvent
from pharosd.subprocesses import KILL_GRACE, LiveGroups, RunResult, base_env, run_command

RETRY_EXIT = 75                  # EX_TEMPFAIL (sysexits.h)
STDERR_CAP = 1024                # bytes of stderr kept for the error message


def event_env(event: AlertEvent, extra: Mapping[str, str]) -> dict[str, str]:
    env = base_env(extra)
    env.update(PHAROS_RULE=event.rule, PHAROS_STATUS=event.status, PHAROS_LEVEL=event.level,
               PHAROS_FINGERPRINT=event.fingerprint, PHAROS_EVENT_ID=event.id,
               PHAROS_REMINDER="true" if event.reminder else "false")
    return env


def _excerpt(stderr: bytes) -> str:
    text = " ".join(stderr.decode("utf-8", "replace").split())
    return f": {text}" if text else ""


def classify_exit(result: RunResult, program: str, timeout: float) -> None:
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


def run(argv: Sequence[str], stdin: bytes, env: Mapping[str, str], timeout: float, *,
        grace: float = KILL_GRACE, running: LiveGroups | None = None,
        clock: Clock | None = None) -> RunResult:
    """Run ``argv`` with ``stdin``, stdout discarded; raise ``OSError`` when it cannot start."""
    return run_command(argv, env, timeout, stdin=stdin, stdout_cap=None,
                       stderr_cap=STDERR_CAP, grace=grace, live=running, clock=clock)


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
        self._running = LiveGroups()
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
        self._running.close(signal.SIGTERM)
