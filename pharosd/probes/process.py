"""The process probe: count matching processes and sum what they use (psutil).

Processes match by ``process`` (the name ``ps -e`` shows, exactly),
``cmdline`` (a regex searched in the arguments joined by spaces) and
``user`` (the owner), all given keys together; or by ``pidfile`` alone.
pharosd itself never matches. The check fails (the probe's ``level``) when
fewer than ``min_count`` or more than ``max_count`` match.

Values: ``count``, ``up`` (1 when at least one matches), ``rss_bytes``,
``threads``, ``open_fds`` (left out when some process's fds cannot be read,
as for another user's process without root), ``cpu_percent`` (CPU time of
the processes seen in both this run and the last, over the monotonic time
between them, x100: 100 is one core; left out on the first run) and
``restarts`` (processes that appeared since the last run, by pid and start
time: 1 after a service restarted between two runs; 0 on the first run).
The probe keeps the last run's cpu times; the collector never runs it twice
at once.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import psutil

from pharosd.clock import Clock
from pharosd.errors import ProbeError
from pharosd.probes.base import CheckResult, Probe
from pharosd.probes.config import ProcessProbeConfig
from pharosd.probes.status import OK, UNKNOWN_STATE

Identity = tuple[int, float]     # pid and create time: a pid reused is another process


@dataclass(frozen=True, slots=True)
class ProcessStats:
    identity: Identity
    cpu_seconds: float
    rss: int
    threads: int
    fds: int | None              # None when not readable


class ProcessProbe(Probe):
    kind = "process"
    cfg: ProcessProbeConfig

    def __init__(self, cfg: ProcessProbeConfig, every: float, clock: Clock | None = None) -> None:
        super().__init__(cfg, every, clock)
        self.fail_status = UNKNOWN_STATE[cfg.level]
        self.cmdline_re = re.compile(cfg.cmdline) if cfg.cmdline is not None else None
        self.what = describe_match(cfg)
        # Only what the match needs: a user name costs a passwd lookup per process.
        self.attrs = [a for a, key in (("name", cfg.process), ("cmdline", cfg.cmdline),
                                       ("username", cfg.user)) if key is not None]
        self._last: dict[Identity, float] | None = None    # identity -> cpu seconds
        self._last_time = 0.0

    def check(self, now: float) -> CheckResult:
        procs = self._find()
        stats = [s for s in (_stats(p) for p in procs) if s is not None]
        mono = self.clock.monotonic()
        count = len(stats)
        values: list[tuple[str, float]] = [
            ("count", float(count)),
            ("up", 1.0 if count else 0.0),
            ("rss_bytes", float(sum(s.rss for s in stats))),
            ("threads", float(sum(s.threads for s in stats))),
        ]
        if all(s.fds is not None for s in stats):
            values.append(("open_fds", float(sum(s.fds or 0 for s in stats))))
        current = {s.identity: s.cpu_seconds for s in stats}
        if self._last is not None:
            elapsed = mono - self._last_time
            if elapsed > 0:
                used = sum(max(0.0, cpu - self._last[i])
                           for i, cpu in current.items() if i in self._last)
                values.append(("cpu_percent", 100.0 * used / elapsed))
            values.append(("restarts", float(sum(1 for i in current if i not in self._last))))
        else:
            values.append(("restarts", 0.0))
        self._last, self._last_time = current, mono
        cfg = self.cfg
        text = f"{count} {'process' if count == 1 else 'processes'} matching {self.what}"
        if count < cfg.min_count:
            return CheckResult(self.fail_status, f"{text}, expected at least {cfg.min_count}",
                               tuple(values))
        if cfg.max_count is not None and count > cfg.max_count:
            return CheckResult(self.fail_status, f"{text}, expected at most {cfg.max_count}",
                               tuple(values))
        return CheckResult(OK, text, tuple(values))

    def _find(self) -> list[psutil.Process]:
        cfg = self.cfg
        me = os.getpid()
        if cfg.pidfile is not None:
            pid = read_pidfile(cfg.pidfile)
            if pid is None or pid == me:
                return []
            try:
                return [psutil.Process(pid)]
            except psutil.NoSuchProcess:
                return []
        found = []
        # Not process_iter(attrs): it stores each process's values on psutil's shared
        # Process objects (``.info``), which another process probe on another pool thread
        # may overwrite with its own attributes between the store and the read here.
        for p in psutil.process_iter():
            if p.pid == me:
                continue
            try:
                info = p.as_dict(self.attrs)
            except psutil.NoSuchProcess:
                continue
            if cfg.process is not None and info.get("name") != cfg.process:
                continue
            if cfg.user is not None and info.get("username") != cfg.user:
                continue
            if self.cmdline_re is not None:
                args = info.get("cmdline")
                if not args or self.cmdline_re.search(" ".join(args)) is None:
                    continue
            found.append(p)
        return found


def read_pidfile(path: str) -> int | None:
    """The pid in ``path``; None when the file does not exist."""
    try:
        with open(path, "rb") as f:
            text = f.read(64).decode("ascii", errors="replace").strip()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise ProbeError(f"pidfile {path}: {e.strerror or e}") from e
    if not text.isdigit() or int(text) <= 0:
        raise ProbeError(f"pidfile {path}: expected a pid, got {text[:20]!r}")
    return int(text)


def _stats(p: psutil.Process) -> ProcessStats | None:
    """What one process uses; None if it is gone (or a zombie)."""
    try:
        with p.oneshot():
            if p.status() == psutil.STATUS_ZOMBIE:
                return None
            cpu = p.cpu_times()
            rss = p.memory_info().rss
            threads = p.num_threads()
            try:
                fds: int | None = p.num_fds()
            except psutil.AccessDenied:
                fds = None
            return ProcessStats((p.pid, p.create_time()), cpu.user + cpu.system, rss,
                                threads, fds)
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return None
    except psutil.AccessDenied as e:
        raise ProbeError(f"process {p.pid}: access denied") from e


def describe_match(cfg: ProcessProbeConfig) -> str:
    parts = []
    if cfg.pidfile is not None:
        parts.append(f"pidfile {cfg.pidfile}")
    if cfg.process is not None:
        parts.append(f"name {cfg.process!r}")
    if cfg.cmdline is not None:
        parts.append(f"cmdline /{cfg.cmdline}/")
    if cfg.user is not None:
        parts.append(f"user {cfg.user!r}")
    return " and ".join(parts)
