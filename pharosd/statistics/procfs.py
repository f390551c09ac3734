"""Readers of /proc files, and the pure parsers behind them.

Every reader takes ``procfs`` (default ``/proc``) so tests can point it at a
fake tree; every parser takes the file's text and does no I/O. Readers raise
``OSError`` when a file is missing or unreadable; the statistic decides what
that means.

Files read: ``stat`` (cpu times, procs_running/blocked), ``[pid]/stat``
(process states), ``sys/fs/file-nr``, ``uptime``, ``self/mounts``,
``filesystems``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

DEFAULT_PROCFS = "/proc"

# /proc/stat "cpu" fields, in kernel order. guest and guest_nice are already
# counted in user and nice, so they are left out of the total.
CPU_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


@dataclass(frozen=True, slots=True)
class CpuTimes:
    """Cumulative time one cpu (or all) spent in each state, in clock ticks."""

    user: float = 0.0
    nice: float = 0.0
    system: float = 0.0
    idle: float = 0.0
    iowait: float = 0.0
    irq: float = 0.0
    softirq: float = 0.0
    steal: float = 0.0


@dataclass(frozen=True, slots=True)
class ProcStat:
    """The parts of /proc/stat the statistics use.

    ``cores`` maps the kernel's cpu number (``"0"``, ``"1"``, ... as in
    ``cpu0``) to its times; an offline cpu is absent, so numbers can skip.
    """

    total: CpuTimes
    cores: dict[str, CpuTimes]
    procs_running: int | None
    procs_blocked: int | None


def parse_proc_stat(text: str) -> ProcStat:
    total: CpuTimes | None = None
    cores: dict[str, CpuTimes] = {}
    running: int | None = None
    blocked: int | None = None
    for line in text.splitlines():
        if line.startswith("cpu"):
            parts = line.split()
            values = [float(v) for v in parts[1:1 + len(CPU_FIELDS)]]
            times = CpuTimes(*values)
            name = parts[0]
            if name == "cpu":
                total = times
            else:
                cores[name[3:]] = times
        elif line.startswith("procs_running "):
            running = int(line.split()[1])
        elif line.startswith("procs_blocked "):
            blocked = int(line.split()[1])
    if total is None:
        raise ValueError("no 'cpu' line in /proc/stat")
    return ProcStat(total=total, cores=cores, procs_running=running, procs_blocked=blocked)


def read_proc_stat(procfs: str = DEFAULT_PROCFS) -> ProcStat:
    with open(os.path.join(procfs, "stat"), encoding="ascii") as f:
        return parse_proc_stat(f.read())


def process_state(stat: bytes) -> str | None:
    """The state letter of a ``/proc/[pid]/stat`` line (``R``, ``S``, ``Z``...).

    The command name sits in parentheses and may itself hold spaces and
    parentheses, so the state is found after the *last* ``)``.
    """
    end = stat.rfind(b")")
    if end < 0:
        return None
    rest = stat[end + 1:].split(None, 1)
    if not rest:
        return None
    return rest[0][:1].decode("ascii", "replace")


@dataclass(frozen=True, slots=True)
class ProcessCounts:
    total: int
    zombie: int


def count_processes(procfs: str = DEFAULT_PROCFS) -> ProcessCounts:
    """Count the processes (not threads) in ``procfs`` and those in state Z.

    A process that exits between the directory listing and the read is not
    counted. One small read per process; no psutil.Process objects.
    """
    counter = ProcessCounter(procfs, max_open=0)
    return counter.count()


class ProcessCounter:
    """``count_processes`` that keeps each process's ``stat`` file open between
    calls, up to ``max_open`` of them (a ``pread`` at offset 0 reads it afresh):
    opening and closing the files was about a third of a count's cost.

    A kept file of a process that was reaped reads ``ESRCH``: it is closed, and
    the pid, if listed again (reused), is opened anew. The files are opened
    close-on-exec; ``close()`` closes them all.
    """

    def __init__(self, procfs: str = DEFAULT_PROCFS, max_open: int = 256) -> None:
        self._procfs = procfs
        self._max_open = max_open
        self._fds: dict[str, int] = {}

    def count(self) -> ProcessCounts:
        total = 0
        zombie = 0
        listed = set()
        for name in os.listdir(self._procfs):
            if not name.isdigit():
                continue
            listed.add(name)
            data = self._read(name)
            if data is None:
                continue
            total += 1
            if process_state(data) == "Z":
                zombie += 1
        for name in [n for n in self._fds if n not in listed]:
            os.close(self._fds.pop(name))
        return ProcessCounts(total=total, zombie=zombie)

    def _read(self, name: str) -> bytes | None:
        fd = self._fds.get(name)
        if fd is not None:
            try:
                data = os.pread(fd, 512, 0)
            except OSError:             # reaped since: the pid may be another process now
                data = b""
            if data:
                return data
            os.close(self._fds.pop(name))
        # os.open/os.read: no buffered file object per process (half the cost)
        try:
            fd = os.open(f"{self._procfs}/{name}/stat", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:        # gone, or hidden from us
            return None
        keep = False
        try:
            data = os.read(fd, 512)
            keep = len(self._fds) < self._max_open
        except OSError:
            return None
        finally:
            if keep:
                self._fds[name] = fd
            else:
                os.close(fd)
        return data

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


@dataclass(frozen=True, slots=True)
class FileHandles:
    open: int
    max: int


def parse_file_nr(text: str) -> FileHandles:
    """``/proc/sys/fs/file-nr``: allocated, allocated-but-unused, maximum."""
    allocated, unused, maximum = (int(v) for v in text.split()[:3])
    return FileHandles(open=allocated - unused, max=maximum)


def read_file_nr(procfs: str = DEFAULT_PROCFS) -> FileHandles:
    with open(os.path.join(procfs, "sys", "fs", "file-nr"), encoding="ascii") as f:
        return parse_file_nr(f.read())


def parse_uptime(text: str) -> float:
    """``/proc/uptime``: seconds since boot (first field)."""
    return float(text.split()[0])


def read_uptime(procfs: str = DEFAULT_PROCFS) -> float:
    with open(os.path.join(procfs, "uptime"), encoding="ascii") as f:
        return parse_uptime(f.read())


@dataclass(frozen=True, slots=True)
class Mount:
    device: str
    mountpoint: str
    fstype: str


_OCTAL = re.compile(r"\\([0-7]{3})")


def _unescape(field: str) -> str:
    # The kernel writes space, tab, newline and backslash as \040, \011, \012, \134.
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_mounts(text: str) -> list[Mount]:
    """``/proc/self/mounts`` in file order (later mounts on a path hide earlier)."""
    out: list[Mount] = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        out.append(Mount(device=_unescape(parts[0]), mountpoint=_unescape(parts[1]),
                         fstype=parts[2]))
    return out


def read_mounts(procfs: str = DEFAULT_PROCFS) -> list[Mount]:
    with open(os.path.join(procfs, "self", "mounts"), encoding="utf-8",
              errors="surrogateescape") as f:
        return parse_mounts(f.read())


def parse_filesystems(text: str) -> frozenset[str]:
    """The filesystem types of ``/proc/filesystems`` that need a block device
    (the lines without ``nodev``): the ones that store data on a disk."""
    out: set[str] = set()
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 1:
            out.add(parts[0])
    return frozenset(out)


def read_filesystems(procfs: str = DEFAULT_PROCFS) -> frozenset[str]:
    with open(os.path.join(procfs, "filesystems"), encoding="ascii") as f:
        return parse_filesystems(f.read())
