"""Fuzz: mutated configs through the loader, and through a live reload of a real daemon.

The loader must answer every text with a ``Config`` or a ``ConfigError`` whose issues
are all positioned (``file:line:col: ...``, the line inside the text), never another
exception. Mutations start from the reference config with every example block
un-commented (so every kind of sink, probe and receiver is in play) and
replace values with hostile ones (huge numbers, deep nesting, aliases, ``${ENV}``,
odd characters), delete, duplicate or cut lines. The reload half sends a handful of
such mutations to a running daemon with SIGHUP: each is applied or refused, the daemon
stays up, answers ``status`` and logs no traceback.
"""

from __future__ import annotations

import random
import re
import signal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_reference_config import find_blocks, uncomment

from pharosd.config import parse_config
from pharosd.control.client import query_status
from pharosd.control.protocol import SOCKET_NAME
from pharosd.errors import ConfigError
from tests.support.daemon import PharosProcess, wait_until

ROOT = Path(__file__).resolve().parent.parent
ISSUE = re.compile(r"^pharos\.yaml:(\d+):(\d+): \S")

HOSTILE = [
    "9" * 5000, "-" + "9" * 30, "1e400", "nan", "-1", "0", "1.5", "99999999999999999999d",
    "[" * 200 + "]" * 200, "{a: " * 100 + "1" + "}" * 100, "*nope", "&a [*a]", "${UNSET}",
    "${HOME}", "$${x}", "'" + "(" * 500 + ")" * 500 + "'", "'{value:>999999999999}'",
    "'{0}'", "\"\\0\"", "\"\\x07\"", "!!python/object:os.system x", "~", "''", "[]", "{}",
    "true", "[1, 2, 3]", "{kind: nope}", "'a\u202eb'", "'" + "x" * 10000 + "'",
    "<<: *a", "- - - -", "'\\ud800'", "0x10", "1_000", "250ms", "1h30m", "512MiB",
]


def base_texts() -> list[str]:
    lines = (ROOT / "etc" / "pharos.yaml").read_text().splitlines(keepends=True)
    blocks = find_blocks(lines)
    return ["".join(lines), *(uncomment(lines, [b]) for b in blocks)]


BASES = base_texts()
_VALUE = re.compile(r"(:\s+|-\s+)([^\s#{}\[\],][^#\n]*?)(\s*(?:#.*)?)$")


def mutate(text: str, choices: list[tuple[int, int, int]]) -> str:
    """Apply mutations chosen by numbers: (what, where, which)."""
    lines = text.splitlines(keepends=True) or ["\n"]
    for what, where, which in choices:
        i = where % len(lines)
        kind = what % 6
        if kind == 0:      # a value becomes a hostile one
            m = _VALUE.search(lines[i].rstrip("\n"))
            if m:
                line = lines[i].rstrip("\n")
                lines[i] = line[:m.start(2)] + HOSTILE[which % len(HOSTILE)] + line[m.end(2):] \
                    + "\n"
        elif kind == 1:
            del lines[i]
        elif kind == 2:
            lines.insert(i, lines[i])
        elif kind == 3:    # cut the line short
            lines[i] = lines[i][: which % (len(lines[i]) + 1)] + "\n"
        elif kind == 4:    # a hostile value under a new key at the line's indent
            indent = len(lines[i]) - len(lines[i].lstrip(" "))
            lines.insert(i, " " * indent + f"k{which % 7}: {HOSTILE[which % len(HOSTILE)]}\n")
        else:              # an anchor and an alias somewhere
            lines[i] = lines[i].replace(": ", ": &x ", 1) if which % 2 else lines[i].replace(
                ": ", ": *x ", 1)
        if not lines:
            lines = ["\n"]
    return "".join(lines)


def check_loads_or_positioned(text: str) -> None:
    try:
        parse_config(text, "pharos.yaml", {"HOME": "/root"})
    except ConfigError as e:
        assert e.issues
        n_lines = text.count("\n") + 1
        for issue in e.issues:
            line = str(issue)
            assert ISSUE.match(line), line
            assert 1 <= issue.line <= n_lines + 1, line


mutations = st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 10**6),
                               st.integers(0, 10**6)), min_size=1, max_size=4)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(base=st.integers(0, len(BASES) - 1), choices=mutations)
def test_mutated_configs_load_or_give_positioned_errors(base: int,
                                                        choices: list[tuple[int, int, int]]
                                                        ) -> None:
    check_loads_or_positioned(mutate(BASES[base], choices))


@settings(max_examples=80, deadline=None)
@given(text=st.text(alphabet=st.sampled_from([*"ab:-[]{}&*!|>'\"#%@`,?\n \t$<",
                                              "\u00e9", "\u0000", "\ufeff"]), max_size=200))
def test_random_yaml_like_text_loads_or_gives_positioned_errors(text: str) -> None:
    check_loads_or_positioned(text)


# -- a live reload ---------------------------------------------------------------------------

RELOAD_BASE = """\
interval: 250ms
state_dir: {state}
statistics: [memory, uptime, load]
probes:
  - {{name: ok, kind: exec, command: [/bin/true], every: 1s}}
thresholds:
  - {{name: up, metric: uptime.seconds, above: 0, soak: 0s, summary: "{{rule}} {{value}}"}}
  - {{name: mem, metric: memory.used_percent, above: 99.9, match: {{}}, window: {{over: 5s}}}}
sinks:
  - {{name: file, kind: file, path: {tmp}/alerts.jsonl}}
  - {{name: log, kind: log}}
supervisor: {{max_restarts: 5, period: 60s}}
"""


@pytest.mark.timeout(180)
def test_live_reloads_of_mutated_configs_never_end_the_daemon(tmp_path: Path,
                                                              daemons: list) -> None:
    base = RELOAD_BASE.format(state=tmp_path / "state", tmp=tmp_path)
    d = PharosProcess(tmp_path, base)
    daemons.append(d)
    sock = str(tmp_path / "run" / SOCKET_NAME)
    assert d.notify.wait_for(lambda m: any(x.startswith("READY=1") for x in m)), d.log()
    rng = random.Random(10)
    texts = [mutate(base, [(rng.randrange(10**6), rng.randrange(10**6), rng.randrange(10**6))
                           for _ in range(rng.randint(1, 3))]) for _ in range(6)]
    # and the reproduced ones: a huge integer, a merge bomb, a sink named like a worker
    texts += [base.replace("max_restarts: 5", "max_restarts: " + "9" * 5000),
              base + "x0: &a0 {x: 1}\n" + "".join(
                  f"x{i}: &a{i}\n  <<: [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 9)),
              base.replace("name: log, kind: log", "name: collector, kind: log")]
    def reload_at() -> object:
        try:
            return query_status(sock)["reload"]["at"]
        except Exception:       # a slow answer under load: ask again
            return None

    for text in texts:
        before = wait_until(reload_at, 10) if texts.index(text) else reload_at()
        d.write_config(text)
        d.signal(signal.SIGHUP)
        assert wait_until(lambda b=before: reload_at() not in (None, b), 30), (text, d.log())
        assert d.proc.poll() is None, (text, d.log())
    # the sink named "collector" ran beside the collector worker
    names = {w["name"] for w in query_status(sock)["workers"]}
    assert {"collector", "sink:collector"} <= names
    d.write_config(base)
    d.signal(signal.SIGHUP)
    assert wait_until(lambda: query_status(sock)["reload"]["ok"] is True, 30), d.log()
    assert "Traceback" not in d.log() and "reload_crashed" not in d.log(), d.log()
    assert d.stop() == 0
