"""The ``disk`` (usage per mount) and ``diskio`` (rates per device) statistics.

disk — which mounts count as real filesystems (``select_mounts``, pure):

* the visible mounts of ``/proc/self/mounts`` (a later mount on the same
  path hides the earlier one);
* whose type needs a block device (``/proc/filesystems`` lines without
  ``nodev``: ext4, xfs, btrfs, vfat, fuseblk, ...; the rule
  ``psutil.disk_partitions(all=False)`` uses), plus ``zfs``, which the kernel
  lists as ``nodev`` but stores data on disks. So tmpfs, devtmpfs, proc,
  cgroup, overlay, and network filesystems (nfs, cifs: a hung server would
  hang ``statvfs``; watch them with a probe) are left out;
* minus read-only images that are always full: squashfs (snaps), iso9660,
  erofs;
* ``/`` is always reported whatever its type, so a container whose root is
  overlay still reports it;
* only directories (Docker bind-mounts single files such as /etc/hosts);
* one mount per block device (``/dev/...``): bind mounts and btrfs subvolumes
  of one device report the same numbers, so ``/`` wins, else the shortest
  path;
* ``include``/``exclude`` globs match the mount point (no default exclusions).

The list is re-read at most once a minute; each poll costs one
``os.statvfs`` per mount. A mount that fails (vanished, permission denied)
is skipped and logged once. ``disk.free_bytes`` is the space available to
unprivileged users (``f_bavail``) and ``disk.used_percent`` is
``used / (used + free)`` as ``df`` shows it (root's reserve left out). The
inode metrics are left out for filesystems without an inode limit
(btrfs reports 0 inodes).

diskio: rates of ``psutil.disk_io_counters(perdisk=True, nowrap=False)`` for
whole disks and partitions alike (so do not sum across both), per
``device``. Without ``include``, devices matching ``loop*``, ``ram*`` and
``zram*`` are left out. ``nowrap=False`` because psutil's wrap correction
is hidden global state; ``pharosd.statistics.rates`` handles resets.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import psutil

from pharosd.clock import Clock, SystemClock
from pharosd.model import Labels, Sample, labels_of
from pharosd.statistics.base import (
    Every,
    ItemErrors,
    NameFilter,
    Statistic,
    rate_samples,
)
from pharosd.statistics.config import StatisticConfig
from pharosd.statistics.procfs import (
    DEFAULT_PROCFS,
    Mount,
    read_filesystems,
    read_mounts,
)
from pharosd.statistics.rates import RateTracker

REFRESH_SECONDS = 60.0
ALSO_REAL_FSTYPES = frozenset({"zfs"})
IMAGE_FSTYPES = frozenset({"squashfs", "iso9660", "erofs"})
DISKIO_DEFAULT_EXCLUDE = ("loop*", "ram*", "zram*")


def _keep_all(_: str) -> bool:
    return True


def select_mounts(mounts: Iterable[Mount], real_fstypes: frozenset[str], *,
                  keep: Callable[[str], bool] = _keep_all,
                  is_dir: Callable[[str], bool] = os.path.isdir) -> list[Mount]:
    """The mounts the disk statistic reports, sorted by mount point (see module doc).

    ``keep`` is the include/exclude filter on the mount point; ``is_dir`` is
    called only on mounts that passed every other rule.
    """
    visible: dict[str, Mount] = {}
    for m in mounts:
        visible.pop(m.mountpoint, None)     # re-insert: keep file order of the last one
        visible[m.mountpoint] = m
    chosen: dict[str, Mount] = {}
    for m in visible.values():
        if m.mountpoint != "/":
            if m.fstype in IMAGE_FSTYPES:
                continue
            if m.fstype not in real_fstypes and m.fstype not in ALSO_REAL_FSTYPES:
                continue
        if not keep(m.mountpoint) or not is_dir(m.mountpoint):
            continue
        group = m.device if m.device.startswith("/") else "\0" + m.mountpoint
        other = chosen.get(group)
        if other is None or _preference(m) < _preference(other):
            chosen[group] = m
    return sorted(chosen.values(), key=lambda m: m.mountpoint)


def _preference(m: Mount) -> tuple[bool, int, str]:
    return (m.mountpoint != "/", len(m.mountpoint), m.mountpoint)


def usage_samples(mount: Mount, st: Any, now: float) -> list[Sample]:
    """Disk samples from an ``os.statvfs`` result."""
    labels = labels_of(mount=mount.mountpoint, device=mount.device, fstype=mount.fstype)
    frsize = st.f_frsize or st.f_bsize
    total = float(st.f_blocks * frsize)
    free = float(st.f_bavail * frsize)
    used = float(max(0, st.f_blocks - st.f_bfree) * frsize)
    visible = used + free
    out = [
        Sample("disk.total_bytes", labels, total, now),
        Sample("disk.used_bytes", labels, used, now),
        Sample("disk.free_bytes", labels, free, now),
        Sample("disk.used_percent", labels, 100.0 * used / visible if visible > 0 else 0.0, now),
    ]
    if st.f_files > 0:
        inodes_used = float(max(0, st.f_files - st.f_ffree))
        out += [
            Sample("disk.inodes_total", labels, float(st.f_files), now),
            Sample("disk.inodes_used", labels, inodes_used, now),
            Sample("disk.inodes_free", labels, float(st.f_ffree), now),
            Sample("disk.inodes_used_percent", labels, 100.0 * inodes_used / st.f_files, now),
        ]
    return out


class DiskStatistic(Statistic):
    def __init__(self, cfg: StatisticConfig, every: float, *,
                 procfs: str = DEFAULT_PROCFS,
                 statvfs: Callable[[str], Any] = os.statvfs,
                 is_dir: Callable[[str], bool] = os.path.isdir,
                 clock: Clock | None = None) -> None:
        super().__init__(cfg, every)
        self._procfs = procfs
        self._statvfs = statvfs
        self._is_dir = is_dir
        self._filter = NameFilter(cfg.include, cfg.exclude)
        self._refresh = Every(REFRESH_SECONDS, clock)
        self._mounts: list[Mount] = []
        self._errors = ItemErrors(cfg.name)

    def mounts(self) -> list[Mount]:
        """The mounts chosen at the last refresh."""
        return list(self._mounts)

    def _refresh_mounts(self) -> None:
        try:
            mounts = read_mounts(self._procfs)
            real = read_filesystems(self._procfs)
        except Exception:
            self._refresh.reset()           # try again next poll, not in a minute
            raise
        self._mounts = select_mounts(mounts, real, keep=self._filter, is_dir=self._is_dir)
        self._errors.retain(m.mountpoint for m in self._mounts)

    def collect(self, now: float) -> list[Sample]:
        if self._refresh.due():
            self._refresh_mounts()
        out: list[Sample] = []
        for m in self._mounts:
            try:
                st = self._statvfs(m.mountpoint)
            except OSError as e:
                self._errors.failed(m.mountpoint, e)
                continue
            self._errors.ok(m.mountpoint)
            out += usage_samples(m, st, now)
        return out


_DISKIO_FIELDS = (
    ("diskio.read_bytes_per_second", "read_bytes"),
    ("diskio.write_bytes_per_second", "write_bytes"),
    ("diskio.reads_per_second", "read_count"),
    ("diskio.writes_per_second", "write_count"),
)


def diskio_counters(per_device: Mapping[str, Any],
                    keep: Callable[[str], bool] = _keep_all) -> dict[tuple[str, Labels], float]:
    """``{(rate metric, labels): counter}`` from ``psutil.disk_io_counters(perdisk=True)``."""
    out: dict[tuple[str, Labels], float] = {}
    for device, c in per_device.items():
        if not keep(device):
            continue
        labels = labels_of(device=device)
        for metric, attr in _DISKIO_FIELDS:
            out[(metric, labels)] = float(getattr(c, attr))
    return out


def _read_disk_counters() -> Mapping[str, Any]:
    return psutil.disk_io_counters(perdisk=True, nowrap=False) or {}


class DiskIOStatistic(Statistic):
    def __init__(self, cfg: StatisticConfig, every: float, *,
                 read: Callable[[], Mapping[str, Any]] = _read_disk_counters,
                 clock: Clock | None = None) -> None:
        super().__init__(cfg, every)
        self._read = read
        self._clock: Clock = clock or SystemClock()
        self._filter = NameFilter(cfg.include, cfg.exclude, DISKIO_DEFAULT_EXCLUDE)
        self._rates: RateTracker[tuple[str, Labels]] = RateTracker()

    def collect(self, now: float) -> list[Sample]:
        counters = diskio_counters(self._read(), self._filter)
        return rate_samples(self._rates.observe(counters, self._clock.monotonic()), now)
