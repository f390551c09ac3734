"""The values that flow between workers: samples and alert events.

A ``Sample`` is one measurement. Labels are a tuple of ``(name, value)`` pairs
sorted by name, so equal label sets compare and hash equal and a sample costs
no dict. Timestamps are wall-clock seconds (``time.time()``): they are
for people and for the central store; durations are measured with the
monotonic clock elsewhere.

An ``AlertEvent`` is the contract users see (DESIGN.md): ``to_json()`` gives
the object the file sink writes and the webhook posts.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from pharosd.digest import sha256

Labels = tuple[tuple[str, str], ...]
Level = Literal["info", "warning", "critical"]
Status = Literal["firing", "resolved"]
Op = Literal["above", "below"]

EVENT_VERSION = 1

NO_LABELS: Labels = ()


def labels_of(mapping: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
              **extra: str) -> Labels:
    """Normalise a mapping or pairs into sorted ``Labels``."""
    pairs: dict[str, str] = {}
    if mapping is not None:
        items = mapping.items() if isinstance(mapping, Mapping) else mapping
        for k, v in items:
            pairs[str(k)] = str(v)
    for k, v in extra.items():
        pairs[k] = str(v)
    return tuple(sorted(pairs.items()))


@dataclass(frozen=True, slots=True)
class Sample:
    """One value of one metric at one time.

    ``metric`` is dotted (``memory.used_percent``); ``note`` is free text a
    probe attaches to its status sample (a plugin's first line), else None.
    """

    metric: str
    labels: Labels
    value: float
    ts: float
    note: str | None = None

    def label(self, name: str, default: str = "") -> str:
        for k, v in self.labels:
            if k == name:
                return v
        return default


_INVALID_METRIC_CHARS = re.compile(r"[^a-zA-Z0-9_:]")
_INVALID_LABEL_CHARS = re.compile(r"[^a-zA-Z0-9_]")


def wire_name(metric: str, prefix: str = "pharos_") -> str:
    """``memory.used_percent`` -> ``pharos_memory_used_percent`` (Prometheus rules)."""
    name = _INVALID_METRIC_CHARS.sub("_", metric)
    return prefix + name


def wire_label_name(name: str) -> str:
    """A label name valid for Prometheus: ``[a-zA-Z_][a-zA-Z0-9_]*``."""
    name = _INVALID_LABEL_CHARS.sub("_", name)
    if not name or name[0].isdigit():
        name = "_" + name
    return name


def rfc3339(ts: float) -> str:
    """Wall-clock seconds as RFC 3339 UTC with millisecond precision."""
    dt = datetime.fromtimestamp(ts, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def fingerprint(rule: str, labels: Labels) -> str:
    """Stable id of one alert: the rule and the label set of its instance."""
    h = sha256(rule.encode())
    for k, v in labels:
        h.update(b"\0" + k.encode() + b"\0" + v.encode())
    return h.hexdigest()[:16]


def new_event_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """A ``firing`` or ``resolved`` event of one alert (DESIGN.md contract).

    ``started_at`` is when the alert fired (wall seconds); ``at`` when this
    event happened. An escalation or de-escalation between levels of one
    alert is a ``firing`` event whose ``previous_level`` is set. A reminder
    (``sinks[].repeat``) is the alert's current ``firing`` event sent again
    with a new ``id`` and ``at``, and ``reminder`` set.
    """

    status: Status
    rule: str
    level: Level
    metric: str
    labels: Labels
    value: float | None
    limit: float | None
    op: Op
    host: str
    started_at: float
    at: float
    summary: str
    fingerprint: str
    id: str = field(default_factory=new_event_id)
    previous_level: Level | None = None
    reminder: bool = False

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "version": EVENT_VERSION,
            "id": self.id,
            "fingerprint": self.fingerprint,
            "status": self.status,
            "rule": self.rule,
            "level": self.level,
            "metric": self.metric,
            "labels": dict(self.labels),
            "value": _json_number(self.value),
            "limit": _json_number(self.limit),
            "op": self.op,
            "host": self.host,
            "started_at": rfc3339(self.started_at),
            "at": rfc3339(self.at),
            "summary": self.summary,
        }
        if self.previous_level is not None:
            d["previous_level"] = self.previous_level
        if self.reminder:
            d["reminder"] = True
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), sort_keys=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> AlertEvent:
        """Inverse of ``to_dict`` (the outbox stores events as JSON)."""
        return cls(
            status=d["status"],
            rule=d["rule"],
            level=d["level"],
            metric=d["metric"],
            labels=labels_of(d.get("labels") or {}),
            value=d.get("value"),
            limit=d.get("limit"),
            op=d["op"],
            host=d["host"],
            started_at=parse_rfc3339(d["started_at"]),
            at=parse_rfc3339(d["at"]),
            summary=d["summary"],
            fingerprint=d["fingerprint"],
            id=d["id"],
            previous_level=d.get("previous_level"),
            reminder=bool(d.get("reminder", False)),
        )


def parse_rfc3339(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _json_number(v: float | None) -> float | None:
    if v is None or v != v or v in (float("inf"), float("-inf")):
        return None
    return v
