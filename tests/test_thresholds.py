"""Compiled thresholds (rules), sliding windows and summary text."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pharosd.alerting.config import LevelLimits, ThresholdConfig, WindowConfig
from pharosd.alerting.machine import Transition
from pharosd.alerting.rules import Rule, compile_rules
from pharosd.alerting.summary import (
    format_value,
    metric_info,
    summarize,
)
from pharosd.alerting.window import Window
from pharosd.config.schema import Config
from pharosd.model import Sample, labels_of
from pharosd.types import Duration, FrozenDict
from pharosd.units import format_duration

DEFAULTS = Config()


def rule(**kw: object) -> Rule:
    kw.setdefault("name", "t")
    kw.setdefault("metric", "memory.used_percent")
    if "above" not in kw and "below" not in kw:
        kw["above"] = 90.0
    return Rule.compile(ThresholdConfig(**kw), DEFAULTS)  # type: ignore[arg-type]


def sample(metric: str = "memory.used_percent", value: float = 1.0,
           note: str | None = None, **labels: str) -> Sample:
    return Sample(metric, labels_of(labels), value, 1.7e9, note)


# -- rules: defaults and rule_id ---------------------------------------------------


def test_defaults_are_resolved_from_the_config() -> None:
    r = rule()
    assert (r.soak, r.cool, r.limits, r.op) == (30.0, 60.0, (("warning", 90.0),), "above")
    r = Rule.compile(ThresholdConfig(name="t", metric="m", below=5, level="critical",
                                     soak=Duration(0), cool=Duration(5)), DEFAULTS)
    assert (r.soak, r.cool, r.limits, r.op) == (0.0, 5.0, (("critical", 5.0),), "below")


def test_windowed_rule_skips_the_soak_and_keeps_the_cool() -> None:
    r = rule(window=WindowConfig(over=Duration(300)), soak=Duration(100), cool=Duration(7))
    assert (r.soak, r.cool, r.window_over, r.window_mode) == (0.0, 7.0, 300.0, "avg")


def test_rule_id_is_stable_and_depends_on_the_definition() -> None:
    base = dict(name="t", metric="m", above=90.0)
    first = Rule.compile(ThresholdConfig(**base), DEFAULTS).rule_id   # type: ignore[arg-type]
    assert first == Rule.compile(ThresholdConfig(**base), DEFAULTS).rule_id  # type: ignore[arg-type]
    assert len(first) == 64 and int(first, 16) >= 0
    # 90 and 90.0 are the same limit.
    assert rule(metric="m", above=90).rule_id == first
    changed = [
        rule(metric="m", above=91.0),
        rule(metric="m", below=90.0),
        rule(name="u", metric="m", above=90.0),
        rule(metric="n", above=90.0),
        rule(metric="m", above=90.0, level="critical"),
        rule(metric="m", above=90.0, soak=Duration(31)),
        rule(metric="m", above=90.0, cool=Duration(61)),
        rule(metric="m", above=90.0, match=FrozenDict(mount="/")),
        rule(metric="m", above=90.0, window=WindowConfig(over=Duration(60))),
        rule(metric="m", above=LevelLimits(warning=90.0, critical=95.0)),
    ]
    ids = {r.rule_id for r in changed}
    assert first not in ids and len(ids) == len(changed)
    # The same level and limit written as level limits is the same definition.
    assert rule(metric="m", above=LevelLimits(warning=90.0)).rule_id == first


def test_rule_id_follows_inherited_defaults_only() -> None:
    inherits = ThresholdConfig(name="t", metric="m", above=90.0)
    explicit = ThresholdConfig(name="u", metric="m", above=90.0, soak=Duration(30),
                               cool=Duration(60), level="warning")
    other = Config(soak=Duration(10), cool=Duration(20), level="critical")
    assert Rule.compile(inherits, DEFAULTS).rule_id != Rule.compile(inherits, other).rule_id
    assert Rule.compile(explicit, DEFAULTS).rule_id == Rule.compile(explicit, other).rule_id
    windowed = ThresholdConfig(name="w", metric="m", above=1.0,
                               window=WindowConfig(over=Duration(60)), cool=Duration(5))
    # A windowed rule does not use the soak, so the default soak does not change it.
    assert (Rule.compile(windowed, DEFAULTS).rule_id
            == Rule.compile(windowed, Config(soak=Duration(99))).rule_id)


def test_summary_template_is_not_part_of_the_rule_id() -> None:
    assert rule(summary="x {value}").rule_id == rule().rule_id


def test_compile_rules_keeps_order() -> None:
    rules = compile_rules([ThresholdConfig(name="a", metric="x", above=1.0),
                           ThresholdConfig(name="b", metric="y", below=1.0)], DEFAULTS)
    assert [r.name for r in rules] == ["a", "b"]


# -- rules: matching -------------------------------------------------------------------


def test_match_is_by_metric_and_label_globs() -> None:
    r = rule(metric="disk.used_percent", match=FrozenDict(mount="/var*", fstype="ext4"))
    assert r.matches(sample("disk.used_percent", mount="/var", fstype="ext4"))
    assert r.matches(sample("disk.used_percent", mount="/var/lib", fstype="ext4", device="sda"))
    assert not r.matches(sample("disk.used_percent", mount="/", fstype="ext4"))
    assert not r.matches(sample("disk.used_percent", mount="/var", fstype="xfs"))
    assert not r.matches(sample("disk.free_bytes", mount="/var", fstype="ext4"))


def test_match_exact_value_is_not_a_prefix_and_is_case_sensitive() -> None:
    r = rule(metric="disk.used_percent", match=FrozenDict(mount="/"))
    assert r.matches(sample("disk.used_percent", mount="/"))
    assert not r.matches(sample("disk.used_percent", mount="/var"))
    r = rule(metric="x", match=FrozenDict(iface="ETH?"))
    assert r.matches(sample("x", iface="ETH0"))
    assert not r.matches(sample("x", iface="eth0"))


def test_a_missing_label_never_matches() -> None:
    r = rule(metric="x", match=FrozenDict(mount="*"))
    assert not r.matches(sample("x"))
    assert r.matches(sample("x", mount=""))


def test_no_match_matches_every_label_set() -> None:
    r = rule(metric="x")
    assert r.matches(sample("x")) and r.matches(sample("x", a="b"))


# -- rules: levels and limits ---------------------------------------------------------------


def test_above_is_strictly_greater() -> None:
    r = rule(above=90.0)
    assert r.observe(90.0).level is None
    assert r.observe(90.0001).level == "warning"
    assert r.observe(90.5).limit == 90.0


def test_below_is_strictly_less() -> None:
    r = rule(below=10.0, level="critical")
    assert r.observe(10.0).level is None
    assert r.observe(9.99).level == "critical"


def test_nan_never_breaches_and_inf_does() -> None:
    assert rule(above=90.0).observe(math.nan).level is None
    assert rule(below=90.0).observe(math.nan).level is None
    assert rule(above=90.0).observe(math.inf).level == "warning"
    assert rule(below=90.0).observe(-math.inf).level == "warning"


def test_multi_level_above_picks_the_highest_level_exceeded() -> None:
    r = rule(above=LevelLimits(info=70.0, warning=80.0, critical=95.0))
    assert r.multi_level
    assert [r.observe(v).level for v in (60, 75, 85, 99)] == [None, "info", "warning", "critical"]
    assert r.observe(85).limit == 80.0
    # Not breaching: the limit to cross is the lowest one.
    assert r.observe(60).limit == 70.0


def test_multi_level_below_picks_the_lowest_limit_crossed() -> None:
    r = rule(metric="disk.free_bytes", below=LevelLimits(warning=20.0, critical=10.0))
    assert [r.observe(v).level for v in (25, 15, 5)] == [None, "warning", "critical"]
    assert r.observe(5).limit == 10.0
    assert r.observe(25).limit == 20.0


limits_st = st.dictionaries(st.sampled_from(["info", "warning", "critical"]),
                            st.integers(-50, 50).map(float), min_size=1)


@settings(max_examples=300, deadline=None)
@given(limits=limits_st, value=st.integers(-60, 60).map(float), above=st.booleans())
def test_breached_level_is_the_most_severe_crossed(limits: dict[str, float], value: float,
                                                  above: bool) -> None:
    ll = LevelLimits(**limits)
    r = rule(above=ll) if above else rule(below=ll)
    crossed = [lvl for lvl, lim in limits.items() if (value > lim if above else value < lim)]
    order = ["info", "warning", "critical"]
    expected = max(crossed, key=order.index) if crossed else None
    obs = r.observe(value)
    assert obs.level == expected
    assert obs.value == value
    if expected is not None:
        assert obs.limit == limits[expected]
    else:
        assert obs.limit == (min if above else max)(limits.values())


# -- windows ----------------------------------------------------------------------------------


def test_window_is_not_evaluated_until_covered() -> None:
    w = Window(60, "avg")
    for t in range(0, 60, 10):
        w.add(t, 10.0 * t)
        assert w.value(t) is None and not w.covered(t)
    w.add(60, 600.0)
    # (0, 60] holds the samples at 10..60: the one at 0 has left the window.
    assert w.covered(60)
    assert w.value(60) == pytest.approx(sum(10.0 * t for t in range(10, 70, 10)) / 6)
    assert len(w) == 6


def test_window_min_max() -> None:
    lo, hi = Window(30, "min"), Window(30, "max")
    for t, v in enumerate([5.0, 1.0, 9.0, 3.0]):
        lo.add(t * 10, v)
        hi.add(t * 10, v)
    # At 30 the window (0, 30] holds 1, 9, 3.
    assert (lo.value(30), hi.value(30)) == (1.0, 9.0)
    # Time passes: at 45, (15, 45] holds 9 and 3.
    assert (lo.value(45), hi.value(45)) == (3.0, 9.0)


def test_window_gap_keeps_coverage_and_ignores_nan() -> None:
    w = Window(30, "avg")
    w.add(0, 1.0)
    w.add(10, math.nan)
    assert w.ignored == 1 and len(w) == 1
    w.add(100, 7.0)              # everything before 70 has left
    assert w.value(100) == 7.0


def test_window_is_bounded_and_counts_drops() -> None:
    w = Window(1000, "max", max_samples=4)
    for t in range(10):
        w.add(float(t), 100.0 - t)
    assert len(w) == 4 and w.dropped == 6
    assert w.value(1000.0) == 94.0          # the newest 4 (t = 6..9) are held
    assert w.value(1008.5) == 91.0          # (8.5, 1008.5] holds only t = 9
    assert w.value(1010.0) is None          # empty: nothing to aggregate
    w2 = Window(1000, "avg", max_samples=4)
    for t in range(10):
        w2.add(float(t), float(t))
    w2.add(1000.0, 10.0)
    assert w2.value(1000.0) == pytest.approx((7 + 8 + 9 + 10) / 4)


def test_window_infinities() -> None:
    w = Window(10, "avg")
    w.add(0, 1.0)
    w.add(5, math.inf)
    assert w.value(10) == math.inf           # (0, 10] holds only the +inf
    w.add(11, -math.inf)
    assert math.isnan(w.value(11) or 0.0)
    assert w.value(16) == -math.inf          # the +inf at 5 has left


def test_window_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="above 0"):
        Window(0)
    with pytest.raises(ValueError, match="at least 1"):
        Window(1, max_samples=0)


@settings(max_examples=300, deadline=None)
@given(
    over=st.integers(1, 50).map(float),
    mode=st.sampled_from(["avg", "min", "max"]),
    events=st.lists(st.tuples(st.integers(0, 20), st.integers(-1000, 1000)), max_size=80),
    max_samples=st.integers(1, 100),
)
def test_window_matches_a_naive_aggregate(over: float, mode: str,
                                          events: list[tuple[int, int]],
                                          max_samples: int) -> None:
    w = Window(over, mode, max_samples=max_samples)  # type: ignore[arg-type]
    held: list[tuple[float, float]] = []
    now, first = 0.0, None
    for dt, v in events:
        now += dt
        first = now if first is None else first
        w.add(now, float(v))
        held = [(t, x) for t, x in held if t > now - over] + [(now, float(v))]
        held = held[-max_samples:]
        got = w.value(now)
        if now - first < over:
            assert got is None
            continue
        values = [x for _, x in held]
        expected = {"avg": sum(values) / len(values), "min": min(values),
                    "max": max(values)}[mode]
        assert got == pytest.approx(expected)


# -- summary text ------------------------------------------------------------------------------


def firing(value: float, limit: float, duration: float, level: str = "warning",
           previous: str | None = None) -> Transition:
    return Transition("firing", level, previous, value, limit, 0.0, duration)  # type: ignore[arg-type]


def resolved(value: float, limit: float, duration: float,
             level: str = "warning") -> Transition:
    return Transition("resolved", level, None, value, limit, 0.0, duration)  # type: ignore[arg-type]


def test_summary_examples_read_right() -> None:
    mem = rule(metric="memory.used_percent", above=90.0)
    assert summarize(mem, firing(93.2, 90, 60), ()) == "memory used 93.2% > 90% for 1m"
    assert (summarize(mem, resolved(71.0, 90, 300), ())
            == "memory used 71.0%, back below 90% after 5m")
    disk = rule(metric="disk.used_percent", above=LevelLimits(warning=90.0, critical=95.0))
    labels = labels_of(mount="/", device="/dev/sda1")
    assert (summarize(disk, firing(96.0, 95, 30, "critical"), labels)
            == "disk / used 96.0% > 95% (critical) for 30s")
    assert (summarize(disk, firing(96.0, 95, 90, "critical", "warning"), labels)
            == "disk / used 96.0% > 95% (critical, was warning) for 1m30s")
    load = rule(metric="load.per_core_5", above=2.0)
    assert summarize(load, firing(2.4, 2, 0), ()) == "load per core (5m) 2.4 > 2"


def test_summary_of_windowed_below_and_byte_rules() -> None:
    cpu = rule(metric="cpu.percent", above=85.0, window=WindowConfig(over=Duration(300)))
    assert summarize(cpu, firing(91.25, 85, 0), ()) == "cpu busy 91.2% > 85% (avg over 5m)"
    assert (summarize(cpu, resolved(70, 85, 3600), ())
            == "cpu busy 70.0% (avg over 5m), back below 85% after 1h")
    free = rule(metric="memory.available_bytes", below=float(512 * 2**20))
    assert (summarize(free, firing(300 * 2**20, 512 * 2**20, 45), ())
            == "memory available 300.0 MiB < 512 MiB for 45s")
    assert (summarize(free, resolved(2.5 * 2**30, 512 * 2**20, 120), ())
            == "memory available 2.5 GiB, back above 512 MiB after 2m")
    rx = rule(metric="network.rx_bytes_per_second", above=1e6)
    assert (summarize(rx, firing(2e6, 1e6, 0), labels_of(interface="eth0"))
            == "network eth0 received 1.9 MiB/s > 976.56 KiB/s")


def test_summary_of_unknown_metric_uses_its_name_and_labels() -> None:
    r = rule(metric="http.latency", above=0.5)
    assert (summarize(r, firing(0.75, 0.5, 10), labels_of(url="http://x"))
            == "http.latency{url=http://x} 0.75 > 0.5 for 10s")
    assert summarize(r, firing(1234.5678, 0.5, 0), ()) == "http.latency 1234.57 > 0.5"


def test_summary_of_probe_status_appends_the_note() -> None:
    r = rule(metric="probe.ntp.status", above=1.0)
    assert (summarize(r, firing(2, 1, 0), (), note="NTP CRITICAL: offset 3s")
            == "probe ntp status CRITICAL (2) > 1: NTP CRITICAL: offset 3s")


def test_summary_of_probe_state_threshold_as_the_probes_generate_it() -> None:
    r = rule(name="probe:ntp", metric="probe.ntp.state",
             above=LevelLimits(warning=0.5, critical=1.5), summary="{note}")
    assert summarize(r, firing(2, 1.5, 0, "critical"), (), note="NTP CRITICAL: x") == \
        "NTP CRITICAL: x"
    assert summarize(r, firing(2, 1.5, 0, "critical"), ()) == \
        "probe ntp state CRITICAL (2) > 1.5 (critical)"


def test_summary_template_placeholders() -> None:
    r = rule(metric="disk.used_percent", above=90.0,
             summary="{rule} {metric} {value} {op} {limit} {level} [{labels}] {mount} {note}")
    text = summarize(r, firing(96, 90, 0), labels_of(mount="/", device="sda"), note="n")
    assert text == "t disk.used_percent 96.0% > 90% warning [device=sda, mount=/] / n"
    r = rule(summary="{status} after {duration}")
    assert summarize(r, resolved(1, 90, 90), ()) == "resolved after 1m30s"
    r = rule(below=1.0, summary="{op}")
    assert summarize(r, firing(0, 1, 0), ()) == "<"


def test_probe_note_template() -> None:
    r = rule(metric="probe.ntp.status", above=0.0, summary="{note}")
    assert summarize(r, firing(2, 0, 0), (), note="NTP CRITICAL") == "NTP CRITICAL"
    # A blank rendering falls back to the generated text.
    assert summarize(r, firing(2, 0, 0), (), note=None) == "probe ntp status CRITICAL (2) > 0"


@pytest.mark.parametrize("template", [
    "{nope}", "{0}", "{", "}", "{value:.1f}", "{value.real}", "{labels!z}", "{value[x]}",
])
def test_bad_template_falls_back_to_the_generated_summary(template: str) -> None:
    r = rule(summary=template)
    assert summarize(r, firing(93.2, 90, 60), ()) == "memory used 93.2% > 90% for 1m"


def test_forced_resolution_reason() -> None:
    mem = rule()
    assert (summarize(mem, resolved(93.2, 90, 120), (), reason="no data for 10m")
            == "memory used 93.2%: no data for 10m, resolved after 2m")
    tmpl = rule(summary="{rule} gone")
    assert (summarize(tmpl, resolved(93.2, 90, 120), (), reason="threshold removed")
            == "t gone (resolved: threshold removed)")
    tmpl = rule(summary="{rule}: {reason}")
    assert summarize(tmpl, resolved(93.2, 90, 120), (), reason="x") == "t: x"


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0s"), (-3, "0s"), (math.nan, "0s"), (0.25, "250ms"), (0.0001, "1ms"), (1, "1s"),
    (30, "30s"), (59.6, "1m"), (60, "1m"), (90, "1m30s"), (3600, "1h"), (3661, "1h1m"),
    (86400 + 7200, "1d2h"), (86400 + 300, "1d"), (math.inf, "0s"),
])
def test_coarse_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds, coarse=True) == text


@pytest.mark.parametrize(("value", "unit", "limit", "text"), [
    (93.25, "percent", False, "93.2%"),
    (90.0, "percent", True, "90%"),
    (92.5, "percent", True, "92.5%"),
    (512.0, "bytes", False, "512 B"),
    (1536.0, "bytes", False, "1.5 KiB"),
    (2**30, "bytes", True, "1 GiB"),
    (3 * 2**40, "bytes", False, "3.0 TiB"),
    (1024.0, "bytes_per_second", True, "1 KiB/s"),
    (12.5, "per_second", False, "12.5/s"),
    (5400.0, "seconds", False, "1h30m"),
    (412.0, "count", False, "412"),
    (71.04, "celsius", False, "71.0°C"),
    (80.0, "celsius", True, "80°C"),
    (2.4, "number", False, "2.4"),
    (0.125, "number", False, "0.125"),
    (math.nan, "percent", False, "NaN%"),
    (math.inf, "number", False, "inf"),
    (3.0, "status", False, "UNKNOWN (3)"),
    (7.0, "status", False, "7"),
    (None, "percent", False, "?"),
])
def test_format_value(value: float | None, unit: str, limit: bool, text: str) -> None:
    assert format_value(value, unit, limit=limit) == text  # type: ignore[arg-type]


def test_every_documented_metric_has_a_description() -> None:
    documented = [
        "cpu.percent", "cpu.iowait_percent", "cpu.steal_percent", "cpu.core_percent",
        "load.1", "load.5", "load.15", "load.per_core_1", "load.per_core_5",
        "load.per_core_15", "memory.total_bytes", "memory.available_bytes",
        "memory.used_bytes", "memory.used_percent", "swap.total_bytes", "swap.used_bytes",
        "swap.used_percent", "disk.total_bytes", "disk.used_bytes", "disk.free_bytes",
        "disk.used_percent", "disk.inodes_total", "disk.inodes_used", "disk.inodes_free",
        "disk.inodes_used_percent", "diskio.read_bytes_per_second",
        "diskio.write_bytes_per_second", "diskio.reads_per_second",
        "diskio.writes_per_second", "network.rx_bytes_per_second",
        "network.tx_bytes_per_second", "network.rx_packets_per_second",
        "network.tx_packets_per_second", "network.rx_errors_per_second",
        "network.tx_errors_per_second", "network.rx_drops_per_second",
        "network.tx_drops_per_second", "processes.total", "processes.running",
        "processes.blocked", "processes.zombie", "files.open", "files.max",
        "files.used_percent", "uptime.seconds", "temperature.celsius",
    ]
    labels = labels_of(cpu="0", mount="/", device="sda", interface="eth0",
                       sensor="coretemp", label="Core 0")
    for metric in documented:
        info = metric_info(metric, labels)
        assert info.description != metric and "{" not in info.description, metric
    assert metric_info("disk.used_percent", labels_of(mount="/srv")).description == \
        "disk /srv used"
    assert metric_info("temperature.celsius", labels_of(sensor="acpitz")).description == \
        "temperature acpitz"
