"""The ``services`` statistic: systemd units, their state, restarts, CPU and memory.

One poll runs ``systemctl show -p Id,LoadState,ActiveState,SubState,NRestarts,
ControlGroup -- PATTERN...`` (D-Bus to PID 1; from inside the hardened unit
too, since it only needs AF_UNIX) with the ``match`` globs (default
``*.service``) and reads each unit's CPU and memory from the cgroup v2 file
system, which costs PID 1 nothing (docs/benchmarks.md has the figures).
A glob matches the units systemd holds loaded and not inactive (as
``systemctl list-units`` shows them: running, activating, failed, ...); a
name without glob characters is reported whatever its state. Units systemd
does not know (``LoadState=not-found``) and those matching ``exclude`` are
left out.

Samples, labelled ``{unit}``:

* ``services.active_state``: ``ACTIVE_STATES`` (active 1, reloading 2,
  activating 3, deactivating 4, maintenance 5, refreshing 6, inactive 0,
  failed -1), so ``below: 0`` is "failed";
* ``services.sub_state{unit, state}``: 1, the unit's sub-state as a label
  (``running``, ``exited``, ``dead``, ``auto-restart``, ...);
* ``services.restarts``: ``NRestarts``, automatic restarts since the unit
  was loaded (reset by ``systemctl reset-failed`` or a daemon reload);
* ``services.cpu_percent``: ``cpu.stat`` ``usage_usec`` of the unit's cgroup
  as a rate, 100 = one cpu busy (first poll: none);
* ``services.memory_bytes``: ``memory.current`` of the cgroup, where the
  memory controller is on the v2 hierarchy (not on hybrid v1 systems).

Pure parts: ``parse_show``, ``unit_samples``, ``parse_cpu_stat``. Without
systemd as PID 1 (no ``/run/systemd/system``) the statistic logs once and
yields nothing; a ``systemctl`` that fails, hangs past ``SYSTEMCTL_TIMEOUT``
or prints junk raises ``ProbeError`` (the collector logs it once). Paths and
the command runner are injectable for tests.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence

import structlog

from pharosd.clock import Clock, SystemClock
from pharosd.errors import ProbeError
from pharosd.model import Labels, Sample, labels_of
from pharosd.statistics.base import NameFilter, Statistic, rate_samples
from pharosd.statistics.config import StatisticConfig
from pharosd.statistics.rates import RateTracker
from pharosd.subprocesses import run_command

log = structlog.get_logger(__name__)

DEFAULT_MATCH = ("*.service",)
PROPERTIES = ("Id", "LoadState", "ActiveState", "SubState", "NRestarts", "ControlGroup")
SYSTEMCTL = "systemctl"
SYSTEMCTL_TIMEOUT = 10.0
SYSTEMD_RUN_DIR = "/run/systemd/system"    # exists iff systemd is PID 1 (sd_booted)
CGROUP_ROOT = "/sys/fs/cgroup"
STDERR_EXCERPT = 200
SHOW_CAP = 8 * 1024 * 1024   # bytes of `systemctl show` output read (about 50,000 units)

ACTIVE_STATES: Mapping[str, int] = {
    "failed": -1, "inactive": 0, "active": 1, "reloading": 2, "activating": 3,
    "deactivating": 4, "maintenance": 5, "refreshing": 6,
}

Runner = Callable[[Sequence[str], float], str]


def parse_show(text: str) -> list[dict[str, str]]:
    """``systemctl show`` output: one ``{property: value}`` per unit (blank-line separated)."""
    units: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if current:
                units.append(current)
                current = {}
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ValueError(f"unexpected line in systemctl show output: {line[:80]!r}")
        current[key] = value
    if current:
        units.append(current)
    return units


def parse_cpu_stat(text: str) -> float | None:
    """``usage_usec`` of a cgroup v2 ``cpu.stat``, or None."""
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "usage_usec":
            return float(value)
    return None


def unit_samples(unit: Mapping[str, str], now: float) -> list[Sample]:
    """State and restart samples of one unit from its ``systemctl show`` properties."""
    labels = labels_of(unit=unit["Id"])
    out: list[Sample] = []
    state = ACTIVE_STATES.get(unit.get("ActiveState", ""))
    if state is not None:
        out.append(Sample("services.active_state", labels, float(state), now))
    sub = unit.get("SubState")
    if sub:
        out.append(Sample("services.sub_state", labels_of(unit=unit["Id"], state=sub), 1.0, now))
    restarts = unit.get("NRestarts", "")
    if restarts.isdigit():
        out.append(Sample("services.restarts", labels, float(restarts), now))
    return out


def cgroup_v2_root(root: str = CGROUP_ROOT) -> str | None:
    """The cgroup v2 mount: ``root`` itself (unified), ``root/unified`` (hybrid), or None."""
    for candidate in (root, os.path.join(root, "unified")):
        if os.path.exists(os.path.join(candidate, "cgroup.procs")) and \
                os.path.exists(os.path.join(candidate, "cgroup.controllers")):
            return candidate
    return None


def run_systemctl(argv: Sequence[str], timeout: float) -> str:
    """Run ``argv`` (never a shell); its stdout, or ``ProbeError``."""
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "SYSTEMD_PAGER": "",
           "SYSTEMD_COLORS": "0"}
    try:   # the shared runner: a process group of its own, killed whole on timeout
        proc = run_command(argv, env, timeout, stdout_cap=SHOW_CAP)
    except OSError as e:
        raise ProbeError(f"cannot run {argv[0]}: {e.strerror or e}") from None
    if proc.timed_out:
        raise ProbeError(f"{argv[0]} show: no answer within {timeout:g}s")
    if proc.stdout_dropped:
        raise ProbeError(f"{argv[0]} show: more than {SHOW_CAP} bytes of output; "
                         "narrow the statistic's match")
    if proc.returncode != 0:
        err = " ".join(proc.stderr.decode("utf-8", "replace").split())[:STDERR_EXCERPT]
        raise ProbeError(f"{argv[0]} show: exit {proc.returncode}: {err}")
    return proc.stdout.decode("utf-8", "replace")


class ServicesStatistic(Statistic):
    blocking = True          # runs a command: on the collector's pool, never inline

    def __init__(self, cfg: StatisticConfig, every: float, *,
                 runner: Runner = run_systemctl, systemd_dir: str = SYSTEMD_RUN_DIR,
                 cgroup_root: str = CGROUP_ROOT, clock: Clock | None = None,
                 timeout: float = SYSTEMCTL_TIMEOUT) -> None:
        super().__init__(cfg, every)
        self.patterns = tuple(cfg.match) or DEFAULT_MATCH
        self._keep = NameFilter(self.patterns, cfg.exclude)
        self._runner = runner
        self._systemd_dir = systemd_dir
        self._cgroup_root = cgroup_root
        self._clock: Clock = clock or SystemClock()
        self._timeout = timeout
        self._rates: RateTracker[tuple[str, Labels]] = RateTracker()
        self._unavailable_logged = False

    def command(self) -> list[str]:
        return [SYSTEMCTL, "show", "--no-pager", "-p", ",".join(PROPERTIES), "--",
                *self.patterns]

    def collect(self, now: float) -> list[Sample]:
        if not os.path.isdir(self._systemd_dir):
            if not self._unavailable_logged:
                self._unavailable_logged = True
                log.info("statistic_unavailable", statistic=self.name,
                         reason=f"systemd is not PID 1 (no {self._systemd_dir})")
            return []
        text = self._runner(self.command(), self._timeout)
        try:
            units = parse_show(text)
        except ValueError as e:
            raise ProbeError(str(e)) from None
        cgroup = cgroup_v2_root(self._cgroup_root)
        out: list[Sample] = []
        counters: dict[tuple[str, Labels], float] = {}
        for unit in units:
            name = unit.get("Id", "")
            if not name or unit.get("LoadState") == "not-found" or not self._keep(name):
                continue
            out += unit_samples(unit, now)
            path = unit.get("ControlGroup", "")
            if cgroup is None or not path.startswith("/"):
                continue
            labels = labels_of(unit=name)
            usage, memory = _read_cgroup(os.path.join(cgroup, path.lstrip("/")))
            if usage is not None:
                counters[("services.cpu_percent", labels)] = usage
            if memory is not None:
                out.append(Sample("services.memory_bytes", labels, memory, now))
        # usage_usec per second of wall time: 1e6 is one cpu, 100 %
        rates = self._rates.observe(counters, self._clock.monotonic())
        out += rate_samples({k: v / 1e4 for k, v in rates.items()}, now)
        return out


def _read_cgroup(directory: str) -> tuple[float | None, float | None]:
    """``usage_usec`` and ``memory.current`` of one cgroup; None for what is missing
    (a unit that just stopped, a controller not on the v2 hierarchy)."""
    usage = memory = None
    try:
        with open(os.path.join(directory, "cpu.stat"), encoding="ascii") as f:
            usage = parse_cpu_stat(f.read())
    except (OSError, ValueError):
        pass
    try:
        with open(os.path.join(directory, "memory.current"), encoding="ascii") as f:
            memory = float(f.read().strip())
    except (OSError, ValueError):
        pass
    return usage, memory
