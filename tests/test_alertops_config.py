"""Config of routing, reminders, maintenance windows, absent and predict: what loads, and
the positioned errors for what does not."""

from __future__ import annotations

import pytest

from pharosd.config import parse_config
from pharosd.errors import ConfigError


def errors(text: str) -> list[str]:
    with pytest.raises(ConfigError) as e:
        parse_config(text, "pharos.yaml", {})
    return [str(i) for i in e.value.issues]


def test_everything_loads():
    cfg = parse_config("""
sinks:
  - name: pager
    kind: file
    path: /tmp/pager.jsonl
    filter: {levels: [critical], rules: ["disk-*"], labels: {mount: "/srv*"}}
    repeat: 1h
maintenance:
  - {name: backup, start: 23:30, duration: 2h, days: [sat, sun], rules: [disk-io]}
  - {name: patch, start: "02:00", duration: 30m, labels: {mount: /}}
thresholds:
  - {name: ntp-silent, metric: probe.ntp.status, absent: 5m}
  - name: root-full-soon
    metric: disk.used_percent
    above: 100
    window: {over: 1h, mode: predict, ahead: 4h}
""", "pharos.yaml", {})
    pager = cfg.sinks[0]
    assert pager.filter is not None and pager.filter.levels == ("critical",)
    assert pager.repeat == 3600.0 and dict(pager.filter.labels) == {"mount": "/srv*"}
    backup, patch = cfg.maintenance
    assert (backup.start, backup.duration, backup.days) == ("23:30", 7200.0, ("sat", "sun"))
    assert patch.days == () and dict(patch.labels) == {"mount": "/"}
    absent, trend = cfg.thresholds
    assert absent.absent == 300.0 and absent.above is None
    assert trend.window.mode == "predict" and trend.window.ahead == 4 * 3600.0


@pytest.mark.parametrize(("text", "expected"), [
    ("sinks: [{name: a, kind: log, filter: {levels: [crit]}}]\n",
     "pharos.yaml:1:48: sinks[0].filter.levels[0]: expected one of info, warning, critical, "
     "got 'crit', did you mean 'critical'?"),
    ("sinks: [{name: a, kind: log, filter: {}}]\n",
     "pharos.yaml:1:38: sinks[0].filter: expected at least one of levels, rules, labels "
     "(leave 'filter' out to get every alert)"),
    ("sinks: [{name: a, kind: log, repeat: 0s}]\n",
     "pharos.yaml:1:38: sinks[0].repeat: expected a duration above 0, got 0s"),
    ("thresholds: [{name: a, metric: m, above: 1, window: {over: 5m, ahead: 1h}}]\n",
     "pharos.yaml:1:71: thresholds[0].window.ahead: expected 'ahead' only with mode: predict, "
     "got mode avg"),
    ("thresholds: [{name: a, metric: m, above: 1, window: {over: 5m, mode: predict}}]\n",
     "pharos.yaml:1:70: thresholds[0].window.mode: expected 'ahead' with mode: predict "
     "(how far ahead of now to read the trend)"),
    ("thresholds: [{name: a, metric: m, above: 1, absent: 5m}]\n",
     "pharos.yaml:1:53: thresholds[0].absent: expected either 'absent' or 'above', not both"),
    ("thresholds: [{name: a, metric: m, absent: 5m, window: {over: 1m}}]\n",
     "pharos.yaml:1:55: thresholds[0].window: expected no window with 'absent'"),
    ("maintenance: [{name: a, start: 25:00, duration: 1h}]\n",
     "pharos.yaml:1:32: maintenance[0].start: expected a time of day as HH:MM (00:00 to "
     "23:59), got '25:00'"),
    ("maintenance: [{name: a, start: '9', duration: 1h}]\n",
     "pharos.yaml:1:32: maintenance[0].start: expected a time of day as HH:MM (00:00 to "
     "23:59), got '9'"),
    ("maintenance: [{name: a, start: '09:00', duration: 8d}]\n",
     "pharos.yaml:1:51: maintenance[0].duration: expected a duration above 0s and at most "
     "7d, got 8d"),
    ("maintenance: [{name: a, start: '09:00', duration: 1h, days: [monday]}]\n",
     "pharos.yaml:1:62: maintenance[0].days[0]: expected one of mon, tue, wed, thu, fri, "
     "sat, sun, got 'monday', did you mean 'mon'?"),
])
def test_positioned_errors(text, expected):
    assert errors(text) == [expected]


def test_maintenance_names_are_unique():
    assert errors("maintenance: [{name: a, start: '1:00', duration: 1h},"
                  " {name: a, start: '2:00', duration: 1h}]\n") == [
        "pharos.yaml:1:62: maintenance[1].name: expected a unique name, got 'a' twice"]
