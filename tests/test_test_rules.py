"""``pharosd test-rules``: the expanding notation, the run on the daemon's own evaluator
(soak, cool, levels, staleness, absent, predict, probe status alerts), and the command
as a user runs it: the shipped tests of the reference config, failing tests, invalid
files."""

from __future__ import annotations

import math
import re
import textwrap
from pathlib import Path

import pytest

from pharosd.alerting.notation import MAX_SAMPLES, NotationError, expand
from pharosd.alerting.rulerun import run_test
from pharosd.alerting.ruletest import RuleTestFile
from pharosd.alerting.worker import TICK
from pharosd.config import load_config
from pharosd.config.loader import parse_as
from pharosd.probes.status import status_thresholds
from tests.test_cli import pharosd

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "etc" / "pharos.tests.yaml"

CONFIG = """\
soak: 30s
cool: 1m
statistics: [disk, memory]
probes:
  - {name: ntp, kind: exec, command: [/bin/true], every: 1m}
thresholds:
  - {name: memory-high, metric: memory.used_percent, above: {warning: 90, critical: 95}}
  - name: ntp-silent
    metric: probe.ntp.status
    absent: 5m
    level: critical
  - name: root-full-soon
    metric: disk.used_percent
    match: {mount: /}
    above: 100
    window: {over: 1h, mode: predict, ahead: 4h}
"""

# The absent and predict rules, and a probe's status alert, as the daemon runs them.
TESTS = """\
config: pharos.yaml
tests:
  - name: absent fires when the data stops, resolves when it returns
    interval: 1m
    input:
      - {metric: probe.ntp.status, values: "0x4 _x10 0x3"}
    expect:
      - {at: 8m, alerts: []}
      - {at: 9m, alerts: [{rule: ntp-silent, level: critical}]}
      - {at: 15m, alerts: []}
    events:
      - {at: 9m, rule: ntp-silent, status: firing}
      - {at: 15m, rule: ntp-silent, status: resolved}

  - name: absent fires when nothing arrives after the start
    interval: 1m
    input:
      - {metric: memory.used_percent, values: "50x6"}
    expect:
      - {at: 4m, alerts: []}
      - {at: 5m, alerts: [{rule: ntp-silent}]}

  - name: predict fires when the trend crosses the limit within 4 hours
    interval: 10m
    input:
      - {metric: disk.used_percent, labels: {mount: /}, values: "50+1x30"}
      - {metric: disk.used_percent, labels: {mount: /srv}, values: "50+1x30"}
    expect:
      - {at: 4h20m, alerts: [{rule: ntp-silent}]}
      - {at: 4h30m, alerts: [{rule: ntp-silent}, {rule: root-full-soon, labels: {mount: /}}]}
    events:
      - {at: 5m, rule: ntp-silent, status: firing}       # no probe.ntp.status at all
      - {at: 4h30m, rule: root-full-soon, status: firing, labels: {mount: /}}

  - name: a probe's status alert
    interval: 1m
    input:
      - {metric: probe.ntp.state, values: "0 2x5 0x3"}
      - {metric: probe.ntp.status, values: "0 2x5 0x3"}
    expect:
      - {at: 1m30s, alerts: [{rule: "probe:ntp", level: critical}]}
      - {at: 8m, alerts: []}
"""


def write(tmp: Path, tests: str, config: str = CONFIG, name: str = "rules.yaml") -> Path:
    (tmp / "pharos.yaml").write_text(config)
    path = tmp / name
    path.write_text(textwrap.dedent(tests))
    return path


# -- the notation -------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "values"), [
    ("1 2 3", [1, 2, 3]),
    ("-2+4x3", [-2, 2, 6, 10]),                   # promtool's own examples
    ("1-2x4", [1, -1, -3, -5, -7]),
    ("1x4", [1, 1, 1, 1, 1]),
    ("1 _x3 2", [1, None, None, None, 2]),
    ("_ 0.5 1e3 -1.5x1", [None, 0.5, 1000, -1.5, -1.5]),
    ("  0+0.5x2\n 7 ", [0, 0.5, 1, 7]),
])
def test_notation_expands(text, values):
    assert expand(text) == values


def test_notation_nan_and_inf():
    nan, inf, minus = expand("NaN Inf -Inf")
    assert math.isnan(nan) and inf == math.inf and minus == -math.inf


@pytest.mark.parametrize(("text", "message"), [
    ("", "expected at least one value"),
    ("1 two 3", "got 'two' (value 2)"),
    ("1x", "got '1x' (value 1)"),
    ("1+x3", "got '1+x3' (value 1)"),
    ("stale", "got 'stale'"),
    (f"0x{MAX_SAMPLES}", f"expected at most {MAX_SAMPLES} values"),
])
def test_notation_errors(text, message):
    with pytest.raises(NotationError, match=re.escape(message)):
        expand(text)


# -- the run --------------------------------------------------------------------------------


def outcomes(rules: Path, idle_period: float | None = None) -> dict[str, list[tuple]]:
    spec: RuleTestFile = parse_as(RuleTestFile, rules.read_text(), str(rules), {})
    cfg = load_config(str(rules.parent / spec.config), environ={}).config
    thresholds = [*cfg.thresholds, *status_thresholds(cfg.probes)]
    out = {}
    for test in spec.tests:
        kw = {} if idle_period is None else {"idle_period": idle_period}
        o = run_test(test, thresholds, cfg, **kw)
        assert o.ok, (test.name, o.mismatches)
        out[test.name] = [(e.at, e.rule, e.status, e.level, e.labels) for e in o.events]
    return out


def test_ticking_every_second_gives_the_same_events(tmp_path):
    # While nothing is open the run ticks once a minute; the daemon ticks every second.
    for rules in (write(tmp_path, TESTS), SHIPPED):
        assert outcomes(rules) == outcomes(rules, idle_period=TICK)


def test_a_long_quiet_run_ticks_once_a_minute(tmp_path):
    rules = write(tmp_path, """\
        config: pharos.yaml
        tests:
          - name: a week of hourly values, then a breach
            interval: 1h
            input: [{metric: memory.used_percent, values: "50x167 99"}]
            expect: [{at: 167h, alerts: []}, {at: 168h, alerts: []}]
            events: [{at: 168h30s, rule: memory-high, status: firing}]
        """, config=CONFIG.split("  - name: ntp-silent")[0])
    spec: RuleTestFile = parse_as(RuleTestFile, rules.read_text(), str(rules), {})
    cfg = load_config(str(tmp_path / "pharos.yaml"), environ={}).config
    o = run_test(spec.tests[0], cfg.thresholds, cfg)
    assert o.ok, o.mismatches
    # 168 hours of minutes, the 169 samples and the soak's 30 seconds; not 604,800 ticks.
    assert o.steps <= 168 * 60 + 169 + 31


# -- the command --------------------------------------------------------------------------


def test_the_shipped_tests_of_the_reference_config_pass():
    r = pharosd("test-rules", str(SHIPPED), cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    spec: RuleTestFile = parse_as(RuleTestFile, SHIPPED.read_text(), str(SHIPPED), {})
    assert lines[:-1] == [f"PASS  {SHIPPED}: {t.name}" for t in spec.tests]
    assert lines[-1] == f"{len(spec.tests)} tests: {len(spec.tests)} passed, 0 failed"
    # The same tests, against the same rules named with -c from elsewhere.
    r = pharosd("test-rules", "-c", "etc/pharos.yaml", "etc/pharos.tests.yaml", cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr


def test_the_example_in_the_docs_passes(tmp_path):
    text = (ROOT / "docs" / "configuration.md").read_text()
    example = text.split("```yaml\nconfig: pharos.yaml")[1].split("```")[0]
    rules = tmp_path / "doc.tests.yaml"
    rules.write_text("config: pharos.yaml" + example)
    r = pharosd("test-rules", "-c", str(ROOT / "etc" / "pharos.yaml"), str(rules))
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines()[-1] == "2 tests: 2 passed, 0 failed"


def test_absent_predict_and_probe_status_through_the_command(tmp_path):
    r = pharosd("test-rules", str(write(tmp_path, TESTS)))
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines()[-1] == "4 tests: 4 passed, 0 failed"


def test_a_failing_test_says_when_and_what(tmp_path):
    rules = write(tmp_path, """\
        config: pharos.yaml
        tests:
          - name: passes
            interval: 10s
            input: [{metric: memory.used_percent, values: "50x3"}]
            expect: [{at: 30s, alerts: []}]
          - name: wrong level, too early
            interval: 10s
            input: [{metric: memory.used_percent, values: "50 92x9"}]
            expect:
              - {at: 20s, alerts: [{rule: memory-high}]}
              - {at: 1m, alerts: [{rule: memory-high, level: critical}]}
            events:
              - {at: 30s, rule: memory-high, status: firing}
        """)
    r = pharosd("test-rules", str(rules))
    assert r.returncode == 1
    assert r.stdout.splitlines() == [
        f"PASS  {rules}: passes",
        f"FAIL  {rules}: wrong level, too early",
        "      at 20s: expected firing [memory-high], got []",
        "      at 1m: expected firing [memory-high critical], got [memory-high warning]",
        "      events: expected but missing [30s firing memory-high], "
        "got but not expected [40s firing memory-high warning]",
        "2 tests: 1 passed, 1 failed",
    ]


def test_invalid_files_are_positioned_errors_and_the_others_still_run(tmp_path):
    bad = write(tmp_path, """\
        config: pharos.yaml
        tests:
          - name: t
            interval: 0s
            input:
              - {metric: memory.used_percent, values: "50 high"}
            expect:
              - {at: 1m, alerts: [{rule: memory-hihg}]}
            events:
              - {at: 1m, rule: memory-high, status: fired}
            extra: 1
        """, name="bad.yaml")
    good = write(tmp_path, TESTS, name="good.yaml")
    r = pharosd("test-rules", str(bad), str(good))
    assert r.returncode == 1
    assert r.stderr.splitlines() == [
        f"{bad}:6:47: tests[0].input[0].values: expected a number, _, a+bxn, a-bxn, axn or "
        "_xn, got 'high' (value 2)",
        f"{bad}:10:45: tests[0].events[0].status: expected one of firing, resolved, got "
        "'fired'",
        f"{bad}:11:5: tests[0]: unknown key 'extra' (known keys: name, interval, input, "
        "expect, events)",
        f"{bad}: invalid (3 errors)",
    ]
    assert r.stdout.splitlines()[-1] == "4 tests: 4 passed, 0 failed; 1 invalid file"

    bad.write_text(bad.read_text().replace("high\"", "9\"").replace("fired", "firing")
                   .replace("    extra: 1\n", ""))
    r = pharosd("test-rules", str(bad))
    assert r.returncode == 1
    assert r.stderr.splitlines() == [
        f"{bad}:4:15: tests[0].interval: expected a duration above 0, got 0s",
        f"{bad}: invalid (1 error)",
    ]

    # Once it loads, a rule the config does not define is an error too, not a failure.
    bad.write_text(bad.read_text().replace("0s", "1m"))
    r = pharosd("test-rules", str(bad))
    assert r.returncode == 1
    assert r.stderr.splitlines() == [
        f"{bad}:8:34: tests[0].expect[0].alerts[0].rule: expected a rule of "
        f"{tmp_path / 'pharos.yaml'}, got 'memory-hihg', did you mean 'memory-high'?",
        f"{bad}: invalid (1 error)",
    ]
    assert r.stdout == "0 tests: 0 passed, 0 failed; 1 invalid file\n"


def test_a_config_that_does_not_load_makes_the_file_invalid(tmp_path):
    rules = write(tmp_path, TESTS, config="interval: soon\n")
    r = pharosd("test-rules", str(rules))
    assert r.returncode == 1
    assert r.stderr.splitlines() == [
        f"{tmp_path / 'pharos.yaml'}:1:11: interval: expected a duration like 30s, got 'soon'",
        f"{rules}: invalid (1 error)",
    ]
    r = pharosd("test-rules", str(tmp_path / "missing.yaml"))
    assert r.returncode == 1
    assert "missing.yaml: cannot read the file: No such file or directory" in r.stderr
    r = pharosd("test-rules")
    assert r.returncode == 1 and "FILE" in r.stderr
