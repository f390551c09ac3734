"""The exec probe: run a Nagios-compatible plugin, bounded in time and memory.

The plugin runs through ``pharosd.subprocesses.run_command``: from an argv
list (never a shell) with stdin from /dev/null, ``cwd=/``, a small
environment (``PATH``, ``LANG=C.UTF-8`` and the probe's ``env``), in a
session and process group of its own; stdout capped at 64 KiB and stderr at
4 KiB (the rest read and dropped). On timeout the whole process group gets
SIGTERM, then SIGKILL after ``KILL_GRACE``; processes the plugin left
running in its group after a normal exit get the same. So ``collect``
returns within about ``timeout + 3 * KILL_GRACE``.

``ExecProbe`` maps the exit code (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN,
anything else or death by a signal UNKNOWN), parses the output
(``pharosd.probes.nagios``) and turns perfdata into samples.
"""

from __future__ import annotations

import signal
from collections.abc import Mapping, Sequence

import structlog

from pharosd import subprocesses
from pharosd.clock import Clock
from pharosd.errors import ProbeError
from pharosd.probes.base import CheckResult, Probe
from pharosd.probes.config import ExecProbeConfig
from pharosd.probes.nagios import MAX_ITEMS, parse_output, perfdata_values
from pharosd.subprocesses import KILL_GRACE, OUTPUT_CAP, LiveGroups, RunResult, base_env
from pharosd.units import format_duration

log = structlog.get_logger(__name__)

# Metric suffixes of the exec probe itself; perfdata labels that would take
# one of these become perf_<label>.
RESERVED = ("status", "state", "duration_seconds")


def run_command(argv: Sequence[str], env: Mapping[str, str], timeout: float, *,
                cap: int = OUTPUT_CAP, grace: float = KILL_GRACE,
                live: LiveGroups | None = None, clock: Clock | None = None) -> RunResult:
    """Run a plugin (``pharosd.subprocesses.run_command``, stdin from /dev/null);
    raise ``ProbeError`` if it cannot start."""
    try:
        return subprocesses.run_command(argv, env, timeout, stdout_cap=cap, grace=grace,
                                        live=live, clock=clock)
    except OSError as e:
        raise ProbeError(f"cannot run {argv[0]}: {e.strerror or e}") from e


class ExecProbe(Probe):
    """A Nagios plugin as a probe (see the module docstring)."""

    kind = "exec"
    cfg: ExecProbeConfig

    def __init__(self, cfg: ExecProbeConfig, every: float, clock: Clock | None = None) -> None:
        super().__init__(cfg, every, clock)
        self.env = base_env(cfg.env)
        self.perfdata_errors = 0         # malformed perfdata items and fields, in total
        self.perfdata_truncated = 0      # perfdata items past MAX_ITEMS, in total
        self._truncating = False
        self._last_problem: str | None = None
        self._live = LiveGroups(self._killed_on_stop)   # process groups of runs in flight

    def close(self) -> None:
        """SIGKILL the process group of a run in flight, or starting (the daemon is stopping)."""
        self._live.close(signal.SIGKILL)

    def _killed_on_stop(self, pgid: int) -> None:
        log.info("plugin_killed_on_stop", probe=self.name, pgid=pgid)

    def check(self, now: float) -> CheckResult:
        cfg = self.cfg
        run = run_command(cfg.command, self.env, float(cfg.timeout), live=self._live,
                          clock=self.clock)
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
        self._count_truncated(output.truncated)
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

    def _count_truncated(self, truncated: int) -> None:
        """Count items past the limit; log when a run starts or stops cutting."""
        self.perfdata_truncated += truncated
        if truncated and not self._truncating:
            log.warning("plugin_perfdata_truncated", probe=self.name, limit=MAX_ITEMS,
                        dropped=truncated)
        elif not truncated and self._truncating:
            log.info("plugin_perfdata_within_limit", probe=self.name, limit=MAX_ITEMS)
        self._truncating = truncated > 0

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
