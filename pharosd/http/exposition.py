"""The Prometheus text exposition format 0.0.4, written by hand (docs/http.md says why).

Names and labels follow remote_write (``pharosd.model.wire_name``):
``memory.used_percent{mount}`` -> ``pharos_memory_used_percent{mount="/"}``;
label names made valid, empty values and names starting with ``__`` left
out, the first of two labels that map to one name kept. The scrape adds
``job`` and ``instance`` itself, so remote_write's external labels are not
repeated here. No timestamps: Prometheus stamps the scrape, and a series
that ends is simply absent from the next one (and marked stale).

Types: a name ending in ``_total`` is a ``counter`` for pharosd's own
counters (``pharosd.*``) and ``untyped`` otherwise (``processes.total`` is
a gauge whose name only looks like a counter's); so is a name ending in
``_count``, ``_sum`` or ``_bucket`` or with an ``le`` or ``quantile`` label
(a probe's ``count``); everything else is a ``gauge``. Families with the
same wire name are merged (the first HELP wins), and a label set repeated
within a family is written once.

``Exposition`` caches each series' ``name{labels} `` prefix between
scrapes, so a scrape costs one float formatting and one join per series.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pharosd.model import Labels, wire_label_name, wire_name

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Kind = Literal["gauge", "counter", "untyped"]


@dataclass(frozen=True, slots=True)
class Family:
    """One metric family to write: dotted ``metric`` and its series as (labels, value)."""

    metric: str
    kind: Kind
    help: str
    rows: Sequence[tuple[Labels, float]]


def escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def escape_label_value(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def format_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


_RESERVED_SUFFIXES = ("_count", "_sum", "_bucket")
_RESERVED_LABELS = frozenset({"le", "quantile"})


def kind_of(metric: str, label_names: Iterable[str] = ()) -> Kind:
    """``counter`` for pharosd's own ``*_total``; ``untyped`` for a gauge whose name or
    labels look like a counter's, histogram's or summary's (promtool would object to
    ``gauge``); ``gauge`` otherwise."""
    name = wire_name(metric, "")
    if name.endswith("_total"):
        return "counter" if metric.startswith("pharosd.") else "untyped"
    if name.endswith(_RESERVED_SUFFIXES) or _RESERVED_LABELS.intersection(label_names):
        return "untyped"
    return "gauge"


def wire_pairs(labels: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Valid, unique label names with non-empty values, sorted (as remote_write does)."""
    out: dict[str, str] = {}
    for k, v in labels:
        if not v:
            continue
        name = wire_label_name(k)
        if name.startswith("__") or name in out:
            continue
        out[name] = v
    return sorted(out.items())


def label_text(pairs: Iterable[tuple[str, str]]) -> str:
    inner = ",".join(f'{k}="{escape_label_value(v)}"' for k, v in pairs)
    return "{" + inner + "}" if inner else ""


class Exposition:
    """Renders families to bytes; keeps the series prefixes of the last scrape."""

    def __init__(self, prefix: str = "pharos_") -> None:
        self._prefix = prefix
        self._names: dict[str, str] = {}
        self._lines: dict[tuple[str, Labels], str] = {}

    def wire_name(self, metric: str) -> str:
        name = self._names.get(metric)
        if name is None:
            if len(self._names) > 100_000:
                self._names.clear()
            name = self._names[metric] = wire_name(metric, self._prefix)
        return name

    def render(self, families: Iterable[Family]) -> bytes:
        merged: dict[str, tuple[Family, list[tuple[Labels, float]]]] = {}
        for fam in families:
            name = self.wire_name(fam.metric)
            slot = merged.get(name)
            if slot is None:
                merged[name] = (fam, list(fam.rows))
            else:
                slot[1].extend(fam.rows)
        old = self._lines
        lines: dict[tuple[str, Labels], str] = {}
        out: list[str] = []
        for name in sorted(merged):
            fam, rows = merged[name]
            out.append(f"# HELP {name} {escape_help(fam.help)}\n# TYPE {name} {fam.kind}\n")
            seen: set[str] = set()
            for labels, value in rows:
                key = (name, labels)
                head = lines.get(key) or old.get(key)
                if head is None:
                    head = name + label_text(wire_pairs(labels)) + " "
                lines[key] = head
                if head in seen:
                    continue
                seen.add(head)
                out.append(head + format_value(value) + "\n")
        self._lines = lines
        return "".join(out).encode("utf-8")


def alert_family(alerts: Sequence[Mapping[str, Any]]) -> Family:
    """``pharos_alert{rule, level, state, <instance labels>} 1`` per pending or firing alert.

    An alert that is resolving (recovered, waiting out its cool period) still
    reads ``firing``: its resolved event has not been sent.
    """
    rows: list[tuple[Labels, float]] = []
    for a in alerts:
        status = str(a.get("status", ""))
        if status not in ("pending", "firing", "resolving"):
            continue
        state = "pending" if status == "pending" else "firing"
        own = {"rule": str(a.get("rule", "")), "level": str(a.get("level", "")), "state": state}
        extra = a.get("labels") or {}
        pairs = dict(own)
        for k, v in (extra.items() if isinstance(extra, Mapping) else ()):
            name = wire_label_name(str(k))
            if name not in pairs:
                pairs[name] = str(v)
        rows.append((tuple(sorted(pairs.items())), 1.0))
    return Family("alert", "gauge",
                  "1 for every pending or firing pharosd alert, like Prometheus' ALERTS", rows)


def silenced_family(alerts: Sequence[Mapping[str, Any]]) -> Family:
    """``pharos_alert_silenced{rule, by, <instance labels>} 1`` per open alert a silence
    or maintenance window holds back (``silenced_by``); ``by`` is ``silence`` or
    ``maintenance``. A separate family, so ``pharos_alert`` keeps its identity (as
    Prometheus' ALERTS, it says what is evaluated, not what is notified) and
    ``pharos_alert unless ignoring(level, state, by) pharos_alert_silenced`` is what
    reaches the sinks."""
    rows: list[tuple[Labels, float]] = []
    for a in alerts:
        held = a.get("silenced_by")
        if not isinstance(held, Mapping) or a.get("status") not in ("pending", "firing",
                                                                    "resolving"):
            continue
        pairs = {"rule": str(a.get("rule", "")), "by": str(held.get("kind", ""))}
        extra = a.get("labels") or {}
        for k, v in (extra.items() if isinstance(extra, Mapping) else ()):
            name = wire_label_name(str(k))
            if name not in pairs and name not in ("level", "state"):
                pairs[name] = str(v)
        rows.append((tuple(sorted(pairs.items())), 1.0))
    return Family("alert_silenced", "gauge",
                  "1 for every pending or firing pharosd alert a silence or maintenance "
                  "window holds back", rows)


def sample_families(series: Iterable[Any], help_for: Callable[[str], str | None]
                    ) -> list[Family]:
    """Families from ``store.Latest`` entries (anything with metric, labels, value)."""
    by_metric: dict[str, list[tuple[Labels, float]]] = {}
    for s in series:
        by_metric.setdefault(s.metric, []).append((s.labels, s.value))
    out = []
    for metric, rows in by_metric.items():
        rows.sort()
        names = {k for labels, _ in rows for k, _ in labels}
        out.append(Family(metric, kind_of(metric, names),
                          help_for(metric) or f"pharosd {metric}", rows))
    return out
