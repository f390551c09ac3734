"""A probe's status as samples and as an alert; the factory; failures become UNKNOWN.

The alert tests feed real probe samples (a scripted plugin run by the exec
probe) through the real ``Evaluator`` with the thresholds ``status_thresholds``
makes: WARNING fires a warning with the plugin's text as summary, CRITICAL
escalates, OK resolves, UNKNOWN follows the probe's ``unknown`` key.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

import pytest

from pharosd.alerting.config import LevelLimits, ThresholdConfig
from pharosd.alerting.evaluator import Evaluator
from pharosd.config.schema import Config
from pharosd.errors import ProbeError
from pharosd.model import AlertEvent, Sample
from pharosd.probes.base import MAX_NOTE, CheckResult, Probe
from pharosd.probes.config import (
    ExecProbeConfig,
    FileProbeConfig,
    HttpProbeConfig,
    ProbeConfig,
    ProcessProbeConfig,
    TcpProbeConfig,
)
from pharosd.probes.factory import build_probe, reserved_threshold_issues, status_thresholds
from pharosd.source import Source
from pharosd.types import Duration

EXEC = ExecProbeConfig(name="ntp", kind="exec", command=("/bin/true",))


# -- the generated thresholds --------------------------------------------------------------


def test_status_thresholds_shape():
    backup = FileProbeConfig(name="backup", kind="file", path="/x", soak=Duration(0),
                             cool=Duration(300))
    cfgs: list[ProbeConfig] = [EXEC, backup]
    ths = status_thresholds(cfgs)
    assert ths == [
        ThresholdConfig(name="probe:ntp", metric="probe.ntp.state",
                        above=LevelLimits(warning=0.5, critical=1.5), summary="{note}"),
        ThresholdConfig(name="probe:backup", metric="probe.backup.state",
                        above=LevelLimits(warning=0.5, critical=1.5), soak=Duration(0),
                        cool=Duration(300), summary="{note}"),
    ]
    assert all(t.check() == [] for t in ths)


def test_user_thresholds_cannot_take_the_reserved_names():
    user = [ThresholdConfig(name="ok", metric="m", above=1.0),
            ThresholdConfig(name="probe:ntp", metric="m", above=1.0)]
    issues = reserved_threshold_issues(user)
    assert [path for path, _ in issues] == ["thresholds[1].name"]
    assert "reserved" in issues[0][1]
    assert reserved_threshold_issues(status_thresholds([EXEC])) != []   # the prefix is ours


# -- through the evaluator -------------------------------------------------------------------


class Alerts:
    """Probe samples through an Evaluator with the probe's status threshold."""

    def __init__(self, cfg: ExecProbeConfig, extra: list[ThresholdConfig] | None = None,
                 **defaults: Any) -> None:
        self.defaults = Config(**defaults)
        self.probe = build_probe(cfg, 1.0)
        ths = [*(extra or []), *status_thresholds([cfg])]
        self.evaluator = Evaluator(ths, self.defaults, "testhost")
        self.mono = 1000.0
        self.wall = 1_700_000_000.0

    def run(self) -> list[AlertEvent]:
        self.mono += 1
        self.wall += 1
        samples = self.probe.collect(self.wall)
        return self.evaluator.observe(samples, self.mono, self.wall)

    def tick(self, seconds: float) -> list[AlertEvent]:
        self.mono += seconds
        self.wall += seconds
        return self.evaluator.tick(self.mono, self.wall)


def plugin(tmp_path: Path) -> tuple[ExecProbeConfig, Path]:
    """A plugin whose answer is the content of a file: ``CODE TEXT``."""
    answer = tmp_path / "answer"
    script = tmp_path / "check_answer"
    script.write_text('#!/bin/sh\nread code text < "$1"\necho "$text | v=$code;1;2"\n'
                      'exit "$code"\n')
    script.chmod(0o755)
    cfg = ExecProbeConfig(name="answer", kind="exec", command=(str(script), str(answer)))
    return cfg, answer


def test_plugin_status_fires_escalates_and_resolves_with_the_plugin_text(tmp_path):
    cfg, answer = plugin(tmp_path)
    a = Alerts(cfg, soak=Duration(0), cool=Duration(0))
    answer.write_text("0 SVC OK - all good\n")
    assert a.run() == []
    answer.write_text("1 SVC WARNING - 5 things queued\n")
    (fired,) = a.run()
    assert (fired.status, fired.level, fired.rule) == ("firing", "warning", "probe:answer")
    assert fired.metric == "probe.answer.state"
    assert fired.summary == "SVC WARNING - 5 things queued"
    answer.write_text("2 SVC CRITICAL - 50 things queued\n")
    (worse,) = a.run()
    assert (worse.status, worse.level, worse.previous_level) == ("firing", "critical", "warning")
    assert worse.summary == "SVC CRITICAL - 50 things queued"
    answer.write_text("0 SVC OK - queue empty\n")
    (resolved,) = a.run()
    assert resolved.status == "resolved" and resolved.summary == "SVC OK - queue empty"
    assert resolved.fingerprint == fired.fingerprint


def test_unknown_follows_the_unknown_key(tmp_path):
    cfg, answer = plugin(tmp_path)
    answer.write_text("3 SVC UNKNOWN - cannot reach the socket\n")
    pairs: tuple[tuple[Literal["warning", "critical"], str], ...] = (
        ("warning", "warning"), ("critical", "critical"))
    for unknown, level in pairs:
        a = Alerts(dataclasses.replace(cfg, unknown=unknown), soak=Duration(0))
        (fired,) = a.run()
        assert fired.level == level
        assert fired.summary == "check failed: SVC UNKNOWN - cannot reach the socket"
    a = Alerts(dataclasses.replace(cfg, unknown="ok"), soak=Duration(0))
    assert a.run() == []


def test_a_probe_failure_alerts_with_its_reason(tmp_path):
    cfg = ExecProbeConfig(name="gone", kind="exec", command=(str(tmp_path / "missing"),))
    a = Alerts(cfg, soak=Duration(0))
    (fired,) = a.run()
    assert fired.level == "warning"
    assert fired.summary == f"check failed: cannot run {tmp_path / 'missing'}: " \
                            "No such file or directory"


def test_soak_and_cool_of_the_probe(tmp_path):
    cfg, answer = plugin(tmp_path)
    cfg = dataclasses.replace(cfg, soak=Duration(10), cool=Duration(20))
    a = Alerts(cfg, soak=Duration(0), cool=Duration(0))      # defaults the probe overrides
    answer.write_text("2 SVC CRITICAL - down\n")
    assert a.run() == []                 # pending: the probe's soak is 10 s
    assert a.tick(5) == []
    (fired,) = a.tick(6)
    assert fired.status == "firing" and fired.summary == "SVC CRITICAL - down"
    answer.write_text("0 SVC OK - up\n")
    assert a.run() == []                 # resolving: the probe's cool is 20 s
    assert a.tick(10) == []
    (resolved,) = a.tick(11)
    assert resolved.status == "resolved" and resolved.summary == "SVC OK - up"


def test_ordinary_threshold_on_perfdata(tmp_path):
    cfg, answer = plugin(tmp_path)
    perf = ThresholdConfig(name="v-high", metric="probe.answer.v", above=1.5, level="critical",
                           soak=Duration(0))
    a = Alerts(cfg, extra=[perf], soak=Duration(0))
    answer.write_text("0 fine\n")
    assert a.run() == []
    answer.write_text("2 not fine\n")
    events = {e.rule: e for e in a.run()}
    assert set(events) == {"v-high", "probe:answer"}
    assert events["v-high"].value == 2 and events["v-high"].level == "critical"
    assert events["probe:answer"].level == "critical"


# -- failures become UNKNOWN -------------------------------------------------------------------


class Broken(Probe):
    kind = "broken"

    def __init__(self, error: Exception) -> None:
        super().__init__(EXEC, 5.0)
        self.error = error

    def check(self, now: float) -> CheckResult:
        raise self.error


def test_probe_error_becomes_unknown_with_the_reason():
    samples = Broken(ProbeError("pidfile /run/x.pid: permission denied")).collect(1.0)
    status, state = samples
    assert (status.metric, status.value) == ("probe.ntp.status", 3)
    assert (state.metric, state.value) == ("probe.ntp.state", 1)
    assert status.note == state.note == "check failed: pidfile /run/x.pid: permission denied"


def test_a_bug_in_a_probe_never_escapes_collect():
    p = Broken(ZeroDivisionError("division by zero"))
    status, _ = p.collect(1.0)
    assert status.value == 3
    assert status.note == "check failed: internal error: ZeroDivisionError: division by zero"
    assert p.crashes == 1


def test_notes_are_one_line_and_capped():
    class Chatty(Probe):
        def check(self, now: float) -> CheckResult:
            return CheckResult(1, "first\nsecond   third " + "x" * 5000)

    status, _ = Chatty(EXEC, 5.0).collect(1.0)
    note = status.note or ""
    assert note.startswith("first second third x") and len(note) == MAX_NOTE
    assert note.endswith("…")


def test_values_that_are_not_finite_are_not_sampled():
    class WithNan(Probe):
        def check(self, now: float) -> CheckResult:
            return CheckResult(0, "ok", (("a", float("nan")), ("b", 2.0), ("c", float("inf"))))

    metrics = [s.metric for s in WithNan(EXEC, 5.0).collect(1.0)]
    assert metrics == ["probe.ntp.status", "probe.ntp.state", "probe.ntp.b"]


# -- the factory ------------------------------------------------------------------------------


@pytest.mark.parametrize("cfg", [
    EXEC,
    HttpProbeConfig(name="web", kind="http", url="http://127.0.0.1/"),
    TcpProbeConfig(name="ssh", kind="tcp", port=22),
    ProcessProbeConfig(name="cron", kind="process", process="cron"),
    FileProbeConfig(name="backup", kind="file", path="/var/backups/*.gz", every=Duration(300)),
])
def test_build_probe_gives_a_blocking_source(cfg):
    p = build_probe(cfg, 7.0)
    source: Source = p
    assert source.name == cfg.name and source.blocking is True
    assert source.every == (float(cfg.every) if cfg.every is not None else 7.0)
    assert p.key == build_probe(dataclasses.replace(cfg), 7.0).key
    if cfg.every is None:
        assert p.key != build_probe(cfg, 8.0).key
    assert hash(p.key) == hash(build_probe(dataclasses.replace(cfg), 7.0).key)


def test_build_probe_rejects_other_configs():
    with pytest.raises(TypeError):
        build_probe("exec", 1.0)  # type: ignore[arg-type]


@pytest.mark.parametrize(("name", "ok"), [
    ("ntp", True), ("web-1", True), ("a_b", True), ("9lives", True),
    ("", False), ("-x", False), ("a.b", False), ("a b", False), ("x" * 65, False),
])
def test_probe_names(name, ok):
    cfg = dataclasses.replace(EXEC, name=name)
    assert (cfg.check() == []) == ok


def test_common_duration_checks():
    cfg = dataclasses.replace(EXEC, every=Duration(0), timeout=Duration(-1),
                              soak=Duration(-1), cool=Duration(-1))
    assert sorted(f for f, _ in cfg.check()) == ["cool", "every", "soak", "timeout"]
    cfg = dataclasses.replace(EXEC, command=())
    assert [f for f, _ in cfg.check()] == ["command"]


def test_samples_are_plain_samples():
    samples = build_probe(EXEC, 1.0).collect(5.0)
    assert all(isinstance(s, Sample) for s in samples)
    assert [(s.metric, s.value, s.note) for s in samples[:2]] == [
        ("probe.ntp.status", 0.0, "(no output)"), ("probe.ntp.state", 0.0, "(no output)")]
