"""Drop-ins: ``include`` globs, list keys concatenated, positioned errors naming the drop-in,
clashes naming both places, ``check-config -v`` and ``--dump`` as a user runs them."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import pytest
import yaml

from pharosd.config import load_config, parse_config
from pharosd.errors import ConfigError
from pharosd.statistics.config import default_statistics
from tests.test_cli import pharosd

MAIN = """\
interval: 10s
include: [pharos.d/*.yaml]
statistics: [cpu, memory]
thresholds:
  - {name: mem, metric: memory.used_percent, above: 90}
sinks:
  - {name: file, kind: file}
"""


def tree(tmp: Path, main: str = MAIN, **drop_ins: str) -> Path:
    """``main`` as tmp/pharos.yaml, and each ``name=text`` as tmp/pharos.d/name
    (``a_yaml`` is ``a.yaml``, ``10_base.yaml`` is ``10-base.yaml``)."""
    (tmp / "pharos.d").mkdir(exist_ok=True)
    for name, text in drop_ins.items():
        name = name.replace("_yaml", ".yaml").replace("_", "-")
        (tmp / "pharos.d" / name).write_text(textwrap.dedent(text))
    path = tmp / "pharos.yaml"
    path.write_text(textwrap.dedent(main))
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as e:
        load_config(str(path), environ={})
    return [str(i) for i in e.value.issues]


def test_drop_ins_add_to_the_lists_in_sorted_order(tmp_path):
    main = tree(tmp_path, **{
        "20_web.yaml": """\
            thresholds:
              - {name: web-b, metric: cpu.percent, above: 1}
            probes:
              - {name: web, kind: tcp, host: 127.0.0.1, port: 9}
            """,
        "10_base.yaml": """\
            statistics: [load]
            thresholds:
              - {name: base-a, metric: load.per_core_5, above: 4}
            maintenance:
              - {name: nightly, start: "02:00", duration: 1h}
            """,
        "README": "not yaml: [",             # not matched by *.yaml
        "30_empty.yaml": "# nothing yet\n",
    })
    loaded = load_config(str(main), environ={})
    c = loaded.config
    assert [t.name for t in c.thresholds] == ["mem", "base-a", "web-b"]
    assert [s.name for s in c.statistics] == ["cpu", "memory", "load"]
    assert [p.name for p in c.probes] == ["web"]
    assert [m.name for m in c.maintenance] == ["nightly"]
    assert [s.name for s in c.sinks] == ["file"]
    d = tmp_path / "pharos.d"
    assert loaded.files == (str(main), str(d / "10-base.yaml"), str(d / "20-web.yaml"),
                            str(d / "30-empty.yaml"))
    assert loaded.added[1] == {"statistics": 1, "thresholds": 1, "maintenance": 1}
    # The digest covers the drop-ins: an edit of one alone changes it.
    (d / "20-web.yaml").write_text("thresholds: []\n")
    assert load_config(str(main), environ={}).digest != loaded.digest


def test_lists_the_main_file_leaves_out_keep_their_default(tmp_path):
    main = tree(tmp_path, "include: [pharos.d/*.yaml, extra.yaml]\n",
                a_yaml="sinks: [{name: hook, kind: webhook, url: 'http://127.0.0.1:9/'}]\n"
                       "statistics: [uptime]\n")
    (tmp_path / "extra.yaml").write_text("thresholds: [{name: t, metric: m, above: 1}]\n")
    c = load_config(str(main), environ={}).config
    assert [s.name for s in c.sinks] == ["file", "log", "hook"]
    assert [s.name for s in c.statistics] == [*(s.name for s in default_statistics()), "uptime"]
    assert [t.name for t in c.thresholds] == ["t"]      # a plain path, after the glob's files


def test_without_include_nothing_else_is_read(tmp_path):
    main = tree(tmp_path, MAIN.replace("include: [pharos.d/*.yaml]\n", ""),
                a_yaml="thresholds: [{name: other, metric: m, above: 1}]\n")
    loaded = load_config(str(main), environ={})
    assert [t.name for t in loaded.config.thresholds] == ["mem"]
    assert loaded.files == (str(main),)


def test_every_error_in_a_drop_in_names_the_drop_in(tmp_path):
    main = tree(tmp_path, **{"50_bad.yaml": """\
        interval: 5s
        thresholds:
          - {name: ok-one, metric: cpu.percent, above: 80}
          - {name: cpu-hot, metric: cpu.percent, above: ninety}
          - {name: cpu-x, metric: cpu.percent, abvoe: 1}
        uplink: {}
        include: [more/*.yaml]
        sinks: {name: x}
        thresholdz: []
        """})
    bad = tmp_path / "pharos.d" / "50-bad.yaml"
    assert problems(main) == [
        f"{bad}:1:1: interval: 'interval' belongs to the main file: a drop-in holds only "
        "statistics, probes, thresholds, sinks, maintenance",
        # the index is the entry's index in the drop-in, not in the merged list
        f"{bad}:4:49: thresholds[1].above: expected a number, got 'ninety'",
        f"{bad}:5:40: thresholds[2]: unknown key 'abvoe', did you mean 'above'?",
        f"{bad}:6:1: uplink: 'uplink' belongs to the main file: a drop-in holds only "
        "statistics, probes, thresholds, sinks, maintenance",
        f"{bad}:7:1: include: included files do not include: 'include' belongs to the main file",
        f"{bad}:8:8: sinks: expected a list, got a mapping",
        f"{bad}:9:1: unknown key 'thresholdz', did you mean 'thresholds'?",
    ]


def test_errors_of_several_files_come_in_file_order(tmp_path):
    main = tree(tmp_path, MAIN.replace("interval: 10s", "interval: soon"),
                b_yaml="thresholds: [{name: b, metric: m, above: x}]\n",
                a_yaml="thresholds:\n  - {name: a, metric: m, above: [1]\n")   # YAML error
    (tmp_path / "pharos.d" / "c.yaml").write_bytes(b"thresholds: \xff\n")
    d = tmp_path / "pharos.d"
    found = problems(main)
    assert [line.split(":")[0] for line in found] == [
        str(main), str(d / "a.yaml"), str(d / "b.yaml"), str(d / "c.yaml")]
    assert found[1].startswith(f"{d / 'a.yaml'}:3:1: invalid YAML")
    assert found[2] == f"{d / 'b.yaml'}:1:42: thresholds[0].above: expected a number, got 'x'"
    assert found[3] == f"{d / 'c.yaml'}: expected UTF-8 text, got byte 0xff at offset 12"


def test_the_same_name_twice_names_both_places(tmp_path):
    main = tree(tmp_path, **{
        "10_a.yaml": """\
            thresholds:
              - {name: mem, metric: swap.used_percent, above: 50}
            sinks:
              - name: hook
                kind: webhook
                url: http://127.0.0.1:9/
            """,
        "20_b.yaml": """\
            sinks:
              - {name: hook, kind: log}
            statistics: [memory, load]
            """,
    })
    a, b = tmp_path / "pharos.d" / "10-a.yaml", tmp_path / "pharos.d" / "20-b.yaml"
    assert problems(main) == [
        f"{a}:2:12: thresholds[0].name: expected a unique name, got 'mem' twice: "
        f"at {main}:5:12 and at {a}:2:12",
        f"{b}:2:12: sinks[0].name: expected a unique name, got 'hook' twice: "
        f"at {a}:4:11 and at {b}:2:12",
        f"{b}:3:14: statistics[0]: expected a unique name, got 'memory' twice: "
        f"at {main}:3:19 and at {b}:3:14",
    ]


def test_a_clash_with_a_default_list_says_so(tmp_path):
    main = tree(tmp_path, "include: [pharos.d/*.yaml]\n",
                a_yaml="sinks: [{name: log, kind: log}]\n")
    [problem] = problems(main)
    assert problem == (
        f"{tmp_path / 'pharos.d' / 'a.yaml'}:1:16: sinks[0].name: expected a unique name, got "
        "'log' twice: in the default sinks (the main file sets no 'sinks') and at "
        f"{tmp_path / 'pharos.d' / 'a.yaml'}:1:16")


def test_include_itself_is_checked(tmp_path):
    (tmp_path / "conf.d").mkdir()
    main = tree(tmp_path, "include: [missing.yaml, conf.d, '*.yaml', 3]\n")
    assert problems(main) == [
        f"{main}:1:11: include[0]: expected an existing file, got 'missing.yaml' (no such file)",
        f"{main}:1:25: include[1]: expected a file or a glob, got the directory 'conf.d' "
        "(write 'conf.d/*.yaml')",
        f"{main}:1:43: include[3]: expected an existing file, got '3' (no such file)",
    ]
    # '*.yaml' matched the main file itself, which is skipped, not read twice.
    main.write_text("include: pharos.d/*.yaml\n")
    assert problems(main) == [f"{main}:1:10: include: expected a list, got 'pharos.d/*.yaml'"]


def test_parse_config_reads_includes_relative_to_its_file_name(tmp_path):
    (tmp_path / "d.yaml").write_text("thresholds: [{name: d, metric: m, above: 1}]\n")
    c = parse_config("include: [d.yaml]\n", str(tmp_path / "main.yaml"), environ={})
    assert [t.name for t in c.thresholds] == ["d"]


# -- the command line ------------------------------------------------------------------


def test_check_config_counts_every_file_and_lists_them_with_v(tmp_path):
    main = tree(tmp_path, a_yaml="thresholds: [{name: a, metric: m, above: 1}]\n"
                                 "sinks: [{name: l, kind: log}]\n",
                b_yaml="probes: [{name: p, kind: tcp, host: 127.0.0.1, port: 9}]\n")
    r = pharosd("check-config", str(main))
    assert r.returncode == 0, r.stderr
    assert r.stdout == (f"{main}: ok (2 statistics, 1 probes, 2 thresholds, 2 sinks, "
                        "0 maintenance windows; 2 drop-ins)\n")
    r = pharosd("check-config", "-v", str(main))
    assert r.returncode == 0, r.stderr
    d = tmp_path / "pharos.d"
    assert r.stdout.splitlines()[1:] == [
        f"  read {main}: 2 statistics, 1 thresholds, 1 sinks",
        f"  read {d / 'a.yaml'}: 1 thresholds, 1 sinks",
        f"  read {d / 'b.yaml'}: 1 probes",
    ]


def test_check_config_fails_with_the_drop_in_s_position(tmp_path):
    main = tree(tmp_path, a_yaml="thresholds:\n  - {name: a, metric: m, above: lots}\n")
    r = pharosd("check-config", str(main))
    assert r.returncode == 1
    assert r.stderr.splitlines() == [
        f"{tmp_path / 'pharos.d' / 'a.yaml'}:2:33: thresholds[0].above: expected a number, "
        "got 'lots'",
        f"{main}: 1 error",
    ]
    assert r.stdout == ""


def test_dump_prints_the_effective_config_without_secrets(tmp_path):
    main = tree(tmp_path, **{"a.yaml": """\
        sinks:
          - name: hook
            kind: webhook
            url: "http://ops:${PW}@127.0.0.1:9/hook"
            secret: "${SECRET}"
            headers: {X-Api-Key: k-12345, X-Team: infra}
        thresholds:
          - {name: slow, metric: cpu.percent, above: 80, window: {over: 5m}}
        """})
    env = {"PW": "hunter2", "SECRET": "swordfish"}
    r = pharosd("check-config", "--dump", str(main), env=env)
    assert r.returncode == 0, r.stderr
    for secret in ("hunter2", "swordfish", "k-12345"):
        assert secret not in r.stdout
    data = yaml.safe_load(r.stdout)
    assert "include" not in data
    hook = data["sinks"][1]
    assert hook["url"] == "http://ops:<redacted>@127.0.0.1:9/hook"
    assert hook["secret"] == "<redacted>"
    assert hook["headers"] == {"X-Api-Key": "<redacted>", "X-Team": "infra"}
    assert data["thresholds"][1]["window"] == {"over": "5m", "mode": "avg"}
    assert data["interval"] == "10s" and data["spill"]["max_size"] == "512MiB"
    # Without secrets the dump is the config itself: it loads back the same.
    plain = tree(tmp_path, a_yaml="thresholds: [{name: slow, metric: m, below: 1, cool: 90s}]\n")
    r = pharosd("check-config", "--dump", str(plain))
    assert r.returncode == 0, r.stderr
    merged = load_config(str(plain), environ={}).config
    again = parse_config(r.stdout, "dump.yaml", environ={})
    assert again == dataclasses.replace(merged, include=())


def test_plugin_dirs_belong_to_the_main_file(tmp_path):
    main = tree(tmp_path, **{"60_plugins.yaml": """\
        plugin_dirs: [/srv/plugins]
        """})
    bad = tmp_path / "pharos.d" / "60-plugins.yaml"
    assert problems(main) == [
        f"{bad}:1:1: plugin_dirs: 'plugin_dirs' belongs to the main file: a drop-in holds only "
        "statistics, probes, thresholds, sinks, maintenance",
    ]
