"""The embedding API (issue 15): ``pharosd.api.start`` in a program of its own.

A real Python subprocess (``EMBEDDER`` below) starts pharosd from a mapping
config with a Python statistic the test controls through a file, subscribes a
callback that records events and one that always raises, and drives one alert
through firing and resolved. The test then checks, from what the program wrote:

* both events arrived; the raising callback was called for each (logged and
  kept, not unsubscribed), and ``status()`` counted its failures;
* no signal handler was installed (``signal.getsignal`` before, during and
  after) and nothing was sent to ``NOTIFY_SOCKET`` although it was set; a
  second start with ``sd_notify=True`` does send ``READY=1``;
* ``unsubscribe`` removes a token once; ``stop()`` returns 0 and a second
  ``stop()`` returns 0 again; ``status()`` says it is no longer running.

Config errors of a mapping are raised by ``start`` with their key path, in
this process (nothing is started for them).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pharosd import api
from pharosd.errors import ConfigError
from tests.support.daemon import NotifySocket

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parent.parent
PLUGIN_DIR = Path(__file__).resolve().parent / "statistic_plugins"

EMBEDDER = textwrap.dedent("""\
    import json, signal, sys, threading, time
    from pathlib import Path
    import pharosd.api

    tmp, plugins = Path(sys.argv[1]), sys.argv[2]
    SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    def handlers():
        return [repr(signal.getsignal(s)) for s in SIGNALS]

    def config(name):
        return {
            "interval": "200ms", "soak": "0s", "cool": "0s",
            "state_dir": str(tmp / name), "plugin_dirs": [plugins],
            "statistics": [{"name": "queue", "python": "pharos_demo_stats:FileValue",
                            "every": "200ms",
                            "options": {"path": str(tmp / "value"), "labels": {"q": "mail"}}}],
            "thresholds": [{"name": "queue-deep", "metric": "demo.value", "above": 5}],
            "sinks": [],
        }

    out = {"handlers_before": handlers()}
    events, bad_calls = [], []
    changed = threading.Condition()
    def record(event):
        with changed:
            events.append(event.to_dict())
            changed.notify_all()
    def broken(event):
        bad_calls.append(event.status)
        raise RuntimeError("a bug in the embedding program")
    def wait_for(n):
        with changed:
            return changed.wait_for(lambda: len(events) >= n, timeout=20)

    handle = pharosd.api.start(config("one"))
    out["handlers_running"] = handlers()
    bad = handle.subscribe(broken)
    token = handle.subscribe(record)
    (tmp / "value").write_text("9")
    out["fired"] = wait_for(1)
    (tmp / "value").write_text("1")
    out["resolved"] = wait_for(2)
    deadline = time.monotonic() + 20
    while len(bad_calls) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    status = handle.status()
    out["status"] = {"running": status["running"], "subscribers": status["subscribers"],
                     "sources": sorted(status["collector"])}
    out["unsubscribe"] = [handle.unsubscribe(token), handle.unsubscribe(token)]
    handle.unsubscribe(bad)
    out["stop"] = [handle.stop(), handle.stop()]
    out["after"] = {k: handle.status()[k] for k in ("running", "exit_code")}
    out["handlers_after"] = handlers()
    out["events"], out["bad_calls"] = events, bad_calls

    asked = pharosd.api.start(config("two"), sd_notify=True)
    deadline = time.monotonic() + 20
    while not asked.status()["ready"] and time.monotonic() < deadline:
        time.sleep(0.05)
    out["asked_ready"] = asked.status()["ready"]
    out["asked_stop"] = asked.stop()
    (tmp / "result.json").write_text(json.dumps(out))
    """)


def test_embedding_start_subscribe_status_stop(tmp_path: Path):
    notify = NotifySocket(tmp_path / "notify.sock")
    script = tmp_path / "embedder.py"
    script.write_text(EMBEDDER)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHAROS")}
    env.update({"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "2000000",
                "RUNTIME_DIRECTORY": str(tmp_path / "run"),
                "PYTHONPATH": str(ROOT)})
    try:
        result = subprocess.run([sys.executable, str(script), str(tmp_path), str(PLUGIN_DIR)],
                                capture_output=True, text=True, timeout=90, env=env,
                                cwd=tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
        out = json.loads((tmp_path / "result.json").read_text())
        # Only the second start asked for sd_notify; the first sent nothing at all.
        assert notify.wait_for(lambda lines: "READY=1" in lines, 20)
        lines = notify.lines()
    finally:
        notify.close()
    assert [m for m in lines if not m.startswith(("READY=1", "STATUS=", "WATCHDOG=1",
                                                   "STOPPING=1"))] == []
    assert lines.count("READY=1") == 1 and lines.count("STOPPING=1") == 1

    default = ["<Handlers.SIG_DFL: 0>", "<built-in function default_int_handler>",
               "<Handlers.SIG_DFL: 0>"]
    assert out["handlers_before"] == out["handlers_running"] == out["handlers_after"] == default

    assert out["fired"] and out["resolved"], out
    firing, resolved = out["events"][:2]
    assert (firing["status"], firing["rule"], firing["labels"], firing["value"]) == (
        "firing", "queue-deep", {"q": "mail"}, 9.0)
    assert (resolved["status"], resolved["fingerprint"]) == ("resolved", firing["fingerprint"])
    assert out["bad_calls"] == ["firing", "resolved"]       # raised twice, still subscribed
    subs = out["status"]["subscribers"]
    assert (subs["subscribed"], subs["failures"], subs["dropped"]) == (2, 2, 0)
    assert out["status"]["running"] is True and out["status"]["sources"] == ["queue"]
    assert out["unsubscribe"] == [True, False]
    assert out["stop"] == [0, 0]
    assert out["after"] == {"running": False, "exit_code": 0}
    assert out["asked_ready"] is True and out["asked_stop"] == 0
    assert "subscriber_failed" in result.stdout + result.stderr


def test_a_bad_mapping_config_is_raised_with_key_paths(tmp_path: Path):
    with pytest.raises(ConfigError) as info:
        api.start({"state_dir": str(tmp_path), "statistics": ["cpuu"],
                   "thresholds": [{"name": "x", "metric": "cpu.percent", "above": "ninety"}]})
    assert [str(i) for i in info.value.issues] == [
        "<mapping>: statistics[0]: expected one of cpu, load, memory, swap, disk, diskio, "
        "network, processes, files, uptime, temperature, pressure, services, got 'cpuu', "
        "did you mean 'cpu'?",
        "<mapping>: thresholds[0].above: expected a number, got 'ninety'",
    ]
    with pytest.raises(ConfigError) as info:
        api.start({"state_dir": str(tmp_path), "statistics": [{"name": object()}], 1: 2})
    assert [str(i) for i in info.value.issues] == [
        "<mapping>: statistics[0].name: expected a string, number, bool, None, list or "
        "mapping, got object",
        "<mapping>: expected string keys, got 1",
    ]
