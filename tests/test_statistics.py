"""Built-in statistics: pure math (rates, cpu percent), /proc readers on fake
trees, psutil conversions on fake namedtuples, and smoke tests on this host."""

from __future__ import annotations

import math
import os
import re
import time
from collections import namedtuple
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from structlog.testing import capture_logs

from pharosd.clock import FakeClock
from pharosd.errors import ProbeError
from pharosd.model import Sample, labels_of
from pharosd.statistics.base import Every, ItemErrors, NameFilter
from pharosd.statistics.config import STATISTIC_NAMES, StatisticConfig
from pharosd.statistics.cpu import CpuStatistic, LoadStatistic, cpu_percent
from pharosd.statistics.disk import (
    DISKIO_DEFAULT_EXCLUDE,
    DiskIOStatistic,
    DiskStatistic,
    diskio_counters,
    select_mounts,
    usage_samples,
)
from pharosd.statistics.factory import build_statistic
from pharosd.statistics.memory import memory_samples, swap_samples
from pharosd.statistics.network import NetworkStatistic, network_counters
from pharosd.statistics.procfs import (
    CpuTimes,
    Mount,
    ProcessCounter,
    count_processes,
    parse_file_nr,
    parse_filesystems,
    parse_mounts,
    parse_proc_stat,
    process_state,
    read_file_nr,
    read_uptime,
)
from pharosd.statistics.rates import RateTracker, rate
from pharosd.statistics.sensors import TemperatureStatistic, temperature_samples
from pharosd.statistics.system import FilesStatistic, ProcessesStatistic, UptimeStatistic
from pharosd.types import Duration
from tests.support.daemon import wait_until

NOW = 1_700_000_000.0
DOCS = Path(__file__).resolve().parent.parent / "docs" / "metrics.md"


def cfg(name: str, **kw: object) -> StatisticConfig:
    return StatisticConfig(name=name, **kw)  # type: ignore[arg-type]


def by_metric(samples: list[Sample]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.metric, s.labels): s.value for s in samples}


def documented_metrics() -> set[str]:
    text = DOCS.read_text()
    return set(re.findall(r"`([a-z_]+\.[a-z0-9_]+)(?:\{[^}]*\})?`", text))


# -- rates -------------------------------------------------------------------


def test_rate_is_delta_over_elapsed() -> None:
    assert rate(100.0, 10.0, 300.0, 12.0) == 100.0
    assert rate(100.0, 10.0, 100.0, 12.0) == 0.0


@pytest.mark.parametrize(("prev", "t0", "cur", "t1"), [
    (100.0, 10.0, 50.0, 12.0),          # went backwards: reset or wrap
    (100.0, 10.0, 300.0, 10.0),         # no time passed
    (100.0, 10.0, 300.0, 9.0),          # time went backwards
    (100.0, 10.0, math.inf, 12.0),
    (100.0, 10.0, math.nan, 12.0),
])
def test_rate_refuses(prev: float, t0: float, cur: float, t1: float) -> None:
    assert rate(prev, t0, cur, t1) is None


def test_tracker_first_poll_reset_and_forgetting() -> None:
    r: RateTracker[str] = RateTracker()
    assert r.observe({"a": 10, "b": 5}, 0.0) == {}                 # first poll: no rate
    assert r.observe({"a": 30, "b": 5}, 2.0) == {"a": 10.0, "b": 0.0}
    assert r.observe({"a": 4, "b": 15}, 4.0) == {"b": 5.0}         # a reset: no rate for a
    assert r.observe({"a": 14, "b": 25}, 6.0) == {"a": 5.0, "b": 5.0}  # new baseline works
    assert r.observe({"a": 20}, 8.0) == {"a": 3.0}                  # b disappeared ...
    assert "b" not in r and len(r) == 1
    assert r.observe({"a": 20, "b": 1000}, 10.0) == {"a": 0.0}      # ... and is new again
    assert r.observe({"a": 20, "b": 1010}, 12.0) == {"a": 0.0, "b": 5.0}


def test_tracker_same_time_gives_no_rate_then_recovers() -> None:
    r: RateTracker[str] = RateTracker()
    r.observe({"a": 10}, 5.0)
    assert r.observe({"a": 20}, 5.0) == {}
    assert r.observe({"a": 40}, 7.0) == {"a": 10.0}


def test_tracker_non_finite_value_is_forgotten() -> None:
    r: RateTracker[str] = RateTracker()
    r.observe({"a": 10}, 0.0)
    assert r.observe({"a": math.nan}, 1.0) == {}
    assert "a" not in r
    assert r.observe({"a": 20}, 2.0) == {}


polls = st.lists(
    st.tuples(
        st.floats(min_value=0.001, max_value=1e4, allow_nan=False),   # elapsed
        st.dictionaries(st.sampled_from("abcd"),
                        st.floats(min_value=0, max_value=2.0**64, allow_nan=False)),
    ),
    min_size=1, max_size=30,
)


@given(polls)
def test_tracker_never_yields_a_negative_or_unseen_rate(
        seq: list[tuple[float, dict[str, float]]]) -> None:
    r: RateTracker[str] = RateTracker()
    t = 0.0
    previous: dict[str, float] = {}
    for dt, counters in seq:
        t += dt
        out = r.observe(counters, t)
        for key, value in out.items():
            assert value >= 0
            assert math.isfinite(value)
            assert key in previous                       # only series seen the poll before
            assert counters[key] >= previous[key]        # never across a decrease
        previous = counters


@given(st.lists(st.tuples(st.floats(min_value=0.001, max_value=1e4),
                          st.integers(min_value=0, max_value=2**40)),
                min_size=2, max_size=30),
       st.integers(min_value=0, max_value=2**40))
def test_tracker_equals_delta_over_dt_for_increasing_counters(
        steps: list[tuple[float, int]], start: int) -> None:
    r: RateTracker[str] = RateTracker()
    t, value = 0.0, start
    assert r.observe({"x": value}, t) == {}
    for dt, inc in steps:
        t_prev, v_prev = t, value
        t += dt
        value += inc
        out = r.observe({"x": value}, t)
        assert out["x"] == pytest.approx((value - v_prev) / (t - t_prev), rel=1e-9)


# -- cpu -----------------------------------------------------------------------


def test_cpu_percent_from_two_snapshots() -> None:
    a = CpuTimes(user=100, system=50, idle=800, iowait=40, steal=10)
    b = CpuTimes(user=130, system=60, idle=850, iowait=50, steal=10 + 10)
    p = cpu_percent(a, b)
    assert p is not None
    # deltas: user 30, system 10, idle 50, iowait 10, steal 10 -> total 110
    assert p.busy == pytest.approx(100 * 50 / 110)
    assert p.iowait == pytest.approx(100 * 10 / 110)
    assert p.steal == pytest.approx(100 * 10 / 110)


def test_cpu_percent_no_time_passed_and_backwards_fields() -> None:
    a = CpuTimes(user=100, idle=800, iowait=40)
    assert cpu_percent(a, a) is None
    b = CpuTimes(user=110, idle=830, iowait=30)           # iowait went backwards
    p = cpu_percent(a, b)
    assert p is not None
    assert p.iowait == 0.0
    assert p.busy == pytest.approx(100 * 10 / 40)


times = st.builds(CpuTimes, *[st.floats(min_value=0, max_value=1e9)] * 8)


@given(times, times)
def test_cpu_percent_is_within_bounds(a: CpuTimes, b: CpuTimes) -> None:
    p = cpu_percent(a, b)
    if p is not None:
        for v in (p.busy, p.iowait, p.steal):
            assert 0.0 <= v <= 100.0 + 1e-9
        assert p.busy + p.iowait <= 100.0 + 1e-6


PROC_STAT = """\
cpu  {u} 0 {s} {i} 0 0 0 0 0 0
cpu0 {u} 0 {s} {i} 0 0 0 0 0 0
cpu2 10 0 10 {i2} 0 0 0 0 0 0
intr 1 2 3
ctxt 346574
btime 1795824223
processes 7275
procs_running 3
procs_blocked 1
"""


def write_proc_stat(root: Path, u: int, s: int, i: int, i2: int) -> None:
    (root / "stat").write_text(PROC_STAT.format(u=u, s=s, i=i, i2=i2))


def test_parse_proc_stat_keeps_kernel_cpu_numbers() -> None:
    ps = parse_proc_stat(PROC_STAT.format(u=1, s=2, i=3, i2=4))
    assert ps.total == CpuTimes(user=1, system=2, idle=3)
    assert sorted(ps.cores) == ["0", "2"]             # cpu1 offline: no shift
    assert ps.cores["2"].idle == 4
    assert (ps.procs_running, ps.procs_blocked) == (3, 1)


def test_parse_proc_stat_old_kernel_with_fewer_fields() -> None:
    ps = parse_proc_stat("cpu 1 2 3 4\n")
    assert ps.total == CpuTimes(user=1, nice=2, system=3, idle=4)
    assert ps.procs_running is None


def test_cpu_statistic_on_a_fake_tree(tmp_path: Path) -> None:
    stat = CpuStatistic(cfg("cpu", per_core=True), 10.0, procfs=str(tmp_path))
    write_proc_stat(tmp_path, u=100, s=100, i=800, i2=0)
    assert stat.collect(NOW) == []                           # first poll: nothing
    write_proc_stat(tmp_path, u=175, s=125, i=900, i2=100)
    got = by_metric(stat.collect(NOW + 10))
    assert got[("cpu.percent", ())] == pytest.approx(50.0)   # 100 busy of 200
    assert got[("cpu.iowait_percent", ())] == 0.0
    assert got[("cpu.steal_percent", ())] == 0.0
    assert got[("cpu.core_percent", labels_of(cpu="0"))] == pytest.approx(50.0)
    assert got[("cpu.core_percent", labels_of(cpu="2"))] == 0.0
    assert all(s.ts == NOW + 10 for s in stat.collect(NOW + 10))


def test_cpu_statistic_without_per_core(tmp_path: Path) -> None:
    stat = CpuStatistic(cfg("cpu"), 10.0, procfs=str(tmp_path))
    write_proc_stat(tmp_path, u=100, s=100, i=800, i2=0)
    stat.collect(NOW)
    write_proc_stat(tmp_path, u=110, s=100, i=890, i2=0)
    assert {s.metric for s in stat.collect(NOW)} == {
        "cpu.percent", "cpu.iowait_percent", "cpu.steal_percent"}


def test_load_per_core_divides_by_cpu_count() -> None:
    got = by_metric(LoadStatistic(cfg("load"), 10.0).collect(NOW))
    n = os.cpu_count() or 1
    for window in ("1", "5", "15"):
        assert got[(f"load.{window}", ())] >= 0
        assert got[(f"load.per_core_{window}", ())] == pytest.approx(
            got[(f"load.{window}", ())] / n)


# -- processes, files, uptime ------------------------------------------------


def test_process_state_after_the_last_parenthesis() -> None:
    assert process_state(b"1 (systemd) S 0 1 1") == "S"
    assert process_state(b"42 (evil) Z (x) R 1 2 3") == "R"
    assert process_state(b"7 (a b)) Z 1 1") == "Z"
    assert process_state(b"garbage") is None
    assert process_state(b"1 (x)") is None


def make_proc_tree(root: Path, states: dict[str, str]) -> None:
    for pid, state in states.items():
        (root / pid).mkdir()
        (root / pid / "stat").write_bytes(f"{pid} (cmd {pid}) {state} 1 1 1 0".encode())
    (root / "self").mkdir()                    # not a pid
    (root / "sys").mkdir()
    (root / "99999").mkdir()                   # exited between listing and read: no stat
    write_proc_stat(root, u=1, s=1, i=1, i2=1)


def test_count_processes_on_a_fake_tree(tmp_path: Path) -> None:
    make_proc_tree(tmp_path, {"1": "S", "2": "R", "30": "Z", "31": "Z", "40": "D"})
    counts = count_processes(str(tmp_path))
    assert (counts.total, counts.zombie) == (5, 2)


def test_the_process_counter_follows_real_processes_through_exit_and_reaping() -> None:
    """The counter keeps each process's stat file open between counts: a child that
    exits is counted as a zombie through its kept file, and once reaped it is neither
    counted nor kept; close() gives every file back."""
    import subprocess

    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    before = open_fds()
    counter = ProcessCounter()
    child = subprocess.Popen(["sleep", "60"])
    try:
        first = counter.count()
        assert str(child.pid) in counter._fds
        assert open_fds() > before + 1                     # files kept open
        child.kill()
        assert wait_until(lambda: counter.count().zombie == first.zombie + 1, 10.0)
    finally:
        child.kill()
        child.wait()
    after = counter.count()
    assert after.zombie == first.zombie and str(child.pid) not in counter._fds
    again = ProcessCounter(max_open=0).count()              # nothing kept: the plain count
    assert abs(again.total - after.total) <= 5
    counter.close()
    assert counter._fds == {} and open_fds() == before


def test_processes_statistic_on_a_fake_tree(tmp_path: Path) -> None:
    make_proc_tree(tmp_path, {"1": "S", "2": "Z"})
    got = by_metric(ProcessesStatistic(cfg("processes"), 10.0, procfs=str(tmp_path)).collect(NOW))
    assert got == {("processes.total", ()): 2.0, ("processes.zombie", ()): 1.0,
                   ("processes.running", ()): 3.0, ("processes.blocked", ()): 1.0}


def test_files_on_a_fake_tree(tmp_path: Path) -> None:
    (tmp_path / "sys" / "fs").mkdir(parents=True)
    (tmp_path / "sys" / "fs" / "file-nr").write_text("1000\t200\t8000\n")
    assert read_file_nr(str(tmp_path)).open == 800
    got = by_metric(FilesStatistic(cfg("files"), 10.0, procfs=str(tmp_path)).collect(NOW))
    assert got == {("files.open", ()): 800.0, ("files.max", ()): 8000.0,
                   ("files.used_percent", ()): 10.0}
    assert parse_file_nr("5 0 9223372036854775807").max == 2**63 - 1


def test_uptime_on_a_fake_tree(tmp_path: Path) -> None:
    (tmp_path / "uptime").write_text("12345.67 2345.00\n")
    assert read_uptime(str(tmp_path)) == 12345.67
    [s] = UptimeStatistic(cfg("uptime"), 10.0, procfs=str(tmp_path)).collect(NOW)
    assert (s.metric, s.value, s.ts) == ("uptime.seconds", 12345.67, NOW)


def test_missing_proc_file_fails_the_statistic(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        FilesStatistic(cfg("files"), 10.0, procfs=str(tmp_path)).collect(NOW)


# -- disk ----------------------------------------------------------------------


FILESYSTEMS = "nodev\tsysfs\nnodev\ttmpfs\nnodev\tproc\n\text4\n\txfs\n\tsquashfs\n" \
              "nodev\toverlay\nnodev\tnfs4\nnodev\tzfs\n\tvfat\n"


def test_parse_filesystems_keeps_block_device_types() -> None:
    assert parse_filesystems(FILESYSTEMS) == {"ext4", "xfs", "squashfs", "vfat"}


def test_parse_mounts_unescapes_octal() -> None:
    [m] = parse_mounts("/dev/sdb1 /mnt/my\\040disk ext4 rw 0 0\n")
    assert m == Mount("/dev/sdb1", "/mnt/my disk", "ext4")


def select(text: str, *, dirs: set[str] | None = None, **kw: object) -> list[str]:
    def is_dir(p: str) -> bool:
        return dirs is None or p in dirs
    mounts = select_mounts(parse_mounts(text), parse_filesystems(FILESYSTEMS),
                           is_dir=is_dir, **kw)  # type: ignore[arg-type]
    return [m.mountpoint for m in mounts]


def test_select_mounts_real_filesystems_only() -> None:
    text = """\
proc /proc proc rw 0 0
tmpfs /run tmpfs rw 0 0
/dev/sda1 / ext4 rw 0 0
/dev/sda2 /home xfs rw 0 0
/dev/loop3 /snap/core/1 squashfs ro 0 0
server:/export /mnt/nfs nfs4 rw 0 0
tank/data /tank/data zfs rw 0 0
/dev/sdb1 /boot/efi vfat rw 0 0
"""
    assert select(text) == ["/", "/boot/efi", "/home", "/tank/data"]


def test_select_mounts_keeps_an_overlay_root() -> None:
    text = """\
overlay / overlay rw,lowerdir=/a 0 0
proc /proc proc rw 0 0
tmpfs /dev tmpfs rw 0 0
/dev/vda /etc/hosts ext4 rw 0 0
/dev/vda /etc/resolv.conf ext4 rw 0 0
"""
    # /etc/hosts is a bind-mounted file, not a filesystem anyone means
    assert select(text, dirs={"/"}) == ["/"]


def test_select_mounts_dedupes_bind_mounts_of_one_device() -> None:
    text = """\
/dev/sda2 /srv/data ext4 rw 0 0
/dev/sda1 / ext4 rw 0 0
/dev/sda1 /var/lib/kubelet/pods/x ext4 rw 0 0
/dev/sda2 /data ext4 rw 0 0
"""
    assert select(text) == ["/", "/data"]


def test_select_mounts_last_mount_on_a_path_wins() -> None:
    text = "rootfs / rootfs rw 0 0\n/dev/sda1 / ext4 rw 0 0\n"
    [m] = select_mounts(parse_mounts(text), parse_filesystems(FILESYSTEMS),
                        is_dir=lambda _: True)
    assert m.device == "/dev/sda1"


def test_select_mounts_applies_the_filter() -> None:
    text = ("/dev/sda1 / ext4 rw 0 0\n/dev/sdb1 /backup ext4 rw 0 0\n"
            "/dev/sdc1 /scratch ext4 rw 0 0\n")
    keep = NameFilter(exclude=["/scratch*"])
    assert select(text, keep=keep) == ["/", "/backup"]
    assert select(text, keep=NameFilter(include=["/b*"])) == ["/backup"]


Statvfs = namedtuple("Statvfs", "f_bsize f_frsize f_blocks f_bfree f_bavail f_files f_ffree")


def test_usage_samples_like_df() -> None:
    m = Mount("/dev/sda1", "/", "ext4")
    # 1000 blocks of 4 KiB; 300 free of which 250 for users; 100 inodes, 75 free
    got = by_metric(usage_samples(m, Statvfs(4096, 4096, 1000, 300, 250, 100, 75), NOW))
    labels = labels_of(mount="/", device="/dev/sda1", fstype="ext4")
    assert got[("disk.total_bytes", labels)] == 1000 * 4096
    assert got[("disk.used_bytes", labels)] == 700 * 4096
    assert got[("disk.free_bytes", labels)] == 250 * 4096
    assert got[("disk.used_percent", labels)] == pytest.approx(100 * 700 / 950)
    assert got[("disk.inodes_used", labels)] == 25
    assert got[("disk.inodes_used_percent", labels)] == 25.0


def test_usage_samples_without_inode_limit() -> None:
    m = Mount("/dev/sda1", "/", "btrfs")
    metrics = {s.metric for s in usage_samples(m, Statvfs(4096, 4096, 10, 5, 5, 0, 0), NOW)}
    assert metrics == {"disk.total_bytes", "disk.used_bytes", "disk.free_bytes",
                       "disk.used_percent"}


def fake_disk_tree(root: Path, mounts: str) -> None:
    (root / "self").mkdir(exist_ok=True)
    (root / "self" / "mounts").write_text(mounts)
    (root / "filesystems").write_text(FILESYSTEMS)


def test_disk_statistic_skips_a_failing_mount_and_logs_once(tmp_path: Path) -> None:
    fake_disk_tree(tmp_path, "/dev/sda1 / ext4 rw 0 0\n/dev/sdb1 /gone ext4 rw 0 0\n")
    broken = {"/gone"}

    def statvfs(path: str) -> Statvfs:
        if path in broken:
            raise FileNotFoundError(2, "No such file or directory", path)
        return Statvfs(4096, 4096, 1000, 500, 500, 100, 50)

    stat = DiskStatistic(cfg("disk"), 10.0, procfs=str(tmp_path), statvfs=statvfs,
                         is_dir=lambda _: True)
    with capture_logs() as logs:
        for _ in range(3):
            mounts = {s.label("mount") for s in stat.collect(NOW)}
            assert mounts == {"/"}
        broken.clear()
        assert {s.label("mount") for s in stat.collect(NOW)} == {"/", "/gone"}
    events = [(e["event"], e.get("item")) for e in logs]
    assert events == [("statistic_item_failed", "/gone"), ("statistic_item_recovered", "/gone")]


def test_disk_statistic_rereads_mounts_at_most_once_a_minute(tmp_path: Path) -> None:
    fake_disk_tree(tmp_path, "/dev/sda1 / ext4 rw 0 0\n")
    clock = FakeClock()
    stat = DiskStatistic(cfg("disk"), 10.0, procfs=str(tmp_path),
                         statvfs=lambda _: Statvfs(4096, 4096, 10, 5, 5, 10, 5),
                         is_dir=lambda _: True, clock=clock)
    assert {s.label("mount") for s in stat.collect(NOW)} == {"/"}
    fake_disk_tree(tmp_path, "/dev/sda1 / ext4 rw 0 0\n/dev/sdb1 /new ext4 rw 0 0\n")
    clock.advance(59)
    assert {s.label("mount") for s in stat.collect(NOW)} == {"/"}
    clock.advance(1)
    assert {s.label("mount") for s in stat.collect(NOW)} == {"/", "/new"}


# -- diskio and network ------------------------------------------------------


DiskIO = namedtuple("DiskIO", "read_count write_count read_bytes write_bytes")
NetIO = namedtuple("NetIO", "bytes_sent bytes_recv packets_sent packets_recv "
                            "errin errout dropin dropout")


def test_name_filter_defaults_include_and_exclude() -> None:
    f = NameFilter(default_exclude=DISKIO_DEFAULT_EXCLUDE)
    assert [f(n) for n in ("sda", "sda1", "nvme0n1p2", "loop0", "ram1", "zram0")] == \
        [True, True, True, False, False, False]
    f = NameFilter(include=["loop*"], default_exclude=DISKIO_DEFAULT_EXCLUDE)
    assert (f("loop0"), f("sda")) == (True, False)          # include names it all
    f = NameFilter(exclude=["sd?1"], default_exclude=DISKIO_DEFAULT_EXCLUDE)
    assert (f("sda"), f("sda1"), f("loop0")) == (True, False, False)


def test_diskio_counters_names_and_filter() -> None:
    c = diskio_counters({"sda": DiskIO(1, 2, 3, 4), "loop0": DiskIO(9, 9, 9, 9)},
                        NameFilter(default_exclude=DISKIO_DEFAULT_EXCLUDE))
    sda = labels_of(device="sda")
    assert c == {("diskio.reads_per_second", sda): 1.0, ("diskio.writes_per_second", sda): 2.0,
                 ("diskio.read_bytes_per_second", sda): 3.0,
                 ("diskio.write_bytes_per_second", sda): 4.0}


def test_diskio_statistic_rates_and_device_replacement() -> None:
    clock = FakeClock()
    reading: dict[str, DiskIO] = {"sda": DiskIO(10, 20, 1000, 2000),
                                  "loop1": DiskIO(0, 0, 0, 0)}
    stat = DiskIOStatistic(cfg("diskio"), 10.0, read=lambda: reading, clock=clock)
    assert stat.collect(NOW) == []
    clock.advance(10)
    reading = {"sda": DiskIO(30, 20, 6000, 2000), "loop1": DiskIO(5, 5, 5, 5)}
    sda = labels_of(device="sda")
    assert by_metric(stat.collect(NOW)) == {
        ("diskio.reads_per_second", sda): 2.0, ("diskio.writes_per_second", sda): 0.0,
        ("diskio.read_bytes_per_second", sda): 500.0,
        ("diskio.write_bytes_per_second", sda): 0.0}
    clock.advance(10)
    reading = {"sda": DiskIO(1, 1, 10, 10)}               # replaced: counters restart
    assert stat.collect(NOW) == []
    clock.advance(10)
    reading = {"sda": DiskIO(11, 1, 10, 10)}
    assert by_metric(stat.collect(NOW))[("diskio.reads_per_second", sda)] == 1.0


def test_network_statistic_rates_and_default_exclusions() -> None:
    clock = FakeClock()
    reading = {"eth0": NetIO(100, 200, 1, 2, 0, 0, 0, 0), "lo": NetIO(5, 5, 5, 5, 5, 5, 5, 5),
               "veth12ab": NetIO(1, 1, 1, 1, 1, 1, 1, 1)}
    stat = NetworkStatistic(cfg("network"), 10.0, read=lambda: reading, clock=clock)
    assert stat.collect(NOW) == []
    clock.advance(2)
    reading = {"eth0": NetIO(300, 1200, 5, 12, 2, 0, 4, 0), "lo": NetIO(9, 9, 9, 9, 9, 9, 9, 9),
               "veth12ab": NetIO(2, 2, 2, 2, 2, 2, 2, 2)}
    eth0 = labels_of(interface="eth0")
    assert by_metric(stat.collect(NOW)) == {
        ("network.tx_bytes_per_second", eth0): 100.0,
        ("network.rx_bytes_per_second", eth0): 500.0,
        ("network.tx_packets_per_second", eth0): 2.0,
        ("network.rx_packets_per_second", eth0): 5.0,
        ("network.rx_errors_per_second", eth0): 1.0,
        ("network.tx_errors_per_second", eth0): 0.0,
        ("network.rx_drops_per_second", eth0): 2.0,
        ("network.tx_drops_per_second", eth0): 0.0,
    }


def test_network_include_brings_back_lo() -> None:
    c = network_counters({"lo": NetIO(1, 2, 3, 4, 5, 6, 7, 8), "eth0": NetIO(*[0] * 8)},
                         NameFilter(include=["lo"], default_exclude=("lo",)))
    assert {labels for _, labels in c} == {labels_of(interface="lo")}


# -- memory, swap, temperature -------------------------------------------------


def test_memory_samples_used_is_total_minus_available() -> None:
    VM = namedtuple("VM", "total available")
    got = by_metric(memory_samples(VM(1000, 250), NOW))
    assert got == {("memory.total_bytes", ()): 1000.0, ("memory.available_bytes", ()): 250.0,
                   ("memory.used_bytes", ()): 750.0, ("memory.used_percent", ()): 75.0}


def test_swap_samples_without_swap_is_zero() -> None:
    SW = namedtuple("SW", "total used")
    assert by_metric(swap_samples(SW(0, 0), NOW))[("swap.used_percent", ())] == 0.0
    assert by_metric(swap_samples(SW(200, 50), NOW))[("swap.used_percent", ())] == 25.0


T = namedtuple("T", "label current high critical")


def test_temperature_labels() -> None:
    sensors = {"coretemp": [T("Package id 0", 50.0, 80, 100), T("Core 0", 48.0, 80, 100)],
               "acpitz": [T("", 27.8, None, None), T("", 29.8, None, None)],
               "nvme": [T("Sensor", 40.0, None, None), T("Sensor", 41.0, None, None)]}
    got = by_metric(temperature_samples(sensors, NOW))
    assert got == {
        ("temperature.celsius", labels_of(sensor="coretemp", label="Package id 0")): 50.0,
        ("temperature.celsius", labels_of(sensor="coretemp", label="Core 0")): 48.0,
        ("temperature.celsius", labels_of(sensor="acpitz", label="temp1")): 27.8,
        ("temperature.celsius", labels_of(sensor="acpitz", label="temp2")): 29.8,
        ("temperature.celsius", labels_of(sensor="nvme", label="Sensor")): 40.0,
        ("temperature.celsius", labels_of(sensor="nvme", label="Sensor_2")): 41.0,
    }
    only = temperature_samples(sensors, NOW, NameFilter(exclude=["acpi*", "nvme"]))
    assert {s.label("sensor") for s in only} == {"coretemp"}


def test_temperature_without_sensors_is_empty() -> None:
    assert TemperatureStatistic(cfg("temperature"), 10.0, read=dict).collect(NOW) == []


# -- helpers -------------------------------------------------------------------


def test_item_errors_log_each_change_once() -> None:
    errs = ItemErrors("disk")
    with capture_logs() as logs:
        errs.failed("/a", PermissionError(13, "Permission denied"))
        errs.failed("/a", PermissionError(13, "Permission denied"))
        errs.failed("/a", OSError(5, "Input/output error"))
        errs.ok("/a")
        errs.ok("/a")
        errs.failed("/b", OSError(5, "x"))
        errs.retain(["/a"])
    assert [(e["event"], e["item"]) for e in logs] == [
        ("statistic_item_failed", "/a"), ("statistic_item_failed", "/a"),
        ("statistic_item_recovered", "/a"), ("statistic_item_failed", "/b")]
    assert errs.failing() == {}


def test_every_gate() -> None:
    clock = FakeClock()
    gate = Every(60.0, clock)
    assert gate.due()
    assert not gate.due()
    clock.advance(60)
    assert gate.due()
    gate.reset()
    assert gate.due()


# -- factory -----------------------------------------------------------------


def test_build_statistic_every_and_key() -> None:
    a = build_statistic(cfg("memory"), 10.0)
    assert (a.name, a.every, a.blocking) == ("memory", 10.0, False)
    assert build_statistic(cfg("memory", every=Duration(5.0)), 10.0).every == 5.0
    assert build_statistic(cfg("memory"), 10.0).key == a.key         # same config
    assert build_statistic(cfg("memory"), 5.0).key != a.key           # every changed
    assert build_statistic(cfg("disk", exclude=("/x",)), 10.0).key != \
        build_statistic(cfg("disk"), 10.0).key


def test_build_statistic_unknown_name() -> None:
    with pytest.raises(ProbeError, match="unknown statistic 'nope'"):
        build_statistic(cfg("nope"), 10.0)


# -- this host ---------------------------------------------------------------


def collect_twice(name: str, **kw: object) -> list[Sample]:
    stat = build_statistic(cfg(name, **kw), 10.0)
    stat.collect(time.time())
    time.sleep(0.1)         # let counters move; rates need time to pass
    return stat.collect(time.time())


@pytest.mark.parametrize("name", STATISTIC_NAMES)
def test_every_statistic_emits_documented_metrics_here(name: str) -> None:
    documented = documented_metrics()
    samples = collect_twice(name, per_core=True, include=("*",) if name in (
        "network", "diskio") else ())
    for s in samples:
        assert s.metric in documented, s.metric
        assert s.metric.split(".")[0] == name
        assert math.isfinite(s.value)
        assert list(s.labels) == sorted(s.labels)
        if s.metric.endswith(("percent", "per_second")) or s.metric.startswith("load."):
            assert s.value >= 0
        if (s.metric.endswith("_percent") or s.metric == "cpu.percent") \
                and s.metric != "services.cpu_percent":     # 100 = one cpu: can pass 100
            assert s.value <= 100.0 + 1e-9


def test_host_memory() -> None:
    got = by_metric(collect_twice("memory"))
    assert 0 < got[("memory.used_percent", ())] < 100
    assert got[("memory.total_bytes", ())] > got[("memory.available_bytes", ())] > 0


def test_host_cpu() -> None:
    got = by_metric(collect_twice("cpu", per_core=True))
    assert 0 <= got[("cpu.percent", ())] <= 100
    cores = [labels for metric, labels in got if metric == "cpu.core_percent"]
    assert cores, "per_core gives at least one cpu"


def test_host_disk_reports_root_or_some_mount() -> None:
    samples = collect_twice("disk")
    mounts = {s.label("mount") for s in samples}
    assert mounts, "at least one real filesystem"
    if "/" in mounts:
        total = by_metric(samples)[("disk.total_bytes", next(
            s.labels for s in samples if s.label("mount") == "/"))]
        assert total > 0


def test_host_network_sees_loopback_when_included() -> None:
    samples = collect_twice("network", include=("lo",))
    assert {s.label("interface") for s in samples} == {"lo"}
    assert len(samples) == 8


def test_host_default_network_leaves_out_loopback() -> None:
    assert all(s.label("interface") != "lo" for s in collect_twice("network"))


def test_host_uptime_processes_files() -> None:
    assert by_metric(collect_twice("uptime"))[("uptime.seconds", ())] > 0
    procs = by_metric(collect_twice("processes"))
    assert procs[("processes.total", ())] >= 1
    assert procs[("processes.running", ())] >= 1      # this test is running
    files = by_metric(collect_twice("files"))
    assert files[("files.open", ())] > 0
    assert files[("files.max", ())] >= files[("files.open", ())]
