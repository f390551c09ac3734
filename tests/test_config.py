"""Tests of the config loader (pharosd.config): every error path with its exact position and
text, env substitution, durations and sizes, unions, the embedded default, path lookup."""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import re
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pharosd.alerting.config import LevelLimits, ThresholdConfig, WindowConfig
from pharosd.config import (
    DEFAULT_CONFIG_PATH,
    EMBEDDED_SOURCE,
    Config,
    LoadedConfig,
    default_config_text,
    load_config,
    parse_config,
    resolve_config_path,
)
from pharosd.config.hints import check_schema
from pharosd.config.loader import parse_as
from pharosd.config.substitution import substitute
from pharosd.errors import ConfigError, ConfigIssue
from pharosd.probes.config import ExecProbeConfig
from pharosd.sinks.config import FileSinkConfig, LogSinkConfig
from pharosd.statistics.config import StatisticConfig
from pharosd.types import Duration, FrozenDict, Size
from pharosd.units import UnitError, format_duration, format_size, parse_duration, parse_size

REPO = Path(__file__).resolve().parent.parent


def parse(text: str, env: dict[str, str] | None = None) -> Config:
    return parse_config(textwrap.dedent(text), "pharos.yaml", environ=env or {})


def errors(text: str, env: dict[str, str] | None = None, cls: type = Config) -> list[str]:
    """Every issue, as the user sees it (``FILE:LINE:COL: path: message``)."""
    with pytest.raises(ConfigError) as info:
        parse_as(cls, textwrap.dedent(text), "pharos.yaml", environ=env or {})
    assert str(info.value) == "\n".join(str(i) for i in info.value.issues)
    return [str(i) for i in info.value.issues]


def error(text: str, env: dict[str, str] | None = None, cls: type = Config) -> str:
    found = errors(text, env, cls)
    assert len(found) == 1, found
    return found[0]


# -- throwaway dataclasses for vocabulary the schema does not use (yet) ----------------


@dataclass(frozen=True)
class Item:
    name: str
    weight: float = field(default=1.0, metadata={"min": 0.0, "max": 10.0})


@dataclass(frozen=True)
class Everything:
    count: int = 0
    ratio: float = 0.5
    flag: bool = False
    every: Duration = Duration(1.0)
    size: Size = Size(0)
    mode: Literal["fast", "slow"] = "fast"
    ports: tuple[int, ...] = field(default=(), metadata={"min": 1, "max": 65535})
    headers: FrozenDict[int] = field(default_factory=FrozenDict)
    either: int | str | None = None
    item: Item | None = None
    items: tuple[Item, ...] = ()
    timeout: Duration = field(default=Duration(5.0), metadata={"min": 1.0, "max": 60.0})
    limit: Size = field(default=Size(1024), metadata={"max": 1024**2})
    maybe: str | None = None


@dataclass(frozen=True)
class Required:
    name: str
    note: str | None            # required but optional: missing means None


@dataclass(frozen=True)
class Secrets:
    api_token: Duration = Duration(0.0)
    password: int = 0
    headers: FrozenDict[int] = field(default_factory=FrozenDict)


@dataclass(frozen=True)
class Tree:
    name: str = ""
    children: tuple[Tree, ...] = ()


@dataclass(frozen=True)
class Checked:
    """A check() that names nested field paths."""

    items: tuple[Item, ...] = ()
    low: int = 0
    high: int = 10

    def check(self) -> list[tuple[str, str]]:
        out = []
        if self.low > self.high:
            out.append(("low", f"expected low <= high, got {self.low} > {self.high}"))
        for i, item in enumerate(self.items):
            if item.name == "bad":
                out.append((f"items[{i}].name", "expected a good name, got 'bad'"))
        if len(self.items) > 2:
            out.append(("", "expected at most 2 items"))
        return out


@dataclass(frozen=True)
class PostInit:
    low: int = 0

    def __post_init__(self) -> None:
        if self.low < 0:
            raise ValueError(f"expected low of 0 or more, got {self.low}")


@dataclass(frozen=True)
class Tagged:
    """A bare scalar fills `name`."""

    __scalar_field__: ClassVar[str] = "name"

    name: Literal["a", "b"]
    size: int = 1


@dataclass(frozen=True)
class HasTagged:
    tags: tuple[Tagged, ...] = ()


@dataclass(frozen=True)
class ScalarOrRecord:
    value: float | Item | None = None


@dataclass(frozen=True)
class NeedsMore:
    __scalar_field__: ClassVar[str] = "name"

    name: str
    other: int


@dataclass(frozen=True)
class Holder:
    x: NeedsMore | None = None


# Schemas the loader must refuse (check_schema).


@dataclass(frozen=True)
class A:
    kind: Literal["a"]


@dataclass(frozen=True)
class B:
    kind: Literal["a", "b"]


@dataclass(frozen=True)
class NoKind:
    x: int = 0


@dataclass(frozen=True)
class Dict:
    x: dict[str, int]


@dataclass(frozen=True)
class Lists:
    x: list[int]


@dataclass(frozen=True)
class Clash:
    x: A | B


@dataclass(frozen=True)
class Ambiguous:
    x: A | NoKind


@dataclass(frozen=True)
class BadScalarField:
    __scalar_field__: ClassVar[str] = "items"

    items: tuple[int, ...] = ()


# -- the happy paths -------------------------------------------------------------


def test_empty_and_comment_only_files_mean_all_defaults():
    assert parse("") == Config()
    assert parse("# nothing here\n\n   # at all\n") == Config()
    assert parse("---\n") == Config()
    assert parse("~\n") == Config()


def test_design_sketch_parses_into_dataclasses():
    config = parse("""\
        interval: 1s
        soak: 30s
        cool: 60s
        level: warning
        state_dir: /var/lib/pharos
        statistics:
          - cpu
          - {name: memory, every: 5s}
          - load
          - disk
          - network
        probes:
          - {name: ntp, kind: exec, every: 1m,
             command: [/usr/lib/nagios/plugins/check_ntp_time, -H, ntp.example]}
        thresholds:
          - {name: memory-high, metric: memory.used_percent, above: 90, level: critical, soak: 1m}
          - {name: root-full, metric: disk.used_percent, match: {mount: /}, above: 90}
          - {name: cpu-busy, metric: cpu.percent, above: 85, window: {over: 5m, mode: avg}}
        sinks:
          - {name: local, kind: file, path: /var/log/pharos/alerts.jsonl}
        buffer: {capacity: 100000}
        spill: {path: /var/lib/pharos/spill.db, max_size: 512MiB, max_age: 24h}
        uplink:
          remote_write: [{url: https://metrics.example/api/v1/write}]
        supervisor: {max_restarts: 5, period: 60s}
        """)
    assert config.interval == 1.0 and config.soak == 30.0 and config.cool == 60.0
    assert config.level == "warning" and config.state_dir == "/var/lib/pharos"
    assert [s.name for s in config.statistics] == ["cpu", "memory", "load", "disk", "network"]
    assert config.statistics[1] == StatisticConfig(name="memory", every=Duration(5.0))
    probe = config.probes[0]
    assert isinstance(probe, ExecProbeConfig)
    assert probe.command == ("/usr/lib/nagios/plugins/check_ntp_time", "-H", "ntp.example")
    assert probe.every == 60.0
    memory, root, cpu = config.thresholds
    assert (memory.above, memory.level, memory.soak) == (90.0, "critical", 60.0)
    assert root.match == {"mount": "/"} and isinstance(root.match, FrozenDict)
    assert cpu.window == WindowConfig(over=Duration(300.0), mode="avg")
    assert isinstance(config.sinks[0], FileSinkConfig)
    assert config.sinks[0].path == "/var/log/pharos/alerts.jsonl"
    assert config.spill.max_size == 512 * 1024**2 and config.spill.max_age == 86400.0
    assert config.uplink.remote_write[0].url == "https://metrics.example/api/v1/write"
    assert config.supervisor.max_restarts == 5 and config.supervisor.period == 60.0
    hash(config)   # frozen all the way down


def test_every_vocabulary_type_converts():
    value = parse_as(Everything, textwrap.dedent("""\
        count: 1_000
        ratio: 3
        flag: true
        every: 1h30m
        size: 64KiB
        mode: slow
        ports: [80, "443"]
        headers: {X-Retries: 3}
        either: hello
        item: {name: x, weight: 2.5}
        items: [{name: y}]
        timeout: 1m
        limit: 1MiB
        maybe: 12
        """))
    assert value == Everything(
        count=1000, ratio=3.0, flag=True, every=Duration(5400.0), size=Size(65536), mode="slow",
        ports=(80, 443), headers=FrozenDict({"X-Retries": 3}), either="hello",
        item=Item("x", 2.5), items=(Item("y"),), timeout=Duration(60.0), limit=Size(1024**2),
        maybe="12",
    )
    assert type(value.ratio) is float and type(value.ports) is tuple
    assert parse_as(Everything, "either: 5\n").either == 5   # int before str in a union
    assert parse_as(Everything, "flag: FALSE\n").flag is False


def test_required_optional_field_missing_means_none():
    assert parse_as(Required, "name: x\n") == Required(name="x", note=None)


def test_null_section_or_list_means_its_default():
    config = parse("""\
        spill:
          # path: /var/lib/pharos/spill.db
        statistics:
          # - cpu
        probes: []
        """)
    assert config.spill == Config().spill
    assert config.statistics == Config().statistics
    assert config.probes == ()


def test_anchors_aliases_and_merge_keys():
    config = parse("""\
        thresholds:
          - &base {name: a, metric: memory.used_percent, above: 90, soak: 1m}
          - <<: *base
            name: b
            below: 10
            above: ~
          - {<<: [*base], name: c}
        """)
    a, b, c = config.thresholds
    assert (a.name, a.above, a.soak) == ("a", 90.0, 60.0)
    assert (b.name, b.above, b.below, b.soak, b.metric) == ("b", None, 10.0, 60.0, a.metric)
    assert (c.name, c.above) == ("c", 90.0)


def test_bare_scalar_statistics_and_mappings_mix():
    config = parse("statistics: [cpu, {name: disk, every: 5m, include: ['/', /var]}]\n")
    assert config.statistics == (
        StatisticConfig(name="cpu"),
        StatisticConfig(name="disk", every=Duration(300.0), include=("/", "/var")),
    )
    assert parse_as(HasTagged, "tags: [a, {name: b, size: 3}]\n") == HasTagged(
        tags=(Tagged("a"), Tagged("b", 3)))


def test_level_limits_union_picks_by_shape():
    one, two = parse("""\
        thresholds:
          - {name: a, metric: m, above: 90}
          - {name: b, metric: m, above: {warning: 80, critical: 95}}
        """).thresholds
    assert one.above == 90.0 and type(one.above) is float
    assert two.above == LevelLimits(warning=80.0, critical=95.0)
    assert parse_as(ScalarOrRecord, "value: {name: x}\n").value == Item("x")
    assert parse_as(ScalarOrRecord, "value: 2\n").value == 2.0


def test_sinks_union_discriminated_by_kind():
    file_sink, log_sink = parse("""\
        sinks:
          - {name: f, kind: file, path: /tmp/a.jsonl, max_size: 10MB, keep: 2}
          - {name: l, kind: log}
        """).sinks
    assert isinstance(file_sink, FileSinkConfig) and isinstance(log_sink, LogSinkConfig)
    assert (file_sink.path, file_sink.max_size, file_sink.keep) == ("/tmp/a.jsonl", 10**7, 2)


def test_schema_uses_only_the_loader_vocabulary():
    check_schema(Config)


# -- YAML-level errors ----------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("interval: 10s\nsoak: [1, 2\n",
     "pharos.yaml:3:1: invalid YAML: expected ',' or ']', but got '<stream end>' "
     "(while parsing a flow sequence at line 2)"),
    ("interval: 10s\n\tsoak: 1s\n",
     "pharos.yaml:2:1: invalid YAML: found character '\\t' that cannot start any token "
     "(while scanning for the next token)"),
    ("soak: \"30s\n",
     "pharos.yaml:2:1: invalid YAML: found unexpected end of stream "
     "(while scanning a quoted scalar at line 1)"),
    ("x: y: z\n", "pharos.yaml:1:5: invalid YAML: mapping values are not allowed here"),
    ("soak: 1s\n---\ncool: 1s\n",
     "pharos.yaml:2:1: invalid YAML: expected a single document in the stream, "
     "but found another document"),
    ("soak: \"a\x07\"\n", "pharos.yaml:1:9: invalid YAML: character U+0007 is not allowed"),
])
def test_yaml_syntax_errors_have_the_position_of_the_problem(text, expected):
    assert errors(text) == [expected]


def test_top_level_must_be_a_mapping():
    assert error("- cpu\n- load\n") == "pharos.yaml:1:1: expected a mapping, got a list"
    assert error("just text\n") == "pharos.yaml:1:1: expected a mapping, got 'just text'"


def test_unknown_key_with_did_you_mean():
    assert errors("""\
        intreval: 5s
        thresholds:
          - name: a
            metric: m
            abvoe: 3
        """) == [
        "pharos.yaml:1:1: unknown key 'intreval', did you mean 'interval'?",
        "pharos.yaml:5:5: thresholds[0]: unknown key 'abvoe', did you mean 'above'?",
    ]


def test_unknown_key_without_a_close_match_lists_the_keys():
    assert error("buffer: {zzz: 1}\n") == (
        "pharos.yaml:1:10: buffer: unknown key 'zzz' (known keys: capacity)")


def test_duplicate_keys_anywhere():
    assert errors("""\
        interval: 5s
        soak: 1m
        soak: 2m
        thresholds:
          - name: a
            metric: m
            match: {mount: /, mount: /var}
            above: 1
            name: b
        nonsense:
          x: 1
          x: 2
        """) == [
        "pharos.yaml:3:1: duplicate key 'soak' (first at line 2)",
        "pharos.yaml:7:23: thresholds[0].match: duplicate key 'mount' (first at line 7)",
        "pharos.yaml:9:5: thresholds[0]: duplicate key 'name' (first at line 5)",
        "pharos.yaml:10:1: unknown key 'nonsense' (known keys: interval, soak, cool, level, "
        "host, state_dir, statistics, probes, thresholds, sinks, maintenance, buffer, spill, "
        "uplink, supervisor, http, include, plugin_dirs)",
        "pharos.yaml:12:3: nonsense: duplicate key 'x' (first at line 11)",
    ]


def test_missing_required_key_at_the_mapping():
    assert errors("""\
        thresholds:
          - name: a
            above: 3
          - {metric: m, above: 1}
        """) == [
        "pharos.yaml:2:5: thresholds[0]: missing required key 'metric'",
        "pharos.yaml:4:5: thresholds[1]: missing required key 'name'",
    ]


def test_non_string_keys_and_foreign_tags_are_errors():
    assert error("? [a, b]\n: 1\n") == "pharos.yaml:1:3: expected a string key, got a list"
    assert error("interval: !vault abc\n") == (
        "pharos.yaml:1:11: interval: unsupported YAML tag '!vault'")


def test_merge_of_a_scalar_is_an_error():
    assert errors("thresholds: [{<<: 3, name: a, metric: m, above: 1}]\n") == [
        "pharos.yaml:1:19: thresholds[0]: expected a mapping or a list of mappings to merge"]


def test_recursive_alias_is_an_error():
    assert error("&t {name: root, children: [*t]}\n", cls=Tree) == (
        "pharos.yaml:1:1: children[0]: expected a value, got an alias of its own parent")
    tree = parse_as(Tree, "children: [&leaf {name: x}, *leaf]\n")
    assert tree.children == (Tree("x"), Tree("x"))


# -- value errors ---------------------------------------------------------------------


def test_design_example_error_line():
    text = """\
        interval: 10s
        soak: 30s
        cool: 60s
        level: warning
        statistics: [cpu, memory]
        thresholds:
          - name: a
            metric: memory.used_percent
            above: 90
          - name: b
            metric: swap.used_percent
            above: 80
          - name: c
            above: ninety
            metric: cpu.percent
        """
    assert error(text) == "pharos.yaml:14:12: thresholds[2].above: expected a number, got 'ninety'"


@pytest.mark.parametrize(("text", "expected"), [
    ("interval: ninety\n", "1:11: interval: expected a duration like 30s, got 'ninety'"),
    ("interval: 30\n", "1:11: interval: expected a duration like 30s, got 30"),
    ("interval: '30'\n", "1:11: interval: expected a duration like 30s, got '30'"),
    ("interval: -5s\n", "1:11: interval: expected a duration of 0 or more, got '-5s'"),
    ("interval: [5s]\n", "1:11: interval: expected a duration like 30s, got a list"),
    ("interval:\n", "1:10: interval: expected a duration like 30s, got null"),
    ("level: warn\n",
     "1:8: level: expected one of info, warning, critical, got 'warn', did you mean 'warning'?"),
    ("level: 3\n", "1:8: level: expected one of info, warning, critical, got 3"),
    ("statistics: cpu\n", "1:13: statistics: expected a list, got 'cpu'"),
    ("statistics: [cpuu]\n",
     "1:14: statistics[0]: expected one of cpu, load, memory, swap, disk, diskio, network, "
     "processes, files, uptime, temperature, pressure, services, got 'cpuu', did you mean 'cpu'?"),
    ("statistics: [[cpu]]\n",
     "1:14: statistics[0]: expected a string or a mapping, got a list"),
    ("statistics: [{name: cpu, per_core: yes}]\n",
     "1:36: statistics[0].per_core: expected true or false, got 'yes'"),
    ("statistics: [{name: cpu, per_core: 1}]\n",
     "1:36: statistics[0].per_core: expected true or false, got 1"),
    ("buffer: 5\n", "1:9: buffer: expected a mapping, got 5"),
    ("buffer: {capacity: 1.5}\n", "1:20: buffer.capacity: expected an integer, got 1.5"),
    ("buffer: {capacity: true}\n", "1:20: buffer.capacity: expected an integer, got true"),
    ("buffer: {capacity: 0}\n", "1:20: buffer.capacity: expected an integer of at least 1, got 0"),
    ("spill: {max_size: 12XB}\n", "1:19: spill.max_size: expected a size like 512MiB, got '12XB'"),
    ("spill: {max_size: -1}\n", "1:19: spill.max_size: expected a size of 0 or more, got -1"),
    ("thresholds: [{name: a, metric: m, above: true}]\n",
     "1:42: thresholds[0].above: expected a number, got true"),
    ("thresholds: [{name: a, metric: m, above: [1]}]\n",
     "1:42: thresholds[0].above: expected a number or a mapping, got a list"),
    ("thresholds: [{name: a, metric: m, above: {warning: x}}]\n",
     "1:52: thresholds[0].above.warning: expected a number, got 'x'"),
    ("thresholds: [{name: ~, metric: m, above: 1}]\n",
     "1:21: thresholds[0].name: expected a string, got null"),
    ("thresholds: [{name: a, metric: m, above: 1, window: {over: 5m, mode: mean}}]\n",
     "1:70: thresholds[0].window.mode: expected one of avg, min, max, predict, got 'mean'"),
])
def test_value_errors(text, expected):
    assert error(text) == "pharos.yaml:" + expected


@pytest.mark.parametrize(("text", "expected"), [
    ("count: 5x\n", "1:8: count: expected an integer, got '5x'"),
    ("ratio: false\n", "1:8: ratio: expected a number, got false"),
    ("ratio: .5e\n", "1:8: ratio: expected a number, got '.5e'"),
    ("ratio: 1e999\n", "1:8: ratio: expected a number, got 1e999"),
    ("ratio: .nan\n", "1:8: ratio: expected a number, got '.nan'"),
    ("size: 1.5\n", "1:7: size: expected a whole number of bytes, got 1.5"),
    ("ports: [80, 0, 70000]\n",
     "1:13: ports[1]: expected an integer between 1 and 65535, got 0\n"
     "pharos.yaml:1:16: ports[2]: expected an integer between 1 and 65535, got 70000"),
    ("headers: {X-Retries: many}\n",
     "1:22: headers.X-Retries: expected an integer, got 'many'"),
    ("headers: [1]\n", "1:10: headers: expected a mapping, got a list"),
    ("either: [1]\n", "1:9: either: expected an integer or a string, got a list"),
    ("item: {name: x, weight: 11}\n",
     "1:25: item.weight: expected a number between 0 and 10, got 11"),
    ("items: [{name: x, weight: -1}]\n",
     "1:27: items[0].weight: expected a number between 0 and 10, got -1"),
    ("timeout: 500ms\n", "1:10: timeout: expected a duration between 1s and 1m, got '500ms'"),
    ("limit: 2MiB\n", "1:8: limit: expected a size of at most 1MiB, got '2MiB'"),
    ("mode: [fast]\n", "1:7: mode: expected one of fast, slow, got a list"),
])
def test_value_errors_of_the_whole_vocabulary(text, expected):
    assert "\n".join(errors(text, cls=Everything)) == "pharos.yaml:" + expected


def test_bare_scalar_record_reports_its_missing_fields():
    assert error("x: hello\n", cls=Holder) == "pharos.yaml:1:4: x: missing required key 'other'"


def test_post_init_errors_are_positioned():
    assert error("low: -1\n", cls=PostInit) == (
        "pharos.yaml:1:1: expected low of 0 or more, got -1")


# -- kind-discriminated unions ------------------------------------------------------------


def test_unknown_kind_with_did_you_mean_and_the_list_of_kinds():
    message = error("sinks: [{name: x, kind: fiel}]\n")
    assert message.startswith(
        "pharos.yaml:1:25: sinks[0].kind: unknown kind 'fiel', did you mean 'file'? (known kinds: ")
    kinds = re.search(r"\(known kinds: (.*)\)$", message)
    assert kinds is not None and {"file", "log"} <= set(kinds[1].split(", "))


def test_unknown_kind_without_a_close_match():
    message = error("sinks: [{name: x, kind: carrier-pigeon}]\n")
    assert message.startswith(
        "pharos.yaml:1:25: sinks[0].kind: unknown kind 'carrier-pigeon' (known kinds: file, log")


def test_missing_or_malformed_kind():
    assert error("sinks:\n  - name: x\n    path: /tmp/x\n").startswith(
        "pharos.yaml:2:5: sinks[0]: missing required key 'kind' (known kinds: file, log")
    assert error("sinks: [{name: x, kind: [file]}]\n").startswith(
        "pharos.yaml:1:25: sinks[0].kind: expected one of file, log")
    assert error("sinks: [{name: x, kind: [file]}]\n").endswith(", got a list")


def test_fields_are_checked_against_the_chosen_kind():
    assert error("sinks: [{name: x, kind: log, keep: 3}]\n").startswith(
        "pharos.yaml:1:30: sinks[0]: unknown key 'keep' (known keys: name, kind")
    assert error("sinks: [{name: x, kind: file, keep: 0}]\n") == (
        "pharos.yaml:1:37: sinks[0].keep: expected an integer of at least 1, got 0")


def test_probe_kind_is_required_even_with_one_kind():
    assert error("probes: [{name: x, command: [/bin/true]}]\n").startswith(
        "pharos.yaml:1:10: probes[0]: missing required key 'kind' (known kinds: exec")


# -- check() rules ------------------------------------------------------------------------


def test_check_errors_point_at_the_field_or_the_object():
    assert errors("""\
        thresholds:
          - {name: a, metric: m}
          - {name: b, metric: m, above: {}}
          - {name: c, metric: m, above: {critical: 9}, level: critical}
          - {name: d, metric: m, above: 1, window: {over: 0s}}
          - {name: a, metric: m, below: 1}
        statistics: [{name: cpu}, cpu]
        """) == [
        "pharos.yaml:2:5: thresholds[0]: expected exactly one of 'above', 'below' or 'absent'",
        "pharos.yaml:3:33: thresholds[1].above: expected at least one of info, warning, critical",
        "pharos.yaml:4:55: thresholds[2].level: "
        "expected no 'level' when the limit names its levels",
        "pharos.yaml:5:51: thresholds[3].window.over: expected a duration above 0, got 0s",
        "pharos.yaml:6:12: thresholds[4].name: expected a unique name, got 'a' twice",
        "pharos.yaml:7:27: statistics[1].name: expected a unique name, got 'cpu' twice",
    ]


def test_check_with_dotted_paths_and_bare_scalars():
    assert errors("""\
        low: 5
        high: 1
        items:
          - name: good
          - name: bad
          - {name: third}
        """, cls=Checked) == [
        "pharos.yaml:1:1: expected at most 2 items",
        "pharos.yaml:1:6: low: expected low <= high, got 5 > 1",
        "pharos.yaml:5:11: items[1].name: expected a good name, got 'bad'",
    ]


def test_check_of_a_field_left_at_its_default_points_at_the_object():
    assert error("items: [{name: ok}]\nhigh: -1\n", cls=Checked) == (
        "pharos.yaml:1:1: low: expected low <= high, got 0 > -1")
    assert error("x: 1\n", cls=Tree) == (
        "pharos.yaml:1:1: unknown key 'x' (known keys: name, children)")


# -- several errors at once -------------------------------------------------------------


def test_every_error_in_the_file_is_reported_in_file_order():
    found = errors("""\
        interval: ninety
        soak: 30
        levle: warning
        statistics: [cpu, memroy]
        thresholds:
          - {name: a, metric: m, above: {warning: x, critical: 9}}
          - {name: b, above: 1}
        sinks:
          - {name: s, kind: fiel}
        buffer: {capacity: 0}
        spill: {max_size: lots}
        soak: 1m
        """, env={})
    assert found == [
        "pharos.yaml:1:11: interval: expected a duration like 30s, got 'ninety'",
        "pharos.yaml:2:7: soak: expected a duration like 30s, got 30",
        "pharos.yaml:3:1: unknown key 'levle', did you mean 'level'?",
        "pharos.yaml:4:19: statistics[1]: expected one of cpu, load, memory, swap, disk, diskio, "
        "network, processes, files, uptime, temperature, pressure, services, got 'memroy', "
        "did you mean 'memory'?",
        "pharos.yaml:6:43: thresholds[0].above.warning: expected a number, got 'x'",
        "pharos.yaml:7:5: thresholds[1]: missing required key 'metric'",
        found[6],
        "pharos.yaml:10:20: buffer.capacity: expected an integer of at least 1, got 0",
        "pharos.yaml:11:19: spill.max_size: expected a size like 512MiB, got 'lots'",
        "pharos.yaml:12:1: duplicate key 'soak' (first at line 2)",
    ]
    assert found[6].startswith("pharos.yaml:9:21: sinks[0].kind: unknown kind 'fiel'")


def test_config_error_carries_structured_issues():
    with pytest.raises(ConfigError) as info:
        parse_config("soak: x\n", "f.yaml", environ={})
    assert info.value.issues == [
        ConfigIssue("f.yaml", 1, 7, "soak", "expected a duration like 30s, got 'x'")]


# -- environment substitution -----------------------------------------------------------


def test_env_substitution_then_conversion_by_type():
    config = parse("""\
        interval: ${IV}
        host: "${HOST_PREFIX}-${HOST_SUFFIX}"
        state_dir: $$HOME/${NOPE:-pharos}
        buffer: {capacity: "${CAP}"}
        thresholds: [{name: a, metric: m, above: "${ABOVE}"}]
        """, env={"IV": "5s", "HOST_PREFIX": "web", "HOST_SUFFIX": "01", "CAP": "42",
                  "ABOVE": "92.5"})
    assert config.interval == 5.0
    assert config.host == "web-01"
    assert config.state_dir == "$HOME/pharos"
    assert config.buffer.capacity == 42
    assert config.thresholds[0].above == 92.5


def test_env_default_applies_when_unset_or_empty():
    text = "host: ${H:-fallback}\nstate_dir: ${D}\n"
    assert parse(text, {"D": "/x"}).host == "fallback"
    assert parse(text, {"H": "", "D": "/x"}).host == "fallback"
    assert parse(text, {"H": "h1", "D": "/x"}).host == "h1"
    assert parse(text, {"H": "h1", "D": ""}).state_dir is None   # empty + optional: null


def test_dollar_without_braces_is_literal():
    assert parse("host: a$b$\n").host == "a$b$"


def test_unset_variable_is_an_error_naming_it():
    assert errors("""\
        sinks:
          - name: hook
            kind: file
            path: /x/${PHAROS_DIR}/${PHAROS_FILE:-alerts.jsonl}
        interval: ${PHAROS_IV}
        """) == [
        "pharos.yaml:4:11: sinks[0].path: environment variable PHAROS_DIR is not set",
        "pharos.yaml:5:11: interval: environment variable PHAROS_IV is not set",
    ]


def test_substituted_value_that_does_not_convert():
    # The environment's value may be a secret: the error shows the reference as written.
    assert error("interval: ${IV}\n", env={"IV": "ninety"}) == (
        "pharos.yaml:1:11: interval: expected a duration like 30s, "
        "got '${IV}' (its value from the environment is not shown)")
    assert error('buffer: {capacity: "${CAP}"}\n', env={"CAP": "0"}) == (
        "pharos.yaml:1:20: buffer.capacity: expected an integer of at least 1, "
        "got '${CAP}' (its value from the environment is not shown)")


def test_bad_references():
    assert error("host: ${1BAD}\n") == (
        "pharos.yaml:1:7: host: invalid reference '${1BAD}' (expected ${NAME} or ${NAME:-default})")
    assert error("host: abc${OPEN\n") == (
        "pharos.yaml:1:7: host: unterminated '${' (expected ${NAME} or ${NAME:-default})")


def test_secret_values_are_redacted_in_errors():
    env = {"TOKEN": "hunter2", "PW": "swordfish", "H": "sekrit"}
    found = errors("""\
        api_token: ${TOKEN}
        password: ${PW}
        headers: {X-Auth-Token: "${H}", X-Retries: "${H}"}
        """, env=env, cls=Secrets)
    assert found == [
        "pharos.yaml:1:12: api_token: expected a duration like 30s, got <redacted>",
        "pharos.yaml:2:11: password: expected an integer, got <redacted>",
        "pharos.yaml:3:25: headers.X-Auth-Token: expected an integer, got <redacted>",
        "pharos.yaml:3:44: headers.X-Retries: expected an integer, "
        "got '${H}' (its value from the environment is not shown)",
    ]
    assert not any(secret in line for line in found
                   for secret in ("hunter2", "swordfish", "sekrit"))


def test_variables_come_from_os_environ_by_default(monkeypatch):
    monkeypatch.setenv("PHAROS_TEST_IV", "7s")
    assert parse_config("interval: ${PHAROS_TEST_IV}\n").interval == 7.0


def test_substitute_is_pure():
    assert substitute("a${X}b${Y:-y}$$${Z}", {"X": "1", "Z": ""}) == ("a1by$", [])
    assert substitute("${A}${A}", {}) == ("", ["environment variable A is not set"] * 2)


# -- durations and sizes ----------------------------------------------------------------


@pytest.mark.parametrize(("text", "seconds"), [
    ("250ms", 0.25), ("30s", 30.0), ("5m", 300.0), ("1h", 3600.0), ("2d", 172800.0),
    ("1h30m", 5400.0), ("1.5s", 1.5), ("1d2h3m4s5ms", 93784.005), ("0", 0.0), ("0.0", 0.0),
    ("0s", 0.0), (" 10s ", 10.0), ("1m 30s", 90.0), ("0.5ms", 0.0005),
])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(("text", "expected"), [
    ("30", "a duration like 30s"), ("1.5", "a duration like 30s"), ("", "a duration like 30s"),
    ("s", "a duration like 30s"), ("5 minutes", "a duration like 30s"),
    ("30m1h", "a duration like 30s"), ("1m1m", "a duration like 30s"),
    ("1S", "a duration like 30s"), ("+5s", "a duration like 30s"), ("1e3s", "a duration like 30s"),
    ("-5s", "a duration of 0 or more"), ("-0", "a duration of 0 or more"),
    ("-x", "a duration like 30s"),
])
def test_parse_duration_refuses(text, expected):
    with pytest.raises(UnitError) as info:
        parse_duration(text)
    assert info.value.expected == expected
    assert str(info.value) == f"expected {expected}, got {text!r}"


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0s"), (0.25, "250ms"), (1, "1s"), (1.5, "1.5s"), (90, "1m30s"), (3600, "1h"),
    (5400, "1h30m"), (86400 + 1, "1d1s"), (60.25, "1m250ms"), (0.0004, "0s"), (0.0006, "1ms"),
    (-90, "-1m30s"), (1.0000001, "1s"),
])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


def test_format_duration_refuses_infinity():
    with pytest.raises(ValueError):
        format_duration(math.inf)


@given(st.integers(min_value=0, max_value=10**12))
def test_format_then_parse_duration_round_trips_whole_milliseconds(ms):
    seconds = ms / 1000
    assert parse_duration(format_duration(seconds)) == seconds


@given(st.floats(min_value=0, max_value=1e9, allow_nan=False))
def test_format_duration_is_within_half_a_millisecond(seconds):
    assert abs(parse_duration(format_duration(seconds)) - seconds) <= 0.0005 + 1e-9 * seconds


@given(st.lists(st.integers(min_value=0, max_value=999), min_size=5, max_size=5))
def test_parse_duration_of_compound_text(parts):
    d, h, m, s, ms = parts
    text = "".join(f"{n}{u}" for n, u in zip(parts, ("d", "h", "m", "s", "ms"), strict=True))
    assert parse_duration(text) == (d * 86_400_000 + h * 3_600_000 + m * 60_000
                                    + s * 1000 + ms) / 1000


@pytest.mark.parametrize(("text", "size"), [
    ("64KiB", 65536), ("512MiB", 512 * 1024**2), ("1GiB", 1024**3), ("2TiB", 2 * 1024**4),
    ("10KB", 10_000), ("10kB", 10_000), ("10MB", 10**7), ("1GB", 10**9), ("100B", 100),
    ("1024", 1024), ("0", 0), ("1.5KiB", 1536), ("512 MiB", 512 * 1024**2),
])
def test_parse_size(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize(("text", "expected"), [
    ("lots", "a size like 512MiB"), ("12XB", "a size like 512MiB"), ("1mib", "a size like 512MiB"),
    ("", "a size like 512MiB"), ("1.5", "a whole number of bytes"), ("-1", "a size of 0 or more"),
    ("-1KiB", "a size of 0 or more"),
])
def test_parse_size_refuses(text, expected):
    with pytest.raises(UnitError) as info:
        parse_size(text)
    assert info.value.expected == expected


@pytest.mark.parametrize(("size", "text"), [
    (0, "0B"), (100, "100B"), (1024, "1KiB"), (1536, "1.5KiB"), (512 * 1024**2, "512MiB"),
    (1024**3, "1GiB"), (3 * 1024**4, "3TiB"), (10**9, "953.7MiB"),
])
def test_format_size(size, text):
    assert format_size(size) == text


@given(st.integers(min_value=0, max_value=2**50))
def test_format_size_round_trips_when_exact(size):
    text = format_size(size)
    if "." not in text:
        assert parse_size(text) == size


# -- loading files, the embedded default and the path lookup ----------------------------


def test_load_config_from_a_file(tmp_path):
    path = tmp_path / "pharos.yaml"
    text = "interval: 2s\nhost: ${H}\n"
    path.write_text(text)
    before = time.time()
    loaded = load_config(str(path), environ={"H": "box"})
    assert isinstance(loaded, LoadedConfig)
    assert loaded.config.interval == 2.0 and loaded.config.host == "box"
    assert loaded.source == str(path)
    assert loaded.digest == hashlib.sha256(text.encode()).hexdigest()
    assert before <= loaded.loaded_at <= time.time()
    with pytest.raises(dataclasses.FrozenInstanceError):
        loaded.source = "x"  # type: ignore[misc]


def test_load_config_errors_name_the_file(tmp_path):
    path = tmp_path / "pharos.yaml"
    path.write_text("interval: 2s\nsoak: x\n")
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    assert str(info.value) == f"{path}:2:7: soak: expected a duration like 30s, got 'x'"


def test_missing_unreadable_and_binary_files(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(str(missing))
    assert str(info.value) == f"{missing}: cannot read the file: No such file or directory"
    with pytest.raises(ConfigError) as info:
        load_config(str(tmp_path))
    assert str(info.value) == f"{tmp_path}: cannot read the file: Is a directory"
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"interval: 1s\n\xff\xfe")
    with pytest.raises(ConfigError) as info:
        load_config(str(binary))
    assert str(info.value) == f"{binary}: expected UTF-8 text, got byte 0xff at offset 13"


def test_embedded_default_loads_and_is_useful():
    loaded = load_config(None, environ={})
    assert loaded.source == EMBEDDED_SOURCE == "<embedded default>"
    assert loaded.digest == hashlib.sha256(default_config_text().encode()).hexdigest()
    config = loaded.config
    assert config.interval == 10.0
    every = {s.name: s.every for s in config.statistics}
    assert every == {
        "cpu": None, "load": None, "memory": None, "swap": None, "disk": None, "diskio": None,
        "network": None, "processes": 30.0, "files": None, "uptime": 60.0, "temperature": 30.0,
        "pressure": None, "services": 30.0,
    }
    by_name = {t.name: t for t in config.thresholds}
    assert by_name == {
        "memory-high": ThresholdConfig(name="memory-high", metric="memory.used_percent",
                                       above=LevelLimits(warning=90.0, critical=95.0)),
        "swap-high": ThresholdConfig(name="swap-high", metric="swap.used_percent", above=80.0),
        "root-full": ThresholdConfig(name="root-full", metric="disk.used_percent",
                                     match=FrozenDict({"mount": "/"}),
                                     above=LevelLimits(warning=90.0, critical=95.0)),
        "inodes-low": ThresholdConfig(name="inodes-low", metric="disk.inodes_used_percent",
                                      above=90.0),
        "load-high": ThresholdConfig(name="load-high", metric="load.per_core_5",
                                     above=LevelLimits(warning=2.0, critical=4.0),
                                     soak=Duration(300.0)),
        "memory-pressure": ThresholdConfig(
            name="memory-pressure", metric="pressure.memory_full_avg60",
            above=LevelLimits(warning=10.0, critical=30.0), soak=Duration(120.0)),
        "unit-failed": ThresholdConfig(name="unit-failed", metric="services.active_state",
                                       below=0.0, soak=Duration(0.0),
                                       summary="unit {unit} has failed"),
    }
    file_sink, log_sink = config.sinks
    assert isinstance(file_sink, FileSinkConfig) and file_sink.name == "file"
    assert file_sink.path is None   # <state_dir>/alerts.jsonl
    assert isinstance(log_sink, LogSinkConfig) and log_sink.name == "log"


def test_every_threshold_metric_of_the_default_is_documented():
    docs = (REPO / "docs" / "metrics.md").read_text()
    documented = {re.sub(r"\{.*\}$", "", name) for name in re.findall(r"`([a-z0-9_.{}, ]+)`", docs)}
    metrics = {t.metric for t in load_config(None, environ={}).config.thresholds}
    assert metrics and metrics <= documented, metrics - documented


def test_embedded_default_is_commented():
    text = default_config_text()
    assert text.lstrip().startswith("#")
    assert sum(1 for line in text.splitlines() if "#" in line) >= 10


def test_config_path_resolution_order(tmp_path):
    default = tmp_path / "pharos.yaml"
    env = {"PHAROS_CONFIG": "/from/env.yaml"}
    assert resolve_config_path("/from/cli.yaml", env, str(default)) == "/from/cli.yaml"
    assert resolve_config_path(None, env, str(default)) == "/from/env.yaml"
    assert resolve_config_path(None, {"PHAROS_CONFIG": ""}, str(default)) is None
    assert resolve_config_path(None, {}, str(default)) is None
    default.write_text("interval: 1s\n")
    assert resolve_config_path(None, {}, str(default)) == str(default)
    assert resolve_config_path(None, env, str(default)) == "/from/env.yaml"
    assert DEFAULT_CONFIG_PATH == "/etc/pharos.yaml"


def test_config_path_resolution_reads_os_environ_by_default(monkeypatch):
    monkeypatch.setenv("PHAROS_CONFIG", "/from/os/env.yaml")
    assert resolve_config_path(None) == "/from/os/env.yaml"


# -- the schema checker and the package -----------------------------------------------


def test_check_schema_refuses_what_the_loader_cannot_build():
    for cls, message in [
        (Dict, "unsupported config annotation dict[str, int]"),
        (Lists, "unsupported config annotation list[int]"),
        (Clash, "kind 'a' is used by A and B"),
        (Ambiguous, "NoKind needs a `kind: Literal[...]` field"),
        (BadScalarField, "BadScalarField.__scalar_field__ = 'items' is not a scalar field"),
    ]:
        with pytest.raises(TypeError, match=re.escape(message)):
            check_schema(cls)


def test_importing_a_family_module_first_has_no_cycle():
    for module in ("pharosd.sinks.config", "pharosd.probes.config", "pharosd.pipeline.config",
                   "pharosd.alerting.config", "pharosd.statistics.config", "pharosd.types",
                   "pharosd.config"):
        result = subprocess.run([sys.executable, "-c", f"import {module}"], cwd=REPO,
                                capture_output=True, text=True, env=dict(os.environ), timeout=60)
        assert result.returncode == 0, result.stderr


def test_statistic_options_only_where_they_apply():
    from pharosd.config import parse_config as _parse
    from pharosd.errors import ConfigError as _ConfigError

    text = ("statistics:\n  - {name: memory, per_core: true}\n"
            "  - {name: load, include: [x]}\n  - {name: cpu, per_core: true}\n"
            "  - {name: disk, exclude: ['/boot']}\n")
    with pytest.raises(_ConfigError) as info:
        _parse(text, "p.yaml")
    messages = [str(i) for i in info.value.issues]
    assert len(messages) == 2, messages
    assert messages[0].startswith("p.yaml:2:")
    assert "statistics[0].per_core: expected per_core only on cpu, got it on memory" in messages[0]
    assert "statistics[1].include: expected include only on disk, diskio, network, " \
           "temperature, got it on load" in messages[1]
