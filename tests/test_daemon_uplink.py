"""End-to-end: a real ``pharosd run`` shipping samples to a real VictoriaMetrics."""

from __future__ import annotations

import itertools
import signal
import time
from pathlib import Path

import pytest
from peers.victoriametrics import VictoriaMetrics

from tests.support.daemon import PharosProcess, wait_until

pytestmark = pytest.mark.timeout(180)


def config(tmp: Path, write_url: str | None) -> str:
    uplink = (f"uplink:\n  remote_write:\n    - {{url: '{write_url}', flush: 250ms}}\n"
              if write_url else "")
    return f"""
interval: 250ms
state_dir: {tmp}/state
statistics: [memory, uptime]
sinks:
  - {{name: file, kind: file, path: {tmp}/alerts.jsonl}}
{uplink}"""


@pytest.fixture
def vm(tmp_path):
    with VictoriaMetrics(tmp_path / "vm") as server:
        yield server


def series(vm: VictoriaMetrics, name: str) -> dict:
    try:
        return vm.export(name)
    except OSError:
        return {}


def test_samples_are_queryable_with_names_and_labels(tmp_path, vm, daemons):
    d = PharosProcess(tmp_path, config(tmp_path, vm.write_url))
    daemons.append(d)
    got = wait_until(lambda: series(vm, "pharos_memory_used_percent"), 30)
    assert got, d.log()
    (labels, samples), = got.items()
    labels = dict(labels)
    assert labels["__name__"] == "pharos_memory_used_percent"
    assert labels["job"] == "pharosd" and labels["host"]
    assert all(0 <= v <= 100 for _, v in samples)
    # Self-telemetry rides along: the daemon's own RSS, in bytes.
    rss = wait_until(lambda: series(vm, "pharos_pharosd_rss_bytes"), 30)
    assert rss, d.log()
    values = [v for s in rss.values() for _, v in s]
    assert all(5 * 2**20 < v < 2**30 for v in values)


def test_reload_turns_the_uplink_on(tmp_path, vm, daemons):
    d = PharosProcess(tmp_path, config(tmp_path, None))
    daemons.append(d)
    assert d.notify.wait_for(lambda m: "READY=1" in m), d.log()
    d.write_config(config(tmp_path, vm.write_url))
    d.signal(signal.SIGHUP)
    assert d.wait_log("reload_done"), d.log()
    assert wait_until(lambda: series(vm, "pharos_uptime_seconds"), 30), d.log()


@pytest.mark.slow
def test_outage_with_a_restart_loses_no_sample(tmp_path, vm, daemons):
    d = PharosProcess(tmp_path, config(tmp_path, vm.write_url))
    daemons.append(d)
    assert wait_until(lambda: series(vm, "pharos_uptime_seconds"), 30), d.log()
    vm.stop()
    time.sleep(4)
    d.signal(signal.SIGTERM)          # stopped during the outage: the hot buffer spills
    assert d.proc.wait(5) == 0
    stopped = time.time()
    time.sleep(1)
    started = time.time()
    d2 = PharosProcess(tmp_path, config(tmp_path, vm.write_url))
    daemons.append(d2)
    assert d2.notify.wait_for(lambda m: "READY=1" in m), d2.log()
    time.sleep(4)
    vm.start()

    def caught_up() -> list[int]:
        got = series(vm, "pharos_uptime_seconds")
        ts = sorted({t for s in got.values() for t, _ in s})
        return ts if ts and ts[-1] / 1000 > time.time() - 2 else []

    ts = wait_until(caught_up, 60)
    assert ts, d2.log()
    # Samples come every 250 ms; the only gap allowed is the second pharosd was down.
    gaps = [(a, b) for a, b in itertools.pairwise(ts) if b - a > 1000]
    assert len(gaps) <= 1, gaps
    for a, b in gaps:
        assert a / 1000 <= stopped + 0.5 and b / 1000 >= started - 0.5, (a, b, stopped, started)
    # The outage (receiver down for ~8 s around the restart) is covered on both sides.
    assert ts[0] / 1000 < stopped - 4
