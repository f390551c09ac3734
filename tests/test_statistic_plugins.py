"""Statistics written in Python (issue 15): the config, the loading, the isolation.

* The config: ``python:`` with ``options`` (plain YAML data, as written) and
  ``timeout``; a Python statistic's name is its own; ``plugin_dirs`` must be
  absolute. ``check-config`` (a real subprocess) imports every plugin and
  reports one that fails to import at its ``python:`` key, line and column.
* Entry points: a tiny installed distribution (a ``.dist-info`` with
  ``entry_points.txt`` in a temporary directory on the import path) registers
  a class under ``pharosd.statistics``; pharosd's own ``spool`` is one too.
* The adapter (``PythonStatistic``) on real threads: the plugin's exception
  comes back with its traceback and the instance is kept; a hung collect()
  fails as hung and is not called again until it returns; junk items are
  skipped and counted; a constructor that raises is retried; ``close()``
  closes the instance on the plugin's own thread.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import traceback
from pathlib import Path
from typing import Any

import pytest

from pharosd.config import parse_config
from pharosd.errors import ConfigError, ProbeError
from pharosd.statistics import python as py
from pharosd.statistics.config import StatisticConfig
from pharosd.statistics.factory import build_statistic
from pharosd.statistics.plugins import find_class
from pharosd.statistics.python import PythonStatistic, sample_from, samples_from
from pharosd.statistics.spool import Spool
from pharosd.types import Duration, FrozenDict, thaw
from tests.support.daemon import wait_until

ROOT = Path(__file__).resolve().parent.parent
PLUGIN_DIR = Path(__file__).resolve().parent / "statistic_plugins"
WAIT = 20.0     # a deadline for things that should happen at once, never a pace


def errors(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(textwrap.dedent(text), "pharos.yaml", environ={"QUEUE": "80"})
    return [str(i) for i in info.value.issues]


# -- the config ----------------------------------------------------------------------------


def test_options_are_plain_yaml_data_as_written():
    cfg = parse_config(textwrap.dedent(f"""\
        plugin_dirs: [{PLUGIN_DIR}]
        statistics:
          - name: q
            python: "pharos_demo_stats:FileValue"
            every: 5s
            timeout: 2s
            options:
              path: /tmp/x
              port: 80
              quoted: "80"
              ratio: 0.5
              on: true
              none: null
              env: ${{QUEUE}}
              names: [a, 1]
              nested: {{deep: [x]}}
        """), "pharos.yaml", environ={"QUEUE": "80"})
    s = cfg.statistics[0]
    assert (s.name, s.python, s.every, s.resolved_timeout) == ("q", "pharos_demo_stats:FileValue",
                                                                5.0, 2.0)
    assert thaw(s.options) == {"path": "/tmp/x", "port": 80, "quoted": "80", "ratio": 0.5,
                               "on": True, "none": None, "env": "80", "names": ["a", 1],
                               "nested": {"deep": ["x"]}}
    assert {s: 1}[s] == 1       # hashable with its options (a source's key holds them)


def test_python_statistic_config_errors_are_positioned():
    assert errors("""\
        statistics:
          - {name: cpu, python: "m:C"}
          - {name: q, python: "not a spec"}
          - {name: r, python: "m:C", per_core: true}
          - {name: memory, options: {a: 1}, timeout: 1s}
          - memroy
        plugin_dirs: [relative/dir]
        """) == [
        "pharos.yaml:2:12: statistics[0].name: expected a name of its own for a Python "
        "statistic, got the built-in 'cpu'",
        "pharos.yaml:3:23: statistics[1].python: expected 'module:Class' or the name of a "
        "pharosd.statistics entry point, got 'not a spec'",
        "pharos.yaml:4:40: statistics[2].per_core: expected per_core only on a built-in "
        "statistic, got it on the Python statistic r",
        "pharos.yaml:5:29: statistics[3].options: expected options only on a Python statistic "
        "(`python:`), got it on memory",
        "pharos.yaml:5:46: statistics[3].timeout: expected timeout only on a Python statistic "
        "(`python:`), got it on memory",
        "pharos.yaml:6:5: statistics[4]: expected one of cpu, load, memory, swap, disk, diskio, "
        "network, processes, files, uptime, temperature, pressure, services, got 'memroy', "
        "did you mean 'memory'?",
        "pharos.yaml:7:15: plugin_dirs[0]: expected an absolute directory path, "
        "got 'relative/dir'",
    ]


def test_a_plugin_that_fails_to_import_is_a_positioned_error_in_check_config(tmp_path):
    config = tmp_path / "pharos.yaml"
    config.write_text(textwrap.dedent(f"""\
        state_dir: {tmp_path / "state"}
        plugin_dirs: [{PLUGIN_DIR}, {tmp_path / "nowhere"}]
        statistics:
          - cpu
          - {{name: good, python: "pharos_demo_stats:FileValue", options: {{path: /x}}}}
          - name: broken
            python: pharos_broken_stats:Never
          - {{name: typo, python: "pharos_demo_stats:FileValu"}}
          - {{name: gone, python: "pharos_missing_module:X"}}
          - {{name: ep, python: spoool}}
        """))
    result = subprocess.run([sys.executable, "-m", "pharosd", "check-config", str(config)],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path,
                            env={k: v for k, v in os.environ.items() if k != "PHAROS_CONFIG"})
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert lines[0] == (
        f"{config}:7:13: statistics[2].python: expected an importable module "
        "'pharos_broken_stats', got ModuleNotFoundError: No module named "
        f"'pharos_no_such_dependency' (plugin_dirs not found: {tmp_path / 'nowhere'})")
    assert lines[1].startswith(f"{config}:8:26: statistics[3].python: expected 'FileValu' in "
                               "module 'pharos_demo_stats' (")
    assert lines[1].endswith("pharos_demo_stats.py), found no 'FileValu' (plugin_dirs not "
                             f"found: {tmp_path / 'nowhere'})")
    assert lines[2].startswith(f"{config}:9:26: statistics[4].python: expected an importable "
                               "module 'pharos_missing_module', got ModuleNotFoundError")
    assert lines[3].startswith(f"{config}:10:24: statistics[5].python: expected 'module:Class' "
                               "or the name of a pharosd.statistics entry point (installed: ")
    assert "did you mean 'spool'?" in lines[3]
    assert lines[4] == f"{config}: 4 errors"

    # Fixed, the same file checks clean: the good plugin imports and is counted.
    config.write_text(config.read_text().split("  - name: broken")[0])
    result = subprocess.run([sys.executable, "-m", "pharosd", "check-config", str(config)],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "ok (2 statistics" in result.stdout


# -- entry points --------------------------------------------------------------------------


def install_dist(site: Path) -> None:
    """A distribution installed the way pip leaves it: a module and its .dist-info."""
    site.mkdir()
    (site / "pharos_ep_demo.py").write_text(textwrap.dedent("""\
        class Answer:
            def __init__(self, options):
                self.value = options.get("value", 42)

            def collect(self):
                return [("answer.value", {"source": "entry_point"}, self.value)]
        """))
    info = site / "pharos_ep_demo-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: pharos-ep-demo\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[pharosd.statistics]\nanswer = pharos_ep_demo:Answer\n")


def test_an_installed_package_registers_a_statistic_by_entry_point(tmp_path):
    site = tmp_path / "site"
    install_dist(site)
    code = textwrap.dedent("""\
        import json, sys
        from pharosd.config import parse_config
        from pharosd.statistics.factory import build_statistic
        cfg = parse_config("statistics: [{name: a, python: answer, options: {value: 7}}]")
        stat = build_statistic(cfg.statistics[0], 10.0)
        samples = stat.collect(1000.0)
        stat.close()
        print(json.dumps([[s.metric, dict(s.labels), s.value] for s in samples]))
        """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == \
        '[["answer.value", {"source": "entry_point"}, 7.0]]'


def test_pharosd_registers_its_spool_statistic(tmp_path):
    assert find_class("spool") is Spool
    (tmp_path / "a").write_text("12345")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b").write_text("1")
    os.utime(tmp_path / "a", (1_000_000_000, 1_000_000_000))
    flat = dict((m, v) for m, _, v in Spool({"path": str(tmp_path)}).collect())
    assert (flat["spool.files"], flat["spool.bytes"]) == (1, 5)
    assert flat["spool.oldest_seconds"] > 10 * 365 * 86400
    deep = Spool({"path": str(tmp_path), "recursive": True, "pattern": "[ab]"}).collect()
    assert [(m, lab, v) for m, lab, v in deep if m != "spool.oldest_seconds"] == [
        ("spool.files", {"path": str(tmp_path)}, 2), ("spool.bytes", {"path": str(tmp_path)}, 6)]
    with pytest.raises(ValueError, match="unknown option"):
        Spool({"path": "/x", "depth": 1})
    with pytest.raises(FileNotFoundError):
        Spool({"path": str(tmp_path / "none")}).collect()


# -- the items -----------------------------------------------------------------------------


@pytest.mark.parametrize(("item", "problem"), [
    (("a.b", None, "1"), "a.b: expected a number, got str"),
    (("a.b", None, True), "a.b: expected a number, got bool"),
    (("a.b", None, float("inf")), "a.b: expected a finite number, got inf"),
    (("ab", None, 1), "metric: expected a dotted name like 'queue.depth', got 'ab'"),
    (("a.b-c", None, 1), "metric: expected a dotted name like 'queue.depth', got 'a.b-c'"),
    ((1, None, 1), "metric: expected a dotted name like 'queue.depth', got 1"),
    (("a.b", {"x": 1}, 1), "labels: expected a string value for 'x', got int"),
    (("a.b", {"bad-name": "v"}, 1), "labels: expected label names like 'queue', got 'bad-name'"),
    (("a.b", [("x", "y")], 1), "labels: expected a mapping of strings or None, got list"),
    (("a.b", None), "expected a (metric, labels, value) tuple, got tuple of 2"),
    ({"metric": "a.b"}, "expected a (metric, labels, value) tuple, got dict"),
])
def test_junk_items_are_named(item: Any, problem: str):
    with pytest.raises(py.Junk) as info:
        sample_from(item, 1.0)
    assert str(info.value) == problem


def test_good_items_become_samples():
    samples, problems = samples_from([("q.depth", {"q": "mail", "a": "1"}, 3),
                                      ["q.age", None, 1.5], ("q.x", None, "no")], 99.0)
    assert [(s.metric, s.labels, s.value, s.ts) for s in samples] == [
        ("q.depth", (("a", "1"), ("q", "mail")), 3.0, 99.0), ("q.age", (), 1.5, 99.0)]
    assert problems == ["q.x: expected a number, got str"]


# -- the adapter on real threads ------------------------------------------------------------


def stat_of(factory: Any, timeout: float = 5.0, **options: Any) -> PythonStatistic:
    cfg = StatisticConfig(name="t", python="tests:Plugin", options=FrozenDict(options),
                          timeout=Duration(timeout))
    return PythonStatistic(cfg, 1.0, factory)


class Recorder:
    """A plugin whose behaviour the test sets per call; records its threads."""

    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        self.threads: set[str] = {threading.current_thread().name}
        self.mode = "ok"
        self.release = threading.Event()
        self.closed_on: str | None = None
        self.calls = 0

    def collect(self) -> Any:
        self.calls += 1
        self.threads.add(threading.current_thread().name)
        if self.mode == "raise":
            raise KeyError("no such queue")
        if self.mode == "hang":
            self.release.wait(WAIT)
        if self.mode == "exit":
            raise SystemExit(3)
        if self.mode == "junk":
            return [("t.good", None, 1), ("t.bad", None, "x"), "junk"]
        if self.mode == "many":
            return ((f"t.n{i}", None, i) for i in range(10**9))
        if self.mode == "nothing-iterable":
            return 5
        return [("t.value", {"k": "v"}, self.options["value"])]

    def close(self) -> None:
        self.closed_on = threading.current_thread().name


def test_the_plugin_runs_on_its_own_thread_and_its_failures_come_back():
    made: list[Recorder] = []

    def factory(options: dict[str, Any]) -> Recorder:
        made.append(Recorder(options))
        return made[-1]

    stat = stat_of(factory, value=4)
    assert [(s.metric, s.value) for s in stat.collect(1.0)] == [("t.value", 4.0)]
    plugin = made[0]
    assert plugin.options == {"value": 4}
    assert plugin.threads == {"pharos-plugin-t"}     # built and called there, not here

    plugin.mode = "raise"
    with pytest.raises(KeyError) as info:
        stat.collect(2.0)
    frames = traceback.extract_tb(info.value.__traceback__)
    assert frames[-1].name == "collect" and frames[-1].filename == __file__   # the plugin's
    plugin.mode = "exit"
    with pytest.raises(ProbeError, match=r"collect\(\) raised SystemExit: 3"):
        stat.collect(3.0)
    plugin.mode = "nothing-iterable"
    with pytest.raises(TypeError):
        stat.collect(4.0)
    plugin.mode = "ok"
    assert [s.value for s in stat.collect(5.0)] == [4.0]
    assert len(made) == 1                            # the instance survived every failure

    stat.close()
    assert wait_until(lambda: plugin.closed_on == "pharos-plugin-t", WAIT)
    assert [s.value for s in stat.collect(6.0)] == [4.0]   # a new thread and instance
    assert len(made) == 2
    stat.close()


def test_a_hung_collect_is_not_called_again_until_it_returns():
    plugin = Recorder({"value": 1})
    stat = stat_of(lambda _: plugin, timeout=0.2)
    plugin.mode = "hang"
    for now in (1.0, 2.0, 3.0):
        with pytest.raises(ProbeError, match=r"did not return within 0.2s; not called again"):
            stat.collect(now)
    assert plugin.calls == 1
    assert stat.counters()["hung_runs"] == 3
    plugin.mode = "ok"
    plugin.release.set()
    assert wait_until(lambda: not stat._runner.busy, WAIT)  # type: ignore[union-attr]
    assert [s.value for s in stat.collect(4.0)] == [1.0]     # the late result was dropped
    assert plugin.calls == 2
    stat.close()


def test_junk_is_skipped_and_counted_and_all_junk_fails(monkeypatch):
    plugin = Recorder({"value": 1})
    stat = stat_of(lambda _: plugin)
    plugin.mode = "junk"
    assert [s.metric for s in stat.collect(1.0)] == ["t.good"]
    assert stat.counters()["samples_invalid"] == 2
    monkeypatch.setattr(py, "MAX_SAMPLES", 50)
    plugin.mode = "many"                             # an endless generator
    assert len(stat.collect(2.0)) == 50
    assert stat.counters()["samples_dropped"] == 1
    plugin.mode = "ok"
    plugin.options["value"] = "seven"
    with pytest.raises(ProbeError, match=r"every item was invalid \(1\): t.value: expected a "
                                         r"number, got str"):
        stat.collect(3.0)
    stat.close()


def test_a_constructor_that_raises_is_retried_with_its_statistic_named():
    attempts: list[dict[str, Any]] = []

    def factory(options: dict[str, Any]) -> Recorder:
        attempts.append(options)
        if len(attempts) == 1:
            raise ValueError("queue not reachable yet")
        return Recorder(options)

    stat = stat_of(factory, value=2)
    with pytest.raises(ValueError) as info:
        stat.collect(1.0)
    assert info.value.__notes__ == ["while building tests:Plugin(options) for statistic t"]
    assert [s.value for s in stat.collect(2.0)] == [2.0]
    assert len(attempts) == 2
    stat.close()


def test_the_factory_builds_a_python_statistic_keyed_by_its_config():
    cfg = parse_config(f"plugin_dirs: [{PLUGIN_DIR}]\nstatistics:\n"
                       "  - {name: v, python: 'pharos_demo_stats:FileValue', "
                       "options: {path: /nonexistent}}\n").statistics[0]
    a, b = build_statistic(cfg, 10.0), build_statistic(cfg, 10.0)
    assert isinstance(a, PythonStatistic) and a.blocking
    assert a.key == b.key and a.key != build_statistic(cfg, 5.0).key
    samples = a.collect(1.0)
    assert [(s.metric, s.value) for s in samples] == [("demo.value", 0.0), ("demo.calls", 1.0)]
    a.close()
