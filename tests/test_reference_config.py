"""etc/pharos.yaml, the reference config: it loads as shipped (the embedded default's checks),
it writes every key of the schema, every commented-out block in it loads too, and its
threshold metrics are documented (docs/metrics.md, docs/probes.md, and docs/uplink.md for
pharosd's own metrics).

The file's convention (its header explains it to people):

* A *block* starts with a marker line ``<indent># example: TITLE`` or
  ``<indent># defaults: TITLE`` and goes on over the lines right below it whose ``#``
  sits in the same column, followed by a space or by nothing. It ends at the first
  other line (blank, active, commented in another column) or at the next marker in
  that column.
* Un-commenting a block deletes the ``# `` in that column from each of its lines (the
  marker stays a comment), in place: lines keep their numbers and indentation, so each
  block is tested exactly where it is written, one block at a time.
* An ``example`` block must load, and must add to what the YAML says.
* A ``defaults`` block must load and change nothing: the loaded ``Config`` is the same
  with and without it. A defaults block that starts on the line right after another
  block in the same column *extends* it (it lists the other keys of the example's item)
  and is compared with that block un-commented alone.
* Every commented line that looks like a YAML key (``# key:``, ``# - key:``,
  ``# - {key:``) must be inside a block, so nothing commented out escapes the checks.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import subprocess
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

import yaml

from pharosd.alerting.config import LevelLimits, WindowConfig
from pharosd.config import load_config, parse_config
from pharosd.config.schema import Config
from pharosd.errors import ConfigError
from pharosd.http.config import DEFAULT_PORT, HttpConfig
from pharosd.pipeline.config import BasicAuthConfig, RemoteWriteConfig, TLSConfig
from pharosd.probes.config import ProbeConfig
from pharosd.sinks.config import RetryConfig, SinkConfig
from pharosd.statistics.config import StatisticConfig
from pharosd.types import FrozenDict

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "etc" / "pharos.yaml"
METRICS_MD = ROOT / "docs" / "metrics.md"
PROBES_MD = ROOT / "docs" / "probes.md"
UPLINK_MD = ROOT / "docs" / "uplink.md"

MARKER = re.compile(r"^(?P<indent> *)# (?P<kind>example|defaults): (?P<title>\S.*)$")
COMMENTED_KEY = re.compile(r"^ *#\s+(?:-\s+)?\{?\s*[a-z_][a-z0-9_]*:(?:\s|$)")
LOOSE_MARKER = re.compile(r"^\s*#\s*(?:example|defaults)\s*:", re.IGNORECASE)
ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")
METRIC_TOKEN = re.compile(r"([a-z_][a-z0-9_]*(?:\.[a-z0-9_]+)+)(?:\{([^}]*)\})?")


# -- the block convention ------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    kind: str                 # "example" or "defaults"
    title: str
    marker: int               # index of the marker line
    end: int                  # index after the block's last line
    column: int               # the column of every '#' of the block
    base: Block | None        # the block a defaults block extends, if any

    def chain(self) -> list[Block]:
        """This block and the blocks it extends, outermost first."""
        return ([*self.base.chain()] if self.base else []) + [self]

    def __str__(self) -> str:
        return f"line {self.marker + 1} ({self.kind}: {self.title})"


def find_blocks(lines: list[str]) -> list[Block]:
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = MARKER.match(lines[i])
        if m is None:
            i += 1
            continue
        column = len(m["indent"])
        j = i + 1
        while j < len(lines):
            line = lines[j]
            if MARKER.match(line) and line.index("#") == column:
                break
            if line[:column].strip() or line[column:column + 1] != "#" \
                    or line[column + 1:column + 2] not in ("", " "):
                break
            j += 1
        prev = blocks[-1] if blocks else None
        extends = (m["kind"] == "defaults" and prev is not None and prev.end == i
                   and prev.column == column)
        blocks.append(Block(m["kind"], m["title"], i, j, column, prev if extends else None))
        i = j
    return blocks


def uncomment(lines: list[str], blocks: list[Block]) -> str:
    out = list(lines)
    for block in blocks:
        for k in range(block.marker + 1, block.end):
            out[k] = out[k][:block.column] + out[k][block.column + 2:]
    return "\n".join(out) + "\n"


@dataclass(frozen=True)
class Reference:
    lines: list[str]
    blocks: list[Block]
    environ: dict[str, str]   # a value for every ${NAME} the blocks use

    def text(self, blocks: list[Block] | None = None) -> str:
        return uncomment(self.lines, blocks or [])

    def parse(self, blocks: list[Block] | None = None) -> Config:
        return parse_config(self.text(blocks), str(REFERENCE), self.environ)

    def raw(self, blocks: list[Block] | None = None) -> Any:
        """The plain YAML data (no schema), with the C loader when there is one."""
        return yaml.load(self.text(blocks), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


@functools.cache
def reference() -> Reference:
    text = REFERENCE.read_text(encoding="utf-8")
    lines = text.splitlines()
    environ = {name: f"test-{name.lower()}" for name in ENV_REF.findall(text)}
    return Reference(lines, find_blocks(lines), environ)


@functools.cache
def loaded_blocks() -> list[tuple[Block, Config | ConfigError]]:
    """Every block un-commented (with the blocks it extends), loaded or its error."""
    ref = reference()
    out: list[tuple[Block, Config | ConfigError]] = []
    for block in ref.blocks:
        try:
            out.append((block, ref.parse(block.chain())))
        except ConfigError as e:
            out.append((block, e))
    return out


def all_configs() -> Iterator[tuple[str, Config]]:
    """The active config and every block's config that loads."""
    yield "the active config", reference().parse()
    for block, cfg in loaded_blocks():
        if isinstance(cfg, Config):
            yield str(block), cfg


# -- as shipped ----------------------------------------------------------------------


def test_reference_loads_without_environment_and_matches_the_embedded_default():
    loaded = load_config(str(REFERENCE), environ={})
    # The active lines are the embedded default's useful set: same statistics,
    # thresholds and sinks, state_dir and host left to their defaults, no receiver;
    # only the packaged config turns the HTTP listener on (on loopback); and it reads the
    # drop-ins of pharos.d/ (none in the source tree).
    assert loaded.config.http.listen == f"127.0.0.1:{DEFAULT_PORT}"
    assert loaded.config.include == ("pharos.d/*.yaml",)
    assert loaded.files == (str(REFERENCE),)
    embedded = load_config(None, environ={}).config
    assert embedded.http == HttpConfig()
    assert dataclasses.replace(loaded.config, http=HttpConfig(), include=()) == embedded
    assert loaded.config.state_dir is None and loaded.config.host is None
    assert loaded.config.uplink.remote_write == ()


def test_check_config_command_accepts_it():
    env = {k: v for k, v in os.environ.items() if k != "PHAROS_CONFIG"}
    proc = subprocess.run([sys.executable, "-m", "pharosd", "check-config", str(REFERENCE)],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"{REFERENCE}: ok (")


def test_file_is_ascii_without_tabs():
    # pharos.yaml(5) quotes it through roff, and it is edited on any terminal.
    data = REFERENCE.read_bytes()
    assert data.isascii() and b"\t" not in data


# -- the commented-out blocks ------------------------------------------------------------


def test_block_markup_is_well_formed():
    ref = reference()
    problems = [f"{b}: no lines under the marker" for b in ref.blocks if b.end == b.marker + 1]
    inside = {k for b in ref.blocks for k in range(b.marker, b.end)}
    problems += [f"line {k + 1}: a commented-out key outside any example/defaults block: "
                 f"{line.strip()!r}"
                 for k, line in enumerate(ref.lines)
                 if k not in inside and COMMENTED_KEY.match(line) and not MARKER.match(line)]
    # A marker misspelt ('#example:', '# Defaults:') would hide its block from every check.
    loose = [k for k, line in enumerate(ref.lines) if LOOSE_MARKER.match(line)]
    problems += [f"line {k + 1}: not a marker line ('# example: TITLE' or "
                 f"'# defaults: TITLE'): {ref.lines[k].strip()!r}"
                 for k in loose if not MARKER.match(ref.lines[k])]
    assert not problems, "\n".join(problems)
    assert {b.kind for b in ref.blocks} == {"example", "defaults"}
    assert any(b.base is not None for b in ref.blocks)


def test_every_example_block_loads_where_it_is_written():
    ref = reference()
    original = ref.raw()
    failures: list[str] = []
    for block, cfg in loaded_blocks():
        if isinstance(cfg, ConfigError):
            failures.append(f"{block}:\n  " + "\n  ".join(str(i) for i in cfg.issues))
        elif ref.raw(block.chain()) == original:
            failures.append(f"{block}: un-commenting it changes nothing in the YAML")
    assert not failures, "\n".join(failures)


def test_every_defaults_block_changes_nothing():
    ref = reference()
    failures: list[str] = []
    checked = 0
    for block, cfg in loaded_blocks():
        if block.kind != "defaults" or isinstance(cfg, ConfigError):
            continue   # a block that does not load fails the test above
        without = ref.parse(block.chain()[:-1])
        if cfg != without:
            failures.append(f"{block}: un-commenting it changes the config")
        checked += 1
    assert not failures, "\n".join(failures)
    assert checked >= 15


def _kinds(union: Any) -> set[str]:
    return {v for cls in get_args(union) for v in get_args(get_type_hints(cls)["kind"])}


def test_examples_show_every_sink_kind_every_probe_kind_and_receivers():
    sink_kinds: set[str] = set()
    probe_kinds: set[str] = set()
    receivers: set[str] = set()
    for block, cfg in loaded_blocks():
        if block.kind == "example" and isinstance(cfg, Config):
            sink_kinds.update(s.kind for s in cfg.sinks[2:])   # beyond the active two
            probe_kinds.update(p.kind for p in cfg.probes)
            receivers.update(rw.url for rw in cfg.uplink.remote_write)
    assert sink_kinds == _kinds(SinkConfig)
    assert probe_kinds == _kinds(ProbeConfig)
    assert {"/api/v1/write", "/api/v1/push"} <= {u[u.index("/api"):] for u in receivers}
    assert len(receivers) >= 3


# -- completeness: every key of every dataclass ---------------------------------------------


def _members(t: Any) -> tuple[Any, ...]:
    return get_args(t) if get_origin(t) in (Union, types.UnionType) else (t,)


def _is_dataclass(t: Any) -> bool:
    return isinstance(t, type) and dataclasses.is_dataclass(t)


def reachable(t: Any, seen: dict[type, None]) -> dict[type, None]:
    """Every dataclass reachable from annotation ``t``: through fields' type hints,
    unions (the kind-discriminated ones too), tuples and FrozenDict values."""
    if _is_dataclass(t):
        if t not in seen:
            seen[t] = None
            hints = get_type_hints(t)
            for f in dataclasses.fields(t):
                if f.init:
                    reachable(hints[f.name], seen)
    else:
        for arg in get_args(t):
            reachable(arg, seen)
    return seen


def _record_for(raw: dict[str, Any], t: Any) -> type | None:
    """The dataclass a YAML mapping builds for annotation ``t`` (by ``kind`` if several)."""
    classes = [m for m in _members(t) if _is_dataclass(m)]
    for cls in classes:
        kind = get_type_hints(cls).get("kind")
        if kind is None and len(classes) == 1:
            return cls
        if kind is not None and raw.get("kind") in get_args(kind):
            return cls
    return None


def written_keys(raw: Any, t: Any, out: set[tuple[type, str]]) -> None:
    """Collect ``(dataclass, key)`` for every key the YAML ``raw`` writes for type ``t``."""
    if isinstance(raw, dict):
        cls = _record_for(raw, t)
        if cls is None:
            for m in _members(t):
                if get_origin(m) is FrozenDict:
                    for value in raw.values():
                        written_keys(value, get_args(m)[0], out)
            return
        hints = get_type_hints(cls)
        for key, value in raw.items():
            out.add((cls, key))
            if key in hints:
                written_keys(value, hints[key], out)
    elif isinstance(raw, list):
        for m in _members(t):
            if get_origin(m) is tuple:
                for item in raw:
                    written_keys(item, get_args(m)[0], out)


def test_every_schema_key_is_written_in_the_reference():
    classes = reachable(Config, {})
    # The walk really goes through unions, tuples and the kind-discriminated unions.
    nested = {StatisticConfig, LevelLimits, WindowConfig, RetryConfig, RemoteWriteConfig,
              BasicAuthConfig, TLSConfig, *get_args(SinkConfig), *get_args(ProbeConfig)}
    assert nested <= set(classes)

    ref = reference()
    written: set[tuple[type, str]] = set()
    for blocks in [[], *(b.chain() for b in ref.blocks)]:
        written_keys(ref.raw(blocks), Config, written)
    # a field's YAML key is its name, or metadata["key"] where the name cannot be (`from`)
    missing = [f"{cls.__name__}.{f.name}"
               for cls in classes for f in dataclasses.fields(cls)
               if f.init and (cls, f.metadata.get("key", f.name)) not in written]
    assert not missing, ("keys not written in etc/pharos.yaml (add each, commented out with "
                         "its default, to a '# defaults:' or '# example:' block): "
                         + ", ".join(missing))


# -- threshold metrics are documented -----------------------------------------------------


def documented_metrics() -> dict[str, set[str]]:
    """docs/metrics.md's table: metric name -> its labels."""
    out: dict[str, set[str]] = {}
    for line in METRICS_MD.read_text(encoding="utf-8").splitlines():
        if not line.startswith("| "):
            continue
        tokens = re.findall(r"`([^`]+)`", line)
        row_labels = {label.strip() for t in tokens if t.startswith("{")
                      for label in t.strip("{}").split(",")}
        for token in tokens:
            m = METRIC_TOKEN.fullmatch(token)
            if m:
                own = {label.strip() for label in (m[2] or "").split(",") if label.strip()}
                out[m[1]] = own | row_labels
    return out


def documented_self_metrics() -> dict[str, set[str]]:
    """docs/uplink.md's self-telemetry table (pharosd's own metrics, with an uplink):
    metric name -> its labels."""
    out: dict[str, set[str]] = {}
    for line in UPLINK_MD.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`pharosd."):
            out[cells[0].strip("`")] = set(re.findall(r"`([a-z_]+)`", cells[1]))
    return out


def documented_probe_metrics() -> tuple[set[str], dict[str, set[str] | None]]:
    """docs/probes.md: the suffixes every probe yields, and those of each kind
    (None: any perfdata label, for exec)."""
    common: set[str] = set()
    by_kind: dict[str, set[str] | None] = {}
    kinds = _kinds(ProbeConfig)
    for section in re.split(r"^## ", PROBES_MD.read_text(encoding="utf-8"), flags=re.M)[1:]:
        heading = section.split("\n", 1)[0]
        suffixes = set(re.findall(r"`probe\.<name>\.([a-z0-9_]+)`", section))
        word = heading.split()[0].rstrip(":")
        if word in kinds:
            by_kind[word] = None if "`probe.<name>.<label>`" in section else suffixes
        elif heading.startswith("Status"):
            common |= suffixes
    assert {"status", "state"} <= common and set(by_kind) == kinds, "docs/probes.md changed shape"
    return common, by_kind


def test_threshold_metrics_are_documented():
    metrics = documented_metrics()
    assert {"memory.used_percent", "disk.used_percent", "load.per_core_5"} <= set(metrics)
    assert metrics["disk.used_percent"] >= {"mount", "device", "fstype"}
    metrics.update(documented_self_metrics())
    assert metrics["pharosd.uplink_up"] == {"receiver"}
    common, by_kind = documented_probe_metrics()
    configs = list(all_configs())
    probes = {p.name: p.kind for _, cfg in configs for p in cfg.probes}
    problems: list[str] = []
    checked = 0
    for where, cfg in configs:
        for t in cfg.thresholds:
            checked += 1
            what = f"{where}: threshold {t.name!r} on {t.metric!r}"
            if t.metric.startswith("probe."):
                name, _, suffix = t.metric[len("probe."):].partition(".")
                if name not in probes:
                    problems.append(f"{what}: no probe {name!r} in the active config or "
                                    "an example")
                    continue
                allowed = by_kind[probes[name]]
                if suffix not in common and allowed is not None and suffix not in allowed:
                    problems.append(f"{what}: a {probes[name]} probe yields no {suffix!r} "
                                    "(docs/probes.md)")
                elif allowed is None and not re.fullmatch(r"[a-z0-9_]+(\.[a-z_]+)?", suffix):
                    problems.append(f"{what}: not a perfdata metric name")
                if t.match:
                    problems.append(f"{what}: probe samples have no labels to match")
            elif t.metric not in metrics:
                problems.append(f"{what}: not in docs/metrics.md (nor pharosd.* in "
                                "docs/uplink.md)")
            elif not set(t.match) <= metrics[t.metric]:
                problems.append(f"{what}: matches labels {sorted(set(t.match))}, the metric "
                                f"has {sorted(metrics[t.metric])}")
    assert not problems, "\n".join(problems)
    assert checked >= 10
