"""``AlertState`` to and from plain JSON-able data, so a restart can restore alerts.

Monotonic times do not survive a restart, so they are stored as ages
(seconds before the export's ``now``) and turned back into times relative to
the import's ``now``: the time the daemon was down does not count towards a
soak or a cool. Wall times (``started_at``, ``breach_wall``) are kept as is.
``state_from_dict`` raises ``ValueError`` on data it cannot read;
``read_instances`` reads one exported rule's instances, skipping what it cannot
read; ``orphan_resolved`` is the event of a restored alert whose rule is gone;
``rule_entry`` is one rule's exported entry and ``open_alert`` one open alert as
``pharosd status`` shows it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from pharosd.alerting.machine import LEVEL_RANK, AlertState, Observation, Phase, Transition
from pharosd.alerting.rules import Rule
from pharosd.alerting.summary import summarize
from pharosd.model import AlertEvent, Labels, Level, Op, fingerprint, labels_of

_MONO = ("breach_since", "fired_at", "recover_since", "lower_since")
_WALL = ("breach_wall", "started_at")


def state_to_dict(state: AlertState, now: float) -> dict[str, Any]:
    """``state`` as JSON-able data, monotonic times as ages before ``now``."""
    d: dict[str, Any] = {"phase": state.phase.value, "level": state.level}
    for name in _MONO:
        t = getattr(state, name)
        d[name + "_age"] = None if t is None else max(0.0, now - t)
    for name in _WALL:
        d[name] = getattr(state, name)
    last = state.last
    d["last"] = None if last is None else {
        "level": last.level, "value": _num(last.value), "limit": _num(last.limit)}
    return d


def state_from_dict(d: Mapping[str, Any], now: float) -> AlertState:
    """Inverse of ``state_to_dict``, with times relative to ``now``."""
    try:
        phase = Phase(d["phase"])
        level = _level(d.get("level"))
        mono = {}
        for name in _MONO:
            age = d.get(name + "_age")
            mono[name] = None if age is None else now - max(0.0, float(age))
        wall = {name: _opt_float(d.get(name)) for name in _WALL}
        raw = d.get("last")
        last = None if raw is None else Observation(
            _level(raw.get("level")), _float(raw.get("value")), _opt_float(raw.get("limit")))
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ValueError(f"unreadable alert state {dict(d)!r}: {e}") from e
    state = AlertState(phase=phase, level=level, last=last, **mono, **wall)
    _check(state)
    return state


def _check(s: AlertState) -> None:
    need: tuple[str, ...] = ()
    if s.phase is Phase.PENDING:
        need = ("level", "last", "breach_since")
    elif s.phase is Phase.FIRING:
        need = ("level", "last", "breach_since", "fired_at", "started_at")
    elif s.phase is Phase.RESOLVING:
        need = ("level", "last", "breach_since", "fired_at", "started_at", "recover_since")
    missing = [n for n in need if getattr(s, n) is None]
    if missing:
        raise ValueError(f"alert state in phase {s.phase.value} lacks {', '.join(missing)}")
    if s.phase is not Phase.OK and s.last is not None and (
            s.last.breaching == (s.phase is Phase.RESOLVING)):
        raise ValueError(f"alert state in phase {s.phase.value} has a contrary observation")


def _level(v: Any) -> Level | None:
    if v is None:
        return None
    if v not in LEVEL_RANK:
        raise ValueError(f"expected info, warning or critical, got {v!r}")
    level: Level = v
    return level


def _num(v: float | None) -> float | str | None:
    if v is None or math.isfinite(v):
        return v
    return repr(v)          # "nan", "inf", "-inf": JSON has no such numbers


def _float(v: Any) -> float:
    return float(v)


def _opt_float(v: Any) -> float | None:
    return None if v is None else float(v)


def read_instances(entry: Any, now: float) -> list[tuple[Labels, AlertState]]:
    """The readable ``(labels, state)`` pairs of one exported rule entry."""
    out: list[tuple[Labels, AlertState]] = []
    if not isinstance(entry, Mapping):
        return out
    for item in entry.get("instances") or ():
        try:
            labels = labels_of((str(k), str(v)) for k, v in item["labels"])
            out.append((labels, state_from_dict(item["state"], now)))
        except (KeyError, TypeError, ValueError):
            continue
    return out


def orphan_resolved(entry: Mapping[str, Any], labels: Labels, state: AlertState, host: str,
                    wall: float) -> AlertEvent:
    """The ``resolved`` event of a restored open alert whose rule is gone."""
    name = str(entry.get("rule", "?"))
    op: Op = "below" if entry.get("op") == "below" else "above"
    assert state.level is not None and state.started_at is not None
    return AlertEvent(
        status="resolved", rule=name, level=state.level, metric=str(entry.get("metric", "")),
        labels=labels, value=state.value, limit=state.limit, op=op, host=host,
        started_at=state.started_at, at=wall,
        summary=f"{name}: threshold removed while pharosd was down, resolved",
        fingerprint=fingerprint(name, labels),
    )


def rule_entry(rule: Rule, states: Mapping[Labels, AlertState], now_mono: float) -> dict[str, Any]:
    """One rule's entry of ``Evaluator.export_state``: its open instances, sorted by labels."""
    return {
        "rule": rule.name,
        "metric": rule.metric,
        "op": rule.op,
        "instances": [{"labels": [list(kv) for kv in labels],
                       "state": state_to_dict(states[labels], now_mono)}
                      for labels in sorted(states)],
    }


def open_alert(rule: Rule, s: AlertState, labels: Labels, fingerprint: str,
               note: str | None) -> dict[str, Any]:
    """One open alert as ``pharosd status`` shows it; its summary says what it says now
    (its age is shown beside it, so no "for 5m")."""
    summary = None
    if s.level is not None:
        t = Transition("firing", s.level, None, s.value, s.limit,
                       s.started_at if s.started_at is not None else 0.0, 0.0)
        summary = summarize(rule, t, labels, note)
    return {
        "rule": rule.name, "metric": rule.metric, "labels": dict(labels), "level": s.level,
        "status": s.phase.value,
        "since": s.breach_wall if s.phase is Phase.PENDING else s.started_at,
        "value": s.value, "limit": s.limit, "fingerprint": fingerprint, "summary": summary,
    }
