"""Rendering ``pharosd status``: the daemon's state as a human report (pure).

``render_status(state, now)`` prints sections for the keys it knows, in a
fixed order, and keeps the keys it does not know; times show as RFC 3339
with an age.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pharosd.clock import SystemClock
from pharosd.model import parse_rfc3339, rfc3339
from pharosd.units import format_duration, format_size

_KNOWN = ("version", "pid", "host", "started_at", "config", "reload", "problems", "workers",
          "alerts", "silences", "maintenance", "sinks", "pipeline", "collector", "http")


def render_status(state: Mapping[str, Any], now: float | None = None) -> str:
    """A human report of ``state``; sections for the keys present, in a fixed order.

    Keys it does not know are not lost: a mapping becomes a section of
    ``key  value`` lines, anything else a ``key: value`` line.
    """
    now = SystemClock().wall() if now is None else now
    out: list[str] = []

    head = "pharosd"
    if state.get("version"):
        head += f" {_clean(state['version'])}"
    if state.get("host"):
        head += f" on {_clean(state['host'])}"
    if state.get("pid") is not None:
        head += f", pid {_clean(state['pid'])}"
    if state.get("started_at") is not None:
        head += f", started {_when(state['started_at'], now)}"
    out.append(head)

    config = state.get("config")
    if isinstance(config, Mapping):
        line = f"config:  {_clean(config.get('source') or 'embedded default')}"
        if config.get("loaded_at") is not None:
            line += f", loaded {_when(config['loaded_at'], now)}"
        if config.get("digest"):
            line += f", digest {_clean(str(config['digest'])[:12])}"
        out.append(line)

    reload = state.get("reload")
    if isinstance(reload, Mapping):
        at = f" {_when(reload['at'], now)}" if reload.get("at") is not None else ""
        errors = [str(e) for e in _list(reload.get("errors"))]
        if reload.get("ok") is None or (reload.get("ok") and not at):
            out.append("reload:  none since start")
        elif reload.get("ok"):
            out.append(f"reload:  ok{at}")
        else:
            out.append(f"reload:  FAILED{at}, {len(errors)} error(s); the previous config runs")
            out.extend(f"         {_clean(e)}" for e in errors)

    problems = [str(p) for p in _list(state.get("problems"))]
    if problems:
        out.append(f"DEGRADED: {len(problems)} problem(s), retried until they heal")
        out.extend(f"         {_clean(p)}" for p in problems)

    if "workers" in state:
        workers = _rows(state.get("workers"))
        out += ["", f"Workers ({len(workers)})"]
        out += _table(workers, [
            ("NAME", "name", _cell), ("STATE", "state", _cell), ("ALIVE", "alive", _yes_no),
            ("RESTARTS", "restarts", _cell),
            ("HEARTBEAT", "heartbeat_age", lambda v: _age(v) + " ago" if _is_num(v) else "-"),
            ("LAST ERROR", "last_error", _cell)])

    if "alerts" in state:
        alerts = _rows(state.get("alerts"))
        out += ["", f"Open alerts ({len(alerts)})"]
        out += _table(alerts, [
            ("RULE", "rule", _cell), ("LABELS", "labels", _labels), ("LEVEL", "level", _cell),
            ("STATUS", "status", _cell),
            ("SINCE", "since", lambda v: "-" if v is None else _when(v, now)),
            ("SILENCED", "silenced_by", _held), ("SUMMARY", "summary", _cell)])

    if "silences" in state:
        silences = _rows(state.get("silences"))
        out += ["", f"Silences ({len(silences)})", *_silence_table(silences, now)]

    if "maintenance" in state:
        windows = _rows(state.get("maintenance"))
        out += ["", f"Maintenance windows in effect ({len(windows)})"]
        out += _table(windows, [
            ("NAME", "name", _cell), ("MATCHERS", "matchers", _cell),
            ("SCHEDULE", "schedule", _cell),
            ("CLOSES", "closes", lambda v: "-" if v is None else _until(v, now))])

    if "sinks" in state:
        sinks = _rows(state.get("sinks"))
        out += ["", f"Sinks ({len(sinks)})"]
        out += _table(sinks, [
            ("NAME", "name", _cell), ("BACKLOG", "backlog", _cell),
            ("DELIVERED", "delivered", _cell), ("DROPPED", "dropped", _total),
            ("LAST SUCCESS", "last_success", lambda v: _ago(v, now)),
            ("LAST ERROR", "last_error", _cell)])

    collector = state.get("collector")
    if isinstance(collector, Mapping) and collector and \
            all(isinstance(v, Mapping) for v in collector.values()):
        sources = [{"name": k, **v} for k, v in collector.items()]
        out += ["", f"Sources ({len(sources)})"]
        out += _table(sources, [
            ("NAME", "name", _cell), ("EVERY", "every", _duration),
            ("LAST RUN", "last_run", lambda v: _ago(v, now)), ("RUNS", "runs", _cell),
            ("FAILURES", "failures", _cell), ("SKIPPED", "skipped", _cell),
            ("MISSED", "missed", _cell), ("LAST ERROR", "last_error", _cell)])
    elif isinstance(collector, Mapping) and collector:
        out += ["", "Collector", *_pairs(collector)]

    pipeline = state.get("pipeline")
    if isinstance(pipeline, Mapping) and pipeline:
        receivers = _rows(pipeline.get("receivers"))
        rest = {k: v for k, v in pipeline.items() if k != "receivers"}
        out += ["", "Pipeline", *_pairs(rest)]
        if receivers:
            out += ["", f"Receivers ({len(receivers)})"]
            out += _table(receivers, [
                ("NAME", "name", _cell), ("UP", "up", _yes_no),
                ("BUFFERED", "buffer_samples", _cell), ("SPILLED", "spill_samples", _cell),
                ("SPILL", "spill_bytes", _bytes), ("SENT", "sent", _cell),
                ("DROPPED", "dropped", _total),
                ("SINCE SUCCESS", "seconds_since_success", _age),
                ("LAST ERROR", "last_error", _cell)])

    http = state.get("http")
    if isinstance(http, Mapping) and http:
        out += ["", "HTTP listener"]
        out += _table([http], [
            ("LISTEN", "listen", _cell), ("TLS", "tls", _on_off),
            ("AUTH", "basic_auth", _on_off), ("OPEN", "open", _cell),
            ("REQUESTS", "requests", _cell), ("REFUSED", "refused", _cell),
            ("TIMEOUTS", "timeouts", _cell), ("TLS ERRORS", "tls_errors", _cell)])

    for key, value in state.items():
        if key in _KNOWN or value is None:
            continue
        if isinstance(value, Mapping):
            out += ["", _clean(key).replace("_", " ").capitalize(), *_pairs(value)]
        else:
            out.append(f"{_clean(key)}: {_flat(value)}")
    return "\n".join(out) + "\n"


def _rows(value: Any) -> list[Mapping[str, Any]]:
    return [r for r in _list(value) if isinstance(r, Mapping)]


def _pairs(mapping: Mapping[str, Any]) -> list[str]:
    if not mapping:
        return ["  -"]
    width = max(len(_clean(k)) for k in mapping)
    return [f"  {_clean(k):<{width}}  {_flat(v)}" for k, v in mapping.items()]


Column = tuple[str, str, Callable[[Any], str]]


def _table(rows: Sequence[Mapping[str, Any]], columns: Sequence[Column]) -> list[str]:
    """Aligned columns; the first column always, the others only when a row has the key."""
    if not rows:
        return ["  none"]
    shown = [c for i, c in enumerate(columns) if i == 0 or any(c[1] in r for r in rows)]
    cells = [[title for title, _, _ in shown]]
    cells += [[fmt(r.get(key)) for _, key, fmt in shown] for r in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(shown))]
    return ["  " + "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
            for line in cells]


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def _clean(value: Any) -> str:
    """One printable line: a label value must not move the cursor or fake a row."""
    text = str(value)
    return "".join(ch if ch.isprintable() else "?" for ch in text)


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    return _clean(value)


def _yes_no(value: Any) -> str:
    if value is None:
        return "-"
    return "yes" if value else "NO"


def _is_num(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _labels(value: Any) -> str:
    pairs: list[tuple[Any, Any]] = []
    if isinstance(value, Mapping):
        pairs = list(value.items())
    elif isinstance(value, list | tuple):   # [[name, value], ...] as Labels serialise
        pairs = [(p[0], p[1]) for p in value if isinstance(p, list | tuple) and len(p) == 2]
    elif value:
        return _clean(value)
    return _clean(",".join(f"{k}={v}" for k, v in pairs)) if pairs else "-"


def _flat(value: Any) -> str:
    if isinstance(value, Mapping):
        return ", ".join(f"{_clean(k)}={_flat(v)}" for k, v in value.items()) or "-"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_flat(v) for v in value) + "]"
    return _cell(value)


def _on_off(value: Any) -> str:
    return "-" if value is None else ("on" if value else "off")


def _total(value: Any) -> str:
    """A count, or the sum of a ``{reason: count}`` mapping."""
    if isinstance(value, Mapping):
        return _cell(sum(v for v in value.values() if _is_num(v)))
    return _cell(value)


def _duration(value: Any) -> str:
    return format_duration(float(value)) if _is_num(value) else _cell(value)


def _bytes(value: Any) -> str:
    return format_size(int(value)) if _is_num(value) else _cell(value)


def _timestamp(value: Any) -> float | None:
    """Wall seconds from a number or an RFC 3339 string; None for anything else."""
    if _is_num(value):
        return float(value)
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return parse_rfc3339(value)
    return None


def _ago(value: Any, now: float) -> str:
    """A timestamp as its age: ``3m12s ago`` (the full time is in ``--json``)."""
    ts = _timestamp(value)
    if ts is None:
        return _cell(value)
    return f"{_age(now - ts)} ago"


def _age(seconds: Any) -> str:
    """``400ms``, ``42s``, ``3m12s``, ``2h5m``, ``3d4h`` (``format_duration``, coarse)."""
    if not _is_num(seconds):
        return "-"
    return format_duration(float(seconds), coarse=True)


def _when(value: Any, now: float) -> str:
    """A timestamp (wall seconds or RFC 3339) as ``RFC3339 (AGE ago)``."""
    ts = _timestamp(value)
    if ts is None:
        return _clean(value)
    return f"{rfc3339(ts)} ({_age(now - ts)} ago)"


def _held(value: Any) -> str:
    """``silence 3f2a9c0e1b7d: disk swap`` / ``maintenance patching``."""
    if not isinstance(value, Mapping):
        return "-" if not value else _clean(value)
    kind, ident = _clean(value.get("kind", "?")), _clean(value.get("id", "?"))
    if kind == "silence":
        comment = _clean(value.get("comment") or "")
        return f"silence {ident[:12]}" + (f": {comment}" if comment else "")
    return f"{kind} {ident}"


def _until(value: Any, now: float) -> str:
    """A future timestamp as ``RFC3339 (in AGE)``; a past one as ``_when`` does."""
    if _is_num(value) and float(value) > now:
        return f"{rfc3339(float(value))} (in {_age(float(value) - now)})"
    return _when(value, now)


def _silence_table(silences: Sequence[Mapping[str, Any]], now: float) -> list[str]:
    return _table(silences, [
        ("ID", "id", _cell), ("STATE", "state", _cell), ("MATCHERS", "matchers", _cell),
        ("ENDS", "ends_at", lambda v: "-" if v is None else _until(v, now)),
        ("BY UID", "created_by", _cell), ("COMMENT", "comment", _cell)])


def render_silences(silences: Any, now: float | None = None) -> str:
    """``pharosd silence list``: one row per silence (active, pending, recently expired)."""
    rows = _rows(silences)
    return "\n".join(_silence_table(rows, SystemClock().wall() if now is None else now)) + "\n"


def render_event(event: Mapping[str, Any]) -> str:
    """One alert event as one readable line:
    ``2026-12-03T14:11:54.885Z FIRING   warning  disk-full{mount=/}  disk / used 93% > 90%``."""
    status = _clean(event.get("status", "?")).upper()
    labels = event.get("labels")
    shown = _labels(labels)
    rule = _clean(event.get("rule", "?")) + (f"{{{shown}}}" if shown != "-" else "")
    return (f"{_clean(event.get('at', '-'))} {status:<8} {_clean(event.get('level', '-')):<8} "
            f"{rule}  {_clean(event.get('summary', ''))}")
