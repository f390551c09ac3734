"""Hostile and careless configs: every one a positioned error, quickly, never a traceback.

Each test here reproduces one way a config used to crash the loader, hang it,
or leak a secret; the Hypothesis suite (test_fuzz_config.py) looks for more.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pharosd.alerting.config import ThresholdConfig
from pharosd.alerting.evaluator import Evaluator
from pharosd.config import parse_config
from pharosd.config.schema import Config
from pharosd.errors import ConfigError
from pharosd.model import Sample
from pharosd.types import Duration

POSITIONED = re.compile(r"^pharos\.yaml:\d+:\d+: \S")


def issues(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as e:
        parse_config(text, "pharos.yaml", env or {})
    return [str(i) for i in e.value.issues]


def merge_bomb(levels: int = 8, fan: int = 9) -> str:
    """``<<: [*a, *a, ...]`` chained: fan**levels mappings if expanded naively."""
    lines = ["      x0: &a0 {x: '1'}"]
    for i in range(1, levels + 1):
        refs = ", ".join([f"*a{i - 1}"] * fan)
        lines.append(f"      x{i}: &a{i}\n        <<: [{refs}]")
    return ("thresholds:\n  - name: t\n    metric: cpu.percent\n    above: 1\n    match:\n"
            + "\n".join(lines) + f"\n      <<: *a{levels}\n")


def alias_bomb(fan: int = 1000) -> str:
    """``fan`` thresholds, each an alias of one whose match has ``fan`` labels: a short
    file that builds fan**2 values if every alias is built again."""
    labels = ", ".join(f"k{i}: a" for i in range(fan))
    return (f"defs:\n  m: &m {{{labels}}}\n"
            "  t: &t {name: t, metric: cpu.percent, above: 1, match: *m}\n"
            "thresholds: [" + ", ".join(["*t"] * fan) + "]\n")


def test_a_huge_integer_is_a_positioned_error_that_does_not_echo_it() -> None:
    found = issues("supervisor: {max_restarts: %s}\n" % ("9" * 5000))
    assert len(found) == 1 and POSITIONED.match(found[0])
    assert "supervisor.max_restarts: expected an integer" in found[0]
    assert len(found[0]) < 300                      # the value is cut, not echoed whole


@pytest.mark.parametrize("text", [
    "interval: %ss\n" % ("9" * 60),                 # a duration beyond ten years
    "buffer: {capacity: %s}\n" % ("9" * 30),        # an int beyond 64 bits
    "spill: {max_size: %sB}\n" % ("9" * 40),        # a size beyond 64 bits
])
def test_numbers_beyond_what_the_daemon_can_use_are_refused(text: str) -> None:
    found = issues(text)
    assert len(found) == 1 and POSITIONED.match(found[0]), found


def test_yaml_nested_a_thousand_deep_is_a_positioned_error() -> None:
    for text in ("a: " + "[" * 1000 + "]" * 1000 + "\n",
                 "".join("  " * i + f"k{i}:\n" for i in range(1000)) + "  " * 1000 + "v\n"):
        found = issues(text)
        assert len(found) == 1
        assert POSITIONED.match(found[0]) and "nested deeper than 64 levels" in found[0]


@pytest.mark.parametrize("key", ["body_regex"])
def test_a_regex_nested_a_thousand_deep_is_a_positioned_error(key: str) -> None:
    pattern = "(" * 1000 + "a" + ")" * 1000
    found = issues("probes:\n  - {name: x, kind: http, url: 'http://127.0.0.1/', "
                   f"{key}: '{pattern}'}}\n")
    assert len(found) == 1 and POSITIONED.match(found[0])
    assert f"probes[0].{key}: expected a regular expression" in found[0]


def test_merge_key_chains_cost_their_size_not_their_expansion() -> None:
    started = time.process_time()
    found = issues(merge_bomb())
    # 9**8 = 43 million merges if expanded; linear, it is a few hundred nodes.
    assert time.process_time() - started < 5.0, "merge expansion is not bounded"
    assert all(POSITIONED.match(f) for f in found)


def test_alias_expansion_is_bounded_with_one_positioned_error() -> None:
    started = time.process_time()
    found = issues(alias_bomb())
    assert time.process_time() - started < 10.0, "alias expansion is not bounded"
    assert any("at most 200000 values" in f for f in found), found
    assert all(POSITIONED.match(f) for f in found)


@pytest.mark.parametrize(("template", "expected"), [
    ("{value:>1000000000000000000}", "expected a width of at most 1000"),
    ("{value:.1f}", "expected a template that renders"),
    ("{value.real}", "(a name)"),
    ("{0}", "(a name)"),
    ("{value!z}", "expected no conversion"),
    ("{value:{limit}}", "nested placeholder"),
    ("{", "expected a format template"),
])
def test_summary_templates_are_rendered_at_load(template: str, expected: str) -> None:
    found = issues("thresholds:\n  - {name: t, metric: cpu.percent, above: 1, "
                   f"summary: {template!r}}}\n".replace("'", '"'))
    assert len(found) == 1 and POSITIONED.match(found[0]), found
    assert "thresholds[0].summary:" in found[0] and expected in found[0]


def test_label_placeholders_and_specs_within_bounds_load() -> None:
    cfg = parse_config('thresholds:\n  - {name: t, metric: disk.used_percent, above: 1, '
                       'summary: "{mount:>20} {value!r} {rule}"}\n', "pharos.yaml", {})
    assert cfg.thresholds[0].summary == "{mount:>20} {value!r} {rule}"


@pytest.mark.parametrize("name", ["collector", "evaluator", "uplink", "control"])
def test_sink_names_never_become_worker_names(name: str, tmp_path: Path) -> None:
    from pharosd.sinks.factory import build_sink
    from pharosd.sinks.worker import SinkWorker

    cfg = parse_config(f"sinks:\n  - {{name: {name}, kind: log}}\n", "pharos.yaml", {})
    sink_cfg = cfg.sinks[0]
    worker = SinkWorker(build_sink(sink_cfg, state_dir=str(tmp_path), host="h"), sink_cfg,
                        str(tmp_path / "o.db"))
    try:
        assert worker.name == f"sink:{name}"
        assert worker.status()["sink"] == name
    finally:
        worker.close()


def test_env_values_never_appear_in_config_errors() -> None:
    secret = "s3cr3t-(value"
    env = {"RX": secret, "N": secret, "U": secret}
    found = issues("interval: ${N}\n"
                   "probes:\n  - {name: x, kind: http, url: 'http://127.0.0.1/', "
                   "body_regex: '${RX}'}\n", env)
    assert len(found) == 2
    assert not any("s3cr3t" in f for f in found), found
    assert any("${RX}" in f for f in found) and any("${N}" in f for f in found)


@pytest.mark.parametrize("name", ["bigint", "deep", "regex", "merge"])
def test_check_config_prints_positioned_errors_never_a_traceback(name: str,
                                                                 tmp_path: Path) -> None:
    text = {
        "bigint": "supervisor: {max_restarts: %s}\n" % ("9" * 5000),
        "deep": "a: " + "[" * 1000 + "]" * 1000 + "\n",
        "regex": "probes:\n  - {name: x, kind: http, url: 'http://127.0.0.1/', "
                 "body_regex: '" + "(" * 1000 + "a" + ")" * 1000 + "'}\n",
        "merge": merge_bomb(),
    }[name]
    path = tmp_path / "pharos.yaml"
    path.write_text(text)
    proc = subprocess.run([sys.executable, "-m", "pharosd", "check-config", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert lines[-1].startswith(f"{path}: ") and "error" in lines[-1]
    assert all(re.match(rf"^{re.escape(str(path))}:\d+:\d+: ", line) for line in lines[:-1])


# -- the evaluator: one rule's trouble is its own ---------------------------------------


def _sample(metric: str, value: float) -> Sample:
    return Sample(metric, (), value, 1000.0)


def test_a_template_that_cannot_render_falls_back_and_other_rules_fire() -> None:
    # Built directly, past the load-time check, as a template from an older config could be.
    bad = ThresholdConfig(name="bad", metric="cpu.percent", above=1.0, soak=Duration(0),
                          summary="{value:>1000000000000000000}")
    good = ThresholdConfig(name="good", metric="cpu.percent", above=1.0, soak=Duration(0))
    ev = Evaluator([bad, good], Config(), "h")
    events = ev.observe([_sample("cpu.percent", 50.0)], 10.0, 1000.0)
    assert sorted(e.rule for e in events) == ["bad", "good"]
    assert next(e for e in events if e.rule == "bad").summary.startswith("cpu busy 50.0%")


def test_a_rule_that_raises_costs_no_other_rule_and_does_not_advance(monkeypatch) -> None:
    import pharosd.alerting.evaluator as evaluator_module

    real = evaluator_module.AlertEvent

    def event(**kw):  # type: ignore[no-untyped-def]
        if kw["rule"] == "bad":
            raise RuntimeError("boom")
        return real(**kw)

    bad = ThresholdConfig(name="bad", metric="cpu.percent", above=1.0, soak=Duration(0))
    good = ThresholdConfig(name="good", metric="cpu.percent", above=1.0, soak=Duration(0))
    ev = Evaluator([bad, good], Config(), "h")
    monkeypatch.setattr(evaluator_module, "AlertEvent", event)
    events = ev.observe([_sample("cpu.percent", 50.0)], 10.0, 1000.0)
    assert [e.rule for e in events] == ["good"]
    assert ev.counters()["rule_errors"] == 1
    assert ev.drain_errors() == [("bad", "RuntimeError: boom")]
    # The failing rule did not advance: it is not firing without having said so ...
    assert [a["rule"] for a in ev.open_alerts() if a["status"] == "firing"] == ["good"]
    # ... and once it can emit, its firing event comes.
    monkeypatch.setattr(evaluator_module, "AlertEvent", real)
    events = ev.observe([_sample("cpu.percent", 50.0)], 11.0, 1001.0)
    assert [(e.rule, e.status) for e in events] == [("bad", "firing")]


def test_check_config_reports_a_missing_snappy_library_where_the_uplink_is(monkeypatch) -> None:
    from pharosd.errors import UplinkError
    from pharosd.pipeline import compression

    def missing() -> compression.Codec:
        raise UplinkError("remote_write needs snappy block compression: install ...")

    monkeypatch.setattr(compression, "codec", missing)
    text = "uplink:\n  remote_write:\n    - url: http://127.0.0.1:9/api/v1/write\n"
    found = issues(text)
    assert len(found) == 1 and POSITIONED.match(found[0])
    assert found[0].startswith("pharos.yaml:3:5: uplink.remote_write: remote_write needs snappy")
    parse_config("interval: 1s\n", "pharos.yaml", {})     # without an uplink: no need


def test_the_python_package_depends_on_a_snappy_library() -> None:
    import tomllib

    meta = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())
    assert any(d.startswith("cramjam") for d in meta["project"]["dependencies"])
