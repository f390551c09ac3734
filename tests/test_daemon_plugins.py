"""Python statistics in a real ``pharosd run`` (issue 15), from a real plugin directory.

One daemon runs five plugins of ``tests/statistic_plugins/pharos_demo_stats.py``
beside each other: one that reports a number the test writes to a file, one
that raises, one that hangs, one that returns junk among good items and one
whose constructor refuses its options. The test reads what an operator sees:

* the good plugin's samples drive a threshold: the alert fires with the labels
  from its options and resolves when the file changes, while the others fail;
* ``pharosd status --json`` shows each failure counted on its own source (hung
  runs, invalid samples, failures with the plugin's error), the collector's
  other sources unaffected, and the log carries the plugin's traceback;
* a reload that names a plugin which fails to import is refused with the
  positioned error, and the running config goes on;
* READY=1 and the watchdog pings keep coming with a plugin hung, and SIGTERM
  still stops the daemon with 0.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.daemon import PharosProcess, read_events, wait_until

pytestmark = pytest.mark.timeout(120)

PLUGIN_DIR = Path(__file__).resolve().parent / "statistic_plugins"
WAIT = 20.0     # a deadline for what should happen within a few polls, never a pace


def config(tmp: Path, *extra: dict[str, Any]) -> str:
    demo = "pharos_demo_stats"
    doc = {
        "interval": "250ms",
        "state_dir": str(tmp / "state"),
        "plugin_dirs": [str(PLUGIN_DIR)],
        "statistics": [
            "load",
            {"name": "good", "python": f"{demo}:FileValue",
             "options": {"path": str(tmp / "value"), "labels": {"queue": "mail"}}},
            {"name": "raising", "python": f"{demo}:Raising",
             "options": {"message": "queue database locked"}},
            {"name": "hanging", "python": f"{demo}:Hanging", "timeout": "300ms"},
            {"name": "junk", "python": f"{demo}:Junk"},
            {"name": "badopts", "python": f"{demo}:BadOptions", "options": {"colour": "red"}},
            *extra,
        ],
        "thresholds": [{"name": "queue-deep", "metric": "demo.value", "above": 5,
                        "soak": "0s", "cool": "0s"}],
        "sinks": [{"name": "file", "kind": "file", "path": str(tmp / "alerts.jsonl")}],
    }
    return json.dumps(doc, indent=1)


def status(tmp: Path) -> dict[str, Any]:
    env = {**os.environ, "RUNTIME_DIRECTORY": str(tmp / "run")}
    result = subprocess.run([sys.executable, "-m", "pharosd", "status", "--json"],
                            capture_output=True, text=True, timeout=30, env=env)
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def test_plugins_are_isolated_in_a_running_daemon(tmp_path: Path):
    (tmp_path / "value").write_text("9")
    daemon = PharosProcess(tmp_path, config(tmp_path))
    try:
        assert daemon.notify.wait_for(lambda lines: "READY=1" in lines, WAIT), daemon.log()
        alerts = tmp_path / "alerts.jsonl"
        assert wait_until(lambda: read_events(alerts), WAIT), daemon.log()
        fired = read_events(alerts)[0]
        assert (fired["status"], fired["rule"], fired["labels"], fired["value"]) == (
            "firing", "queue-deep", {"queue": "mail"}, 9.0)

        def sources() -> dict[str, Any]:
            return dict(status(tmp_path)["collector"])

        def settled(s: dict[str, Any]) -> bool:
            return (s["hanging"]["hung_runs"] >= 2 and s["raising"]["failures"] >= 2
                    and s["junk"]["runs"] >= 2 and s["badopts"]["failures"] >= 2)

        s = wait_until(lambda: (lambda v: v if settled(v) else None)(sources()), WAIT)
        assert s, sources()
        assert s["good"]["failing"] is False and s["good"]["failures"] == 0
        assert s["load"]["failing"] is False
        assert s["raising"]["last_error"] == "RuntimeError: queue database locked"
        assert s["hanging"]["failing"] is True
        assert s["hanging"]["last_error"] == ("ProbeError: collect() did not return within "
                                              "0.3s; not called again until it returns")
        assert s["junk"]["failing"] is False               # its good item still counts
        assert s["junk"]["samples_invalid"] == 5 * s["junk"]["runs"]
        assert s["badopts"]["last_error"] == "ValueError: unknown option(s): ['colour']"
        log = daemon.log()
        assert "pharos_demo_stats.py" in log and "queue database locked" in log   # traceback
        assert "while building pharos_demo_stats:BadOptions(options)" in log

        # The collector goes on: the good plugin's next value resolves the alert.
        (tmp_path / "value").write_text("1")
        assert wait_until(lambda: len(read_events(alerts)) >= 2, WAIT), daemon.log()
        assert read_events(alerts)[1]["status"] == "resolved"
        pings = daemon.notify.count("WATCHDOG=1")
        assert daemon.notify.wait_for(lambda lines: lines.count("WATCHDOG=1") > pings + 1, WAIT)

        # A reload naming a plugin that fails to import is refused, with its position.
        text = config(tmp_path, {"name": "broken", "python": "pharos_broken_stats:Never"})
        daemon.write_config(text)
        line = next(n for n, t in enumerate(text.splitlines(), 1) if "pharos_broken" in t)
        column = text.splitlines()[line - 1].index('"pharos_broken') + 1
        daemon.signal(signal.SIGHUP)
        assert daemon.wait_log("reload_failed", WAIT), daemon.log()
        reload_state = status(tmp_path)["reload"]
        assert reload_state["ok"] is False
        assert reload_state["errors"] == [
            f"{daemon.config}:{line}:{column}: statistics[6].python: expected an importable "
            "module 'pharos_broken_stats', got ModuleNotFoundError: No module named "
            "'pharos_no_such_dependency'"]
        assert set(status(tmp_path)["collector"]) == {"load", "good", "raising", "hanging",
                                                      "junk", "badopts"}
    finally:
        code = daemon.stop()
    assert code == 0, daemon.log()
