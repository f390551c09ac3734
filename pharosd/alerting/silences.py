"""Silences: operator-made, time-bounded holds on the delivery of matching alerts.

Pure data and matching; wall-clock time is passed in (a silence ends at a time of the
calendar: ``--until 18:00``, or ``--for 2h`` from when it was made). A ``Silence`` has
an ``id``, a ``Selector`` (rule globs, any; label globs, all), ``starts_at`` and
``ends_at`` (wall seconds), a ``comment`` and the uid that made it. It is *active* while
``starts_at <= now < ends_at``; expiring one sets ``ends_at`` to now.

``SilenceBook`` holds them: ``add``, ``expire`` (by id or a unique id prefix),
``matching`` (the active silence that holds an alert back, if any), ``prune`` (forget
silences that ended more than ``RETAIN`` ago; until then ``list`` shows them as
expired), and ``to_data``/``from_data`` for the state file. Bounded: at most
``MAX_SILENCES`` kept, a comment at most ``MAX_COMMENT`` characters. Invalid requests
raise ``SilenceError`` with the constraint and the value.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from pharosd.alerting.matchers import Selector
from pharosd.errors import SilenceError
from pharosd.model import Labels

DATA_VERSION = 1
RETAIN = 24 * 3600.0        # seconds an ended silence is still listed
MAX_SILENCES = 1000
MAX_COMMENT = 1000
MIN_PREFIX = 4              # characters of an id that `expire` accepts


@dataclass(frozen=True, slots=True)
class Silence:
    id: str
    selector: Selector
    starts_at: float
    ends_at: float
    comment: str = ""
    created_by: int | None = None     # the uid of the peer that added it
    created_at: float = 0.0

    def active(self, now: float) -> bool:
        return self.starts_at <= now < self.ends_at

    def ended(self, now: float) -> bool:
        return now >= self.ends_at

    def matches(self, rule: str, labels: Labels) -> bool:
        return self.selector.matches(rule, labels)

    def state(self, now: float) -> str:
        if self.ended(now):
            return "expired"
        return "active" if self.active(now) else "pending"

    def to_data(self) -> dict[str, Any]:
        return {"id": self.id, "rules": list(self.selector.rules),
                "labels": dict(self.selector.labels), "starts_at": self.starts_at,
                "ends_at": self.ends_at, "comment": self.comment,
                "created_by": self.created_by, "created_at": self.created_at}

    @classmethod
    def from_data(cls, d: Mapping[str, Any]) -> Silence:
        """Inverse of ``to_data``; ``ValueError`` on anything it cannot read."""
        try:
            rules = [str(r) for r in d.get("rules") or ()]
            labels = {str(k): str(v) for k, v in dict(d.get("labels") or {}).items()}
            by = d.get("created_by")
            s = cls(id=str(d["id"]), selector=Selector.of(rules, labels),
                    starts_at=float(d["starts_at"]), ends_at=float(d["ends_at"]),
                    comment=str(d.get("comment") or ""),
                    created_by=None if by is None else int(by),
                    created_at=float(d.get("created_at") or 0.0))
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"unreadable silence: {e}") from e
        if not (math.isfinite(s.starts_at) and math.isfinite(s.ends_at)) or not s.id:
            raise ValueError("unreadable silence: times must be finite, the id non-empty")
        return s


def new_silence(id: str, rules: Iterable[str], labels: Mapping[str, str], *, now: float,
                ends_at: float, comment: str = "", created_by: int | None = None,
                starts_at: float | None = None) -> Silence:
    """A validated silence starting ``starts_at`` (default ``now``)."""
    sel = Selector.of(rules, labels)
    if sel.empty:
        raise SilenceError("expected at least one --rule or --label matcher "
                           "(--rule '*' silences every alert)")
    start = now if starts_at is None else starts_at
    if not math.isfinite(ends_at) or ends_at <= now:
        raise SilenceError(f"expected an end in the future, got {ends_at:.0f} "
                           f"(now is {now:.0f})")
    if ends_at <= start:
        raise SilenceError("expected the end after the start")
    for pattern in [*sel.rules, *(v for _, v in sel.labels)]:
        if not pattern:
            raise SilenceError("expected non-empty globs, got ''")
    for key, _ in sel.labels:
        if not key:
            raise SilenceError("expected a label name before '=', got ''")
    if len(comment) > MAX_COMMENT:
        raise SilenceError(f"expected a comment of at most {MAX_COMMENT} characters, "
                           f"got {len(comment)}")
    return Silence(id, sel, float(start), float(ends_at), comment, created_by, float(now))


class SilenceBook:
    """Every silence not yet forgotten, by id; see the module docstring."""

    def __init__(self, silences: Iterable[Silence] = ()) -> None:
        self._by_id: dict[str, Silence] = {s.id: s for s in silences}

    def __len__(self) -> int:
        return len(self._by_id)

    def all(self) -> list[Silence]:
        """Every silence kept, by start then id."""
        return sorted(self._by_id.values(), key=lambda s: (s.starts_at, s.id))

    def add(self, silence: Silence, now: float) -> Silence:
        self.prune(now)
        if silence.id in self._by_id:
            raise SilenceError(f"expected a new silence id, got {silence.id!r} twice")
        live = sum(1 for s in self._by_id.values() if not s.ended(now))
        if live >= MAX_SILENCES:
            raise SilenceError(f"expected at most {MAX_SILENCES} silences at once; "
                               "expire some first")
        self._by_id[silence.id] = silence
        return silence

    def discard(self, id: str) -> None:
        """Forget a silence at once (an add whose state file could not be written)."""
        self._by_id.pop(id, None)

    def find(self, id_or_prefix: str) -> Silence:
        """The silence with this id or unique id prefix (at least MIN_PREFIX characters)."""
        hit = self._by_id.get(id_or_prefix)
        if hit is not None:
            return hit
        if len(id_or_prefix) < MIN_PREFIX:
            raise SilenceError(f"no silence {id_or_prefix!r} (give the id, or at least "
                               f"{MIN_PREFIX} of its first characters)")
        hits = [s for i, s in self._by_id.items() if i.startswith(id_or_prefix)]
        if not hits:
            raise SilenceError(f"no silence {id_or_prefix!r}")
        if len(hits) > 1:
            raise SilenceError(f"silence id {id_or_prefix!r} is ambiguous: "
                               + ", ".join(sorted(s.id for s in hits)))
        return hits[0]

    def expire(self, id_or_prefix: str, now: float) -> Silence:
        """End a silence now; an already ended one is an error."""
        s = self.find(id_or_prefix)
        if s.ended(now):
            raise SilenceError(f"silence {s.id} already expired")
        ended = replace(s, ends_at=max(now, s.starts_at))
        self._by_id[s.id] = ended
        return ended

    def matching(self, rule: str, labels: Labels, now: float) -> Silence | None:
        """The active silence holding this alert back (the one ending last), or None."""
        best: Silence | None = None
        for s in self._by_id.values():
            if s.active(now) and s.matches(rule, labels) and (
                    best is None or (s.ends_at, s.id) > (best.ends_at, best.id)):
                best = s
        return best

    def active(self, now: float) -> list[Silence]:
        return [s for s in self.all() if s.active(now)]

    def next_change(self, now: float) -> float | None:
        """The next time a silence starts or ends after ``now`` (None: never)."""
        times = [t for s in self._by_id.values() for t in (s.starts_at, s.ends_at) if t > now]
        return min(times, default=None)

    def prune(self, now: float) -> list[Silence]:
        """Forget silences that ended more than RETAIN ago; return them."""
        gone = [s for s in self._by_id.values() if now - s.ends_at > RETAIN]
        for s in gone:
            del self._by_id[s.id]
        return gone

    def to_data(self) -> dict[str, Any]:
        return {"version": DATA_VERSION, "silences": [s.to_data() for s in self.all()]}

    @classmethod
    def from_data(cls, data: Any) -> tuple[SilenceBook, int]:
        """The book, and how many entries could not be read (skipped)."""
        if not isinstance(data, Mapping) or data.get("version") != DATA_VERSION:
            raise ValueError("not a silences file of version 1")
        out: list[Silence] = []
        bad = 0
        for item in data.get("silences") or ():
            try:
                out.append(Silence.from_data(item))
            except (ValueError, AttributeError):
                bad += 1
        return cls(out), bad
