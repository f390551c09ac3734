"""The human summary of an alert event: ``memory used 93.2% > 90% for 1m``.

Owns a small catalogue of the built-in metrics (docs/metrics.md): a
description (which may name labels, ``disk {mount} used``) and a unit that
says how values read (percent, bytes as KiB/MiB/GiB, seconds as 1m30s,
per-second rates, counts, degrees, probe status). An unknown metric reads as
its name with its labels and plain numbers.

A threshold's ``summary`` template replaces the generated text; it is
formatted with ``str.format`` and the placeholders listed in
``pharosd.alerting.config.PLACEHOLDERS`` plus the instance's label names. A template that fails
(an unknown placeholder, a bad format spec) or renders blank falls back to
the generated text; it never raises. ``pharosd.alerting.config`` checks
templates at load.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from pharosd.alerting.config import MAX_RENDERED
from pharosd.alerting.machine import Transition
from pharosd.alerting.rules import Rule
from pharosd.model import Labels
from pharosd.units import format_duration

Unit = Literal["percent", "bytes", "bytes_per_second", "per_second", "seconds",
               "count", "number", "celsius", "status"]


@dataclass(frozen=True, slots=True)
class MetricInfo:
    description: str
    unit: Unit


def _catalogue() -> dict[str, MetricInfo]:
    c: dict[str, MetricInfo] = {}

    def add(metric: str, description: str, unit: Unit) -> None:
        c[metric] = MetricInfo(description, unit)

    add("cpu.percent", "cpu busy", "percent")
    add("cpu.iowait_percent", "cpu iowait", "percent")
    add("cpu.steal_percent", "cpu steal", "percent")
    add("cpu.core_percent", "cpu {cpu} busy", "percent")
    for n in ("1", "5", "15"):
        add(f"load.{n}", f"load ({n}m)", "number")
        add(f"load.per_core_{n}", f"load per core ({n}m)", "number")
    for area in ("memory", "swap"):
        add(f"{area}.total_bytes", f"{area} total", "bytes")
        add(f"{area}.used_bytes", f"{area} used", "bytes")
        add(f"{area}.used_percent", f"{area} used", "percent")
    add("memory.available_bytes", "memory available", "bytes")
    add("disk.total_bytes", "disk {mount} size", "bytes")
    add("disk.used_bytes", "disk {mount} used", "bytes")
    add("disk.free_bytes", "disk {mount} free", "bytes")
    add("disk.used_percent", "disk {mount} used", "percent")
    add("disk.inodes_total", "disk {mount} inodes", "count")
    add("disk.inodes_used", "disk {mount} inodes used", "count")
    add("disk.inodes_free", "disk {mount} inodes free", "count")
    add("disk.inodes_used_percent", "disk {mount} inodes used", "percent")
    add("diskio.read_bytes_per_second", "disk {device} read", "bytes_per_second")
    add("diskio.write_bytes_per_second", "disk {device} write", "bytes_per_second")
    add("diskio.reads_per_second", "disk {device} reads", "per_second")
    add("diskio.writes_per_second", "disk {device} writes", "per_second")
    for d, verb, noun in (("rx", "received", "receive"), ("tx", "sent", "send")):
        add(f"network.{d}_bytes_per_second", f"network {{interface}} {verb}",
            "bytes_per_second")
        add(f"network.{d}_packets_per_second", f"network {{interface}} packets {verb}",
            "per_second")
        add(f"network.{d}_errors_per_second", f"network {{interface}} {noun} errors",
            "per_second")
        add(f"network.{d}_drops_per_second", f"network {{interface}} {noun} drops",
            "per_second")
    add("processes.total", "processes", "count")
    for state in ("running", "blocked", "zombie"):
        add(f"processes.{state}", f"{state} processes", "count")
    add("files.open", "open files", "count")
    add("files.max", "max open files", "count")
    add("files.used_percent", "open files", "percent")
    add("uptime.seconds", "uptime", "seconds")
    add("temperature.celsius", "temperature {sensor} {label}", "celsius")
    for res in ("cpu", "memory", "io"):
        for kind in ("some", "full"):
            add(f"pressure.{res}_{kind}_percent", f"{res} pressure ({kind})", "percent")
            for n in ("10", "60", "300"):
                add(f"pressure.{res}_{kind}_avg{n}", f"{res} pressure ({kind}, {n}s average)",
                    "percent")
    add("services.active_state", "unit {unit} active state", "number")
    add("services.sub_state", "unit {unit} {state}", "number")
    add("services.restarts", "unit {unit} restarts", "count")
    add("services.cpu_percent", "unit {unit} cpu", "percent")
    add("services.memory_bytes", "unit {unit} memory", "bytes")
    return c


CATALOGUE: Mapping[str, MetricInfo] = _catalogue()

_PROBE_STATUS = re.compile(r"^probe\.(?P<name>.+)\.(?P<what>status|state)$")
_STATUS_NAMES = {0: "OK", 1: "WARNING", 2: "CRITICAL", 3: "UNKNOWN"}
_FIELD = re.compile(r"\{(\w+)\}")


def metric_info(metric: str, labels: Labels = ()) -> MetricInfo:
    """The description (labels filled in) and unit of ``metric``."""
    info = CATALOGUE.get(metric)
    if info is not None:
        values = dict(labels)
        text = _FIELD.sub(lambda m: values.get(m.group(1), ""), info.description)
        return MetricInfo(" ".join(text.split()), info.unit)
    m = _PROBE_STATUS.match(metric)
    if m is not None:
        return MetricInfo(f"probe {m.group('name')} {m.group('what')}", "status")
    if labels:
        inner = ",".join(f"{k}={v}" for k, v in labels)
        return MetricInfo(f"{metric}{{{inner}}}", "number")
    return MetricInfo(metric, "number")


_UNIT_WORDS: Mapping[str, str] = {
    "percent": ", in percent", "bytes": ", in bytes", "bytes_per_second": ", in bytes per second",
    "per_second": ", per second", "seconds": ", in seconds", "count": "", "number": "",
    "celsius": ", in degrees Celsius", "status": "",
}


def metric_help(metric: str) -> str | None:
    """A one-line description of ``metric`` for ``# HELP``, or None when unknown.

    ``disk.used_percent`` -> ``disk used, in percent (disk.used_percent, per mount)``.
    """
    info = CATALOGUE.get(metric)
    if info is not None:
        labels = _FIELD.findall(info.description)
        text = " ".join(_FIELD.sub("", info.description).split())
        per = f", per {', '.join(labels)}" if labels else ""
        return f"{text}{_UNIT_WORDS[info.unit]} ({metric}{per})"
    m = _PROBE_STATUS.match(metric)
    if m is not None:
        if m.group("what") == "status":
            return (f"probe {m.group('name')} plugin status: 0 OK, 1 WARNING, 2 CRITICAL, "
                    f"3 UNKNOWN")
        return f"probe {m.group('name')} alert state: 0 ok, 1 warning, 2 critical"
    return None


# -- numbers ------------------------------------------------------------------


def _compact(x: float) -> str:
    """A number as people write it: 90, 2.5, 0.125 (at most 2 decimals above 1)."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x == int(x) and abs(x) < 1e15:
        return str(int(x))
    if abs(x) < 1 or abs(x) >= 1e15:
        return f"{x:.3g}"
    return f"{x:.2f}".rstrip("0").rstrip(".")


def _bytes(x: float, exact: bool) -> str:
    if not math.isfinite(x):
        return _compact(x)
    size, unit = abs(x), "B"
    for name in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        if size < 1024:
            break
        size, unit = size / 1024, name
    size = math.copysign(size, x)
    if unit == "B":
        return f"{_compact(round(x))} B"
    return f"{_compact(size) if exact else f'{size:.1f}'} {unit}"


def format_value(value: float | None, unit: Unit, *, limit: bool = False) -> str:
    """``value`` in ``unit`` for people; ``limit=True`` drops needless decimals."""
    if value is None:
        return "?"
    if unit == "seconds":
        return format_duration(value, coarse=True)
    if unit == "bytes":
        return _bytes(value, limit)
    if unit == "bytes_per_second":
        return _bytes(value, limit) + "/s"
    if not math.isfinite(value) or limit:
        text = _compact(value)
    elif unit in ("percent", "celsius"):
        text = f"{value:.1f}"
    else:
        text = _compact(value)
    if unit == "percent":
        return text + "%"
    if unit == "celsius":
        return text + "°C"
    if unit == "per_second":
        return text + "/s"
    if unit == "status" and not limit and value in _STATUS_NAMES:
        return f"{_STATUS_NAMES[int(value)]} ({text})"
    return text


# -- summaries ----------------------------------------------------------------


def summarize(rule: Rule, event: Transition, labels: Labels, note: str | None = None,
              reason: str | None = None) -> str:
    """The summary of ``event``: the rule's template if it renders, else generated.

    ``reason`` explains a resolution that is not a recovery (a reload that
    removed the threshold, a series that stopped reporting); a template that
    does not place ``{reason}`` gets `` (resolved: REASON)`` appended.
    """
    if rule.summary:
        text = render_template(rule.summary, rule, event, labels, note, reason)
        if text is not None and text.strip():
            if reason and "{reason" not in rule.summary:
                text += f" (resolved: {reason})"
            return text
    return generated_summary(rule, event, labels, note, reason)


def render_template(template: str, rule: Rule, event: Transition, labels: Labels,
                    note: str | None = None, reason: str | None = None) -> str | None:
    """``template`` formatted, or None if it cannot be (it never raises)."""
    unit: Unit = "seconds" if rule.absent is not None else metric_info(rule.metric, labels).unit
    fields: dict[str, str] = dict(labels)
    fields.update(
        rule=rule.name,
        metric=rule.metric,
        value=format_value(event.value, unit),
        limit=format_value(event.limit, unit, limit=True),
        level=event.level,
        previous_level=event.previous_level or "",
        op=_symbol(rule),
        note=note or "",
        labels=", ".join(f"{k}={v}" for k, v in labels),
        status=event.status,
        duration=format_duration(event.duration, coarse=True),
        reason=reason or "",
    )
    try:
        return template.format_map(fields)[:MAX_RENDERED]
    except Exception:      # MemoryError included: one template must not stop the evaluator
        return None


def generated_summary(rule: Rule, event: Transition, labels: Labels,
                      note: str | None = None, reason: str | None = None) -> str:
    info = metric_info(rule.metric, labels)
    if rule.absent is not None:
        return _absent_summary(info.description, event, note, reason)
    value = format_value(event.value, info.unit)
    limit = format_value(event.limit, info.unit, limit=True)
    window = (f"{rule.window_mode} over {format_duration(rule.window_over, coarse=True)}"
              if rule.window_over is not None else None)
    if rule.window_mode == "predict" and rule.window_over is not None:
        window = (f"in {format_duration(rule.window_ahead or 0.0, coarse=True)} at the trend "
                  f"over {format_duration(rule.window_over, coarse=True)}")
    duration = format_duration(event.duration, coarse=True)
    if event.status == "resolved":
        head = f"{info.description} {value}" + (f" ({window})" if window else "")
        if reason:
            text = f"{head}: {reason}, resolved after {duration}"
        else:
            back = "below" if rule.op == "above" else "above"
            text = f"{head}, back {back} {limit} after {duration}"
    else:
        quals = [q for q in (window,) if q]
        if rule.multi_level or event.previous_level is not None:
            quals.append(event.level)
        if event.previous_level is not None:
            quals.append(f"was {event.previous_level}")
        text = f"{info.description} {value} {_symbol(rule)} {limit}"
        if quals:
            text += f" ({', '.join(quals)})"
        if event.duration >= 1:
            text += f" for {duration}"
    if note:
        text += f": {note}"
    return text


def _absent_summary(what: str, event: Transition, note: str | None,
                    reason: str | None) -> str:
    """``no data from disk / used for 5m`` / ``disk / used reports again after 7m``."""
    missing = format_duration(event.value or 0.0, coarse=True)
    if event.status == "firing":
        text = f"no data from {what} for {missing}"
    elif reason:
        after = format_duration(event.duration, coarse=True)
        text = f"no data from {what}: {reason}, resolved after {after}"
    else:
        text = f"{what} reports again, after {missing} without data"
    if note and event.status == "firing":
        text += f" (last: {note})"
    return text


def _symbol(rule: Rule) -> str:
    return ">" if rule.op == "above" else "<"
