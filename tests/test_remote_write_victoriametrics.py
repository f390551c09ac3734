"""The uplink against a real VictoriaMetrics 1.79, with real pipeline processes.

* what is shipped is exported with the right names, labels, values and times;
* a 60 s receiver outage during which the pipeline process is SIGKILLed and
  later restarted gracefully: afterwards every sample is there, except at most
  the last ``flush`` of samples before the SIGKILL (the measured loss is printed);
* ``kill -9`` 20 times while spilling: the spill opens every time with all it
  had, and acknowledged batches are never sent twice in bulk.

The processes run tests/pipeline_driver.py; VictoriaMetrics' export shows raw
samples, duplicates included, so duplicates are counted exactly.
"""

from __future__ import annotations

import contextlib
import json
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from peers import wait_for
from peers.victoriametrics import VictoriaMetrics

from pharosd.clock import SystemClock
from pharosd.config.schema import Config
from pharosd.model import Sample
from pharosd.pipeline.config import RemoteWriteConfig, UplinkConfig
from pharosd.pipeline.worker import Pipeline
from pharosd.types import FrozenDict
from pharosd.worker import WorkerContext

pytestmark = [pytest.mark.peer("victoria-metrics"), pytest.mark.timeout(420)]

DRIVER = Path(__file__).resolve().parent / "pipeline_driver.py"
FLUSH = 1.0          # the driver's flush interval (the default)
LOSS_SLACK = 1.5     # beyond flush: a tick in flight, the worker's step, process start


class Driver:
    """One pipeline_driver.py process; its JSON lines are collected on a thread."""

    def __init__(self, state: Path, url: str, run: str, **opts: Any) -> None:
        self.state = state
        self.run = run
        args = [sys.executable, str(DRIVER), "--state", str(state), "--url", url, "--run", run]
        for k, v in opts.items():
            args += [f"--{k.replace('_', '-')}", str(v)]
        self._err = open(state / f"driver-{run}.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self._err)
        self.events: list[dict[str, Any]] = []
        self.killed_at: float | None = None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with contextlib.suppress(ValueError):
                self.events.append(json.loads(line))

    def event(self, name: str, timeout: float = 30.0) -> dict[str, Any]:
        found = wait_for(lambda: [e for e in self.events if e["event"] == name], timeout)
        if not found:
            raise AssertionError(f"driver {self.run}: no {name!r} event; exit "
                                 f"{self.proc.poll()}; log: {self.log()[-2000:]}")
        return dict(found[-1])

    def status(self) -> dict[str, Any]:
        found = [e for e in self.events if e["event"] == "status"]
        return found[-1] if found else {}

    def kill(self) -> None:
        self.killed_at = time.time()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self._done()

    def term(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(20)
        self._done()
        return code

    def _done(self) -> None:
        self._reader.join(5)
        self._err.close()

    def log(self) -> str:
        return (self.state / f"driver-{self.run}.log").read_text(errors="replace")

    def produced(self) -> list[int]:
        """Tick timestamps (ms) the process had offered, as it wrote them down."""
        text = (self.state / f"produced-{self.run}.txt").read_text()
        lines = text.split("\n")
        return [int(x) for x in lines[:-1] if x]        # the last may be cut by a SIGKILL


@pytest.fixture
def drivers():
    started: list[Driver] = []
    yield started
    for d in started:
        if d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait(10)


def drain(state: Path, url: str, drivers: list[Driver]) -> dict[str, Any]:
    """A driver that produces nothing: it sends what the spill holds, then stops."""
    d = Driver(state, url, "drain", series=0)
    drivers.append(d)
    d.event("started")
    assert wait_for(lambda: d.status().get("spill_samples") == 0
                    and d.status().get("up") is True, 90), d.status()
    assert d.term() == 0
    return d.event("closed")


def exported(vm: VictoriaMetrics) -> dict[str, Counter[tuple[str, int]]]:
    """run -> Counter of (series, ts) as VictoriaMetrics holds them (duplicates counted)."""
    out: dict[str, Counter[tuple[str, int]]] = {}
    for labels, pairs in vm.export('{__name__="pharos_driver_value"}').items():
        d = dict(labels)
        c = out.setdefault(d["run"], Counter())
        for ts, _ in pairs:
            c[(d["series"], ts)] += 1
    return out


def expected(d: Driver, series: int) -> set[tuple[str, int]]:
    return {(str(i), ts) for ts in d.produced() for i in range(series)}


def test_shipped_samples_are_exported_with_names_labels_values_and_times(tmp_path) -> None:
    with VictoriaMetrics(tmp_path / "vm") as vm:
        cfg = Config(uplink=UplinkConfig(remote_write=(RemoteWriteConfig(
            url=vm.write_url, external_labels=FrozenDict({"dc": "fra1"})),)))
        p = Pipeline(cfg, state_dir=str(tmp_path / "state"), host="web1", clock=SystemClock())
        ctx = WorkerContext()
        [w] = p.workers()
        t = threading.Thread(target=w.run, args=(ctx,), daemon=True)
        t.start()
        try:
            now = round(time.time(), 3)
            p.offer([Sample("memory.used_percent", (), 42.5, now),
                     Sample("disk.used_percent", (("device", "sda1"), ("mount", "/")), 71.25,
                            now),
                     Sample("probe.web-1.status", (("probe.kind", "http"),), 2.0, now)])
            def series() -> dict:
                return vm.export('{__name__=~"pharos_.*"}')
            assert wait_for(lambda: len(series()) == 3, 30), vm.log()[-2000:]
        finally:
            ctx.stop()
            t.join(5)
            p.close()
        got = {dict(k)["__name__"]: (dict(k), v) for k, v in series().items()}
        ms = int(now * 1000 + 0.5)
        mem_labels, mem = got["pharos_memory_used_percent"]
        assert mem_labels == {"__name__": "pharos_memory_used_percent", "host": "web1",
                              "job": "pharosd", "dc": "fra1"}
        assert mem == [(ms, 42.5)]
        disk_labels, disk = got["pharos_disk_used_percent"]
        assert (disk_labels["mount"], disk_labels["device"], disk) == ("/", "sda1", [(ms, 71.25)])
        probe_labels, probe = got["pharos_probe_web_1_status"]
        assert probe_labels["probe_kind"] == "http" and probe == [(ms, 2.0)]


@pytest.mark.slow
def test_a_60s_outage_with_a_sigkill_and_a_restart_loses_only_the_unspilled_tail(
        tmp_path, drivers) -> None:
    state = tmp_path / "state"
    state.mkdir()
    series = 20
    vm = VictoriaMetrics(tmp_path / "vm").start()
    try:
        opts = {"series": series, "hz": 10, "max_backoff": "5s"}
        a = Driver(state, vm.write_url, "a", **opts)
        drivers.append(a)
        a.event("started")
        assert wait_for(lambda: exported(vm).get("a"), 30)
        vm.stop()                                          # the outage begins
        outage_start = time.time()
        time.sleep(20)
        a.kill()                                           # kill -9 while spilling
        b = Driver(state, vm.write_url, "b", **opts)
        drivers.append(b)
        assert b.event("started")["spill_samples"] > 0, "the spill survived the kill"
        time.sleep(20)
        assert b.term() == 0                               # a graceful restart, still down
        c = Driver(state, vm.write_url, "c", **opts)
        drivers.append(c)
        c.event("started")
        time.sleep(max(0.0, outage_start + 60 - time.time()))
        vm.start()                                         # the outage ends
        assert wait_for(lambda: c.status().get("spill_samples") == 0
                        and c.status().get("sent", 0) > 0, 90), c.status()
        assert c.term() == 0                               # its last second goes to the spill
        drain(state, vm.write_url, drivers)
        assert wait_for(lambda: len(exported(vm).get("c", ())) >= len(expected(c, series)), 30)
        got = exported(vm)
    finally:
        vm.stop()
    for d in (b, c):                       # stopped gracefully: every sample is there, once
        assert set(got[d.run]) == expected(d, series), d.run
        assert max(got[d.run].values()) == 1
    want_a = expected(a, series)
    lost = want_a - set(got["a"])
    assert set(got["a"]) <= want_a
    assert a.killed_at is not None
    tail = [ts for _, ts in lost]
    if tail:
        assert min(tail) >= (a.killed_at - FLUSH - LOSS_SLACK) * 1000, sorted(tail)[:5]
    print(f"\nSIGKILL during an outage lost {len(lost)} of {len(want_a)} samples "
          f"({(a.killed_at * 1000 - min(tail)) / 1000 if tail else 0:.2f} s before the kill)")
    assert max(got["a"].values()) <= 2
    assert sum(n - 1 for n in got["a"].values()) <= 2000, "no bulk re-send"


@pytest.mark.slow
def test_kill_9_twenty_times_while_spilling(tmp_path, drivers) -> None:
    state = tmp_path / "state"
    state.mkdir()
    series = 50
    batch = 200
    opts = {"series": series, "hz": 20, "batch": batch, "max_backoff": "1s"}
    vm = VictoriaMetrics(tmp_path / "vm")               # not started: every run spills
    rng = random.Random(4)
    runs: list[Driver] = []
    spill_before = 0
    try:
        for i in range(20):
            if i == 14:
                vm.start()                              # the last kills come during replay
            d = Driver(state, vm.write_url, f"k{i}", **opts)
            drivers.append(d)
            runs.append(d)
            started = d.event("started")
            if i < 14:                                  # nothing can have been sent yet
                assert started["spill_samples"] >= spill_before
            time.sleep(rng.uniform(0.6, 1.6))
            spill_before = d.status().get("spill_samples", 0)
            d.kill()
        final = Driver(state, vm.write_url, "final", **opts)
        drivers.append(final)
        final.event("started")
        assert wait_for(lambda: final.status().get("spill_samples") == 0
                        and final.status().get("buffer", 1) < series * 40, 90), final.status()
        assert final.term() == 0
        drain(state, vm.write_url, drivers)
        assert wait_for(lambda: len(exported(vm).get("final", ())) >= len(
            expected(final, series)), 30)
        got = exported(vm)
    finally:
        vm.stop()
    duplicates = sum(n - 1 for c in got.values() for n in c.values())
    lost_total = produced_total = 0
    for d in runs:
        want = expected(d, series)
        have = set(got.get(d.run, ()))
        assert have <= want
        lost = want - have
        produced_total += len(want)
        lost_total += len(lost)
        assert d.killed_at is not None
        if lost:
            assert min(ts for _, ts in lost) >= (d.killed_at - FLUSH - LOSS_SLACK) * 1000, d.run
    assert set(got["final"]) == expected(final, series)
    print(f"\n20 x kill -9: lost {lost_total} of {produced_total} samples, "
          f"{duplicates} duplicates")
    # Only the 6 kills during replay can re-send anything: at most their in-flight batch each.
    assert duplicates <= 6 * batch
