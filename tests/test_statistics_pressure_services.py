"""The pressure statistic (PSI) on fake /proc trees and on this host's /proc, and the
services statistic on recorded ``systemctl show`` output with a fake cgroup tree.

tests/fixtures/systemd/*.txt were recorded from systemd 252 (Debian 12) booted in a
container, with ``systemctl show --no-pager -p Id,LoadState,ActiveState,SubState,
NRestarts,ControlGroup UNIT...``: crashy.service exits 1 and was restarted until its
start limit (failed, NRestarts=3), worker.service runs, nightly.service is a finished
oneshot, auditd.service is referenced but not installed (not-found). The machines the
suite runs on have no systemd as PID 1, so the command itself is replaced here.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from pharosd.clock import FakeClock
from pharosd.config.loader import parse_config
from pharosd.errors import ConfigError, ProbeError
from pharosd.model import Sample
from pharosd.statistics import services as services_module
from pharosd.statistics.config import StatisticConfig
from pharosd.statistics.factory import build_statistic
from pharosd.statistics.pressure import PressureStatistic, parse_pressure
from pharosd.statistics.services import (
    ACTIVE_STATES,
    ServicesStatistic,
    parse_cpu_stat,
    parse_show,
    run_systemctl,
)
from tests.support.daemon import wait_until

FIXTURES = Path(__file__).parent / "fixtures" / "systemd"

MEMORY = """some avg10=1.50 avg60=0.75 avg300=0.25 total=1000000
full avg10=0.50 avg60=0.25 avg300=0.10 total=400000
"""
CPU_OLD = "some avg10=43.36 avg60=10.90 avg300=3.22 total=14185474\n"        # < 5.13
CPU_NEW = CPU_OLD + "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"       # >= 5.13


def values(samples: Sequence[Sample]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.metric, s.labels): s.value for s in samples}


def names(samples: Sequence[Sample]) -> set[str]:
    return {s.metric for s in samples}


# -- pressure -----------------------------------------------------------------------------


def test_parse_pressure_lines() -> None:
    lines = parse_pressure(MEMORY)
    assert (lines["some"].avg10, lines["some"].avg300, lines["some"].total) == (1.5, 0.25, 1e6)
    assert lines["full"].avg60 == 0.25
    assert set(parse_pressure(CPU_OLD)) == {"some"}
    for junk in ("", "some avg10=x avg60=0 avg300=0 total=0\n", "full avg10=0\n"):
        with pytest.raises(ValueError):
            parse_pressure(junk)


def fake_proc(tmp: Path, files: dict[str, str]) -> Path:
    (tmp / "pressure").mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (tmp / "pressure" / name).write_text(text)
    return tmp


@pytest.mark.parametrize("cpu", [CPU_OLD, CPU_NEW], ids=["cpu-without-full", "cpu-full-zero"])
def test_pressure_on_a_fake_tree(tmp_path: Path, cpu: str) -> None:
    proc = fake_proc(tmp_path, {"cpu": cpu, "memory": MEMORY, "io": MEMORY})
    clock = FakeClock()
    stat = PressureStatistic(StatisticConfig(name="pressure"), 10, procfs=str(proc),
                             clock=clock)
    first = stat.collect(1.0)
    averages = {f"pressure.{r}_{k}_{a}" for r in ("cpu", "memory", "io")
                for k in ("some", "full") for a in ("avg10", "avg60", "avg300")}
    averages -= {"pressure.cpu_full_avg10", "pressure.cpu_full_avg60",
                 "pressure.cpu_full_avg300"}       # the same set with and without the line
    assert names(first) == averages
    assert values(first)[("pressure.memory_full_avg60", ())] == 0.25
    # ten seconds later: memory stalled 2.5 s more (some), 1 s (full): 25 % and 10 %
    # io's counter says 12 s in 10 s (the counter and the clock are read a moment apart)
    fake_proc(tmp_path, {"memory": MEMORY.replace("total=1000000", "total=3500000")
                         .replace("total=400000", "total=1400000"),
                         "io": MEMORY.replace("total=1000000", "total=13000000")})
    clock.advance(10)
    got = values(stat.collect(2.0))
    assert got[("pressure.memory_some_percent", ())] == pytest.approx(25.0)
    assert got[("pressure.memory_full_percent", ())] == pytest.approx(10.0)
    assert got[("pressure.io_some_percent", ())] == 100.0       # a share: never past 100
    assert got[("pressure.cpu_some_percent", ())] == 0.0
    assert ("pressure.cpu_full_percent", ()) not in got


def test_pressure_missing_file_is_logged_once(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, {"memory": MEMORY, "io": "garbage\n"})
    stat = PressureStatistic(StatisticConfig(name="pressure"), 10, procfs=str(proc),
                             clock=FakeClock())
    with capture_logs() as logs:
        first = stat.collect(1.0)
        second = stat.collect(2.0)
    assert {s.metric.split("_")[0] for s in first + second} == {"pressure.memory"}
    failed = [(e["item"], e["error"].split(":")[0]) for e in logs
              if e["event"] == "statistic_item_failed"]
    assert sorted(failed) == [("cpu", "FileNotFoundError"), ("io", "ValueError")]
    # a kernel without PSI at all: nothing, and no exception
    empty = PressureStatistic(StatisticConfig(name="pressure"), 10, procfs=str(tmp_path / "x"))
    assert empty.collect(1.0) == []


@pytest.mark.skipif(not os.path.exists("/proc/pressure/memory"),
                    reason="this kernel has no PSI (/proc/pressure)")
def test_pressure_on_this_hosts_proc() -> None:
    stat = build_statistic(StatisticConfig(name="pressure"), 10)
    stat.collect(1.0)
    got = values(stat.collect(2.0))
    for resource in ("cpu", "memory", "io"):
        for avg in ("avg10", "avg60", "avg300"):
            assert 0 <= got[(f"pressure.{resource}_some_{avg}", ())] <= 100
        assert got[(f"pressure.{resource}_some_percent", ())] >= 0
    assert ("pressure.memory_full_avg10", ()) in got
    assert not any(m.startswith("pressure.cpu_full") for m, _ in got)


# -- services -------------------------------------------------------------------------------


def test_parse_show_on_recorded_output() -> None:
    units = parse_show((FIXTURES / "show-units.txt").read_text())
    assert [u["Id"] for u in units] == [
        "crashy.service", "worker.service", "nightly.service", "dbus.service",
        "auditd.service", "systemd-journald.service", "getty@tty1.service"]
    crashy = units[0]
    assert (crashy["ActiveState"], crashy["SubState"], crashy["NRestarts"],
            crashy["ControlGroup"]) == ("failed", "failed", "3", "")
    assert units[1]["ControlGroup"] == "/system.slice/worker.service"
    (missing,) = parse_show((FIXTURES / "show-not-loaded.txt").read_text())
    assert missing["LoadState"] == "not-found"
    with pytest.raises(ValueError, match="unexpected line"):
        parse_show("Id=x.service\nFailed to connect to bus: No such file or directory\n")


def test_active_state_mapping_is_the_documented_one() -> None:
    assert ACTIVE_STATES == {"failed": -1, "inactive": 0, "active": 1, "reloading": 2,
                             "activating": 3, "deactivating": 4, "maintenance": 5,
                             "refreshing": 6}
    doc = (Path(__file__).parent.parent / "docs" / "metrics.md").read_text()
    for state, number in ACTIVE_STATES.items():
        assert f"{state} {number}" in doc, state


def test_parse_cpu_stat() -> None:
    assert parse_cpu_stat("usage_usec 141834\nuser_usec 52090\nsystem_usec 89743\n") == 141834
    assert parse_cpu_stat("user_usec 1\n") is None


class Systemctl:
    """Stands in for ``systemctl``: records the argv, answers with a fixture."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.calls: list[list[str]] = []

    def __call__(self, argv: Sequence[str], timeout: float) -> str:
        self.calls.append(list(argv))
        return self.text


def cgroup_tree(tmp: Path, usage: dict[str, int], memory: dict[str, int]) -> Path:
    root = tmp / "cgroup"
    (root / "system.slice").mkdir(parents=True, exist_ok=True)
    for name in ("cgroup.procs", "cgroup.controllers"):
        (root / name).write_text("")
    for unit, usec in usage.items():
        (root / "system.slice" / unit).mkdir(exist_ok=True)
        (root / "system.slice" / unit / "cpu.stat").write_text(
            f"usage_usec {usec}\nuser_usec 0\nsystem_usec {usec}\n")
    for unit, current in memory.items():
        (root / "system.slice" / unit / "memory.current").write_text(f"{current}\n")
    return root


def services(tmp: Path, runner: Systemctl, clock: FakeClock, **kw: object) -> ServicesStatistic:
    (tmp / "run-systemd").mkdir(exist_ok=True)
    cfg = StatisticConfig(name="services", **kw)  # type: ignore[arg-type]
    return ServicesStatistic(cfg, 30, runner=runner, systemd_dir=str(tmp / "run-systemd"),
                             cgroup_root=str(tmp / "cgroup"), clock=clock)


def test_services_on_recorded_output_and_a_fake_cgroup_tree(tmp_path: Path) -> None:
    runner = Systemctl((FIXTURES / "show-units.txt").read_text())
    clock = FakeClock()
    cgroup_tree(tmp_path, {"worker.service": 1_000_000, "dbus.service": 50_000},
                {"worker.service": 4_194_304})        # hybrid: dbus has no memory.current
    stat = services(tmp_path, runner, clock)
    assert stat.blocking is True
    first = values(stat.collect(5.0))
    u = (("unit", "crashy.service"),)
    assert first[("services.active_state", u)] == -1
    assert first[("services.restarts", u)] == 3
    assert first[("services.sub_state", (("state", "failed"), ("unit", "crashy.service")))] == 1
    assert first[("services.active_state", (("unit", "worker.service"),))] == 1
    assert first[("services.active_state", (("unit", "nightly.service"),))] == 0
    assert first[("services.memory_bytes", (("unit", "worker.service"),))] == 4_194_304
    assert not any(dict(labels).get("unit") == "auditd.service" for _, labels in first)
    assert "services.cpu_percent" not in {m for m, _ in first}        # no baseline yet
    assert runner.calls == [["systemctl", "show", "--no-pager", "-p",
                             "Id,LoadState,ActiveState,SubState,NRestarts,ControlGroup",
                             "--", "*.service"]]
    # 10 s later worker used 2.5 s of cpu (25 %), dbus 0.1 s (1 %)
    cgroup_tree(tmp_path, {"worker.service": 3_500_000, "dbus.service": 150_000}, {})
    clock.advance(10)
    second = values(stat.collect(15.0))
    assert second[("services.cpu_percent", (("unit", "worker.service"),))] == \
        pytest.approx(25.0)
    assert second[("services.cpu_percent", (("unit", "dbus.service"),))] == pytest.approx(1.0)


def test_services_match_and_exclude(tmp_path: Path) -> None:
    runner = Systemctl((FIXTURES / "show-units.txt").read_text())
    stat = services(tmp_path, runner, FakeClock(), match=("*.service", "getty@*"),
                    exclude=("systemd-*", "dbus.service"))
    units = {dict(labels)["unit"] for _, labels in values(stat.collect(1.0))}
    assert units == {"crashy.service", "worker.service", "nightly.service",
                     "getty@tty1.service"}
    assert runner.calls[0][-3:] == ["--", "*.service", "getty@*"]


def test_services_without_systemd_logs_once_and_yields_nothing(tmp_path: Path) -> None:
    runner = Systemctl("")
    stat = ServicesStatistic(StatisticConfig(name="services"), 30, runner=runner,
                             systemd_dir=str(tmp_path / "absent"))
    with capture_logs() as logs:
        assert stat.collect(1.0) == [] and stat.collect(2.0) == []
    assert [e["event"] for e in logs] == ["statistic_unavailable"]
    assert runner.calls == []
    # on this machine (no systemd as PID 1) the real statistic says the same
    if not os.path.isdir("/run/systemd/system"):
        assert build_statistic(StatisticConfig(name="services"), 30).collect(1.0) == []


def test_systemctl_failures_are_probe_errors(tmp_path: Path, monkeypatch) -> None:
    def script(name: str, body: str) -> str:
        path = tmp_path / name
        path.write_text("#!/bin/sh\n" + body)
        path.chmod(0o755)
        return str(path)

    with pytest.raises(ProbeError, match=r"no answer within 0\.3s"):
        run_systemctl([script("hang", "exec sleep 30\n"), "show"], 0.3)
    with pytest.raises(ProbeError, match="exit 1: Failed to connect to bus"):
        run_systemctl([script("nobus", "echo 'Failed to connect to bus' >&2; exit 1\n"),
                       "show"], 5)
    with pytest.raises(ProbeError, match="cannot run"):
        run_systemctl([str(tmp_path / "missing"), "show"], 5)
    assert run_systemctl([script("ok", "echo Id=a.service\n"), "show"], 5) == "Id=a.service\n"
    # a hung systemctl's children die with it (its own process group, killed whole)
    pidfile = tmp_path / "child.pid"
    with pytest.raises(ProbeError, match="no answer"):
        run_systemctl([script("forks", f"sleep 30 &\necho $! > {pidfile}\nexec sleep 30\n"),
                       "show"], 0.5)
    child = int(pidfile.read_text())

    def dead() -> bool:          # gone, or a zombie waiting for its (reaped) parent's init
        try:
            return Path(f"/proc/{child}/stat").read_text().rsplit(") ", 1)[1][0] == "Z"
        except FileNotFoundError:
            return True

    assert wait_until(dead, 10.0)
    # output past the cap is an error, not a silently shortened unit list
    monkeypatch.setattr(services_module, "SHOW_CAP", 1000)
    with pytest.raises(ProbeError, match="more than 1000 bytes"):
        run_systemctl([script("big", "head -c 5000 /dev/zero | tr '\\0' x\n"), "show"], 5)
    junk = services(tmp_path, Systemctl("not a property line\n"), FakeClock())
    with pytest.raises(ProbeError, match="unexpected line"):
        junk.collect(1.0)


@pytest.mark.parametrize(("yaml", "message"), [
    ("{name: cpu, match: ['*.service']}", "statistics[0].match: expected match only on "
                                          "services, got it on cpu"),
    ("{name: services, match: ['--all']}", "statistics[0].match[0]: expected a unit name"),
    ("{name: services, include: [x]}", "statistics[0].include: expected include only on"),
    ("{name: pressure, exclude: [x]}", "statistics[0].exclude: expected exclude only on"),
])
def test_bad_statistic_config_is_positioned(yaml: str, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_config(f"statistics:\n  - {yaml}\n", "p.yaml", {})
    assert "p.yaml:2:" in str(e.value) and message in str(e.value), str(e.value)


def test_services_config_loads() -> None:
    cfg = parse_config("statistics:\n  - {name: services, every: 30s, match: [nginx.service, "
                       "'app-*.service'], exclude: ['app-test*']}\n  - pressure\n", "p.yaml", {})
    services_cfg, pressure_cfg = cfg.statistics
    assert services_cfg.match == ("nginx.service", "app-*.service")
    assert services_cfg.exclude == ("app-test*",)
    built = build_statistic(services_cfg, 10)
    assert isinstance(built, ServicesStatistic) and built.every == 30
    assert built.command()[-3:] == ["--", "nginx.service", "app-*.service"]
    assert isinstance(build_statistic(pressure_cfg, 10), PressureStatistic)
