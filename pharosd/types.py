"""Value types the config loader understands beyond plain YAML scalars.

``Duration`` (seconds, from ``250ms``, ``30s``, ``5m``, ``1h``, ``1h30m``),
``Size`` (bytes, from ``64KiB``, ``512MiB``, ``10MB``, ``1024``),
``FrozenDict`` (an immutable, hashable mapping, for labels, headers, env) and
``Data`` (plain YAML data handed on as written: null, true/false, numbers and
strings by YAML's own rules, lists as tuples, mappings as ``FrozenDict``; for
a Python statistic's ``options``). ``thaw`` turns ``Data`` back into plain
``dict`` and ``list`` values.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, NewType, TypeVar

Duration = NewType("Duration", float)
Size = NewType("Size", int)
Data = NewType("Data", object)

V = TypeVar("V")


class FrozenDict(Mapping[str, V]):
    """An immutable mapping with a stable hash, for frozen config dataclasses."""

    __slots__ = ("_d", "_h")

    def __init__(self, data: Mapping[str, V] | None = None, **kw: V) -> None:
        d: dict[str, V] = dict(data or {})
        d.update(kw)
        self._d = d
        self._h: int | None = None

    def __getitem__(self, key: str) -> V:
        return self._d[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._d)

    def __len__(self) -> int:
        return len(self._d)

    def __hash__(self) -> int:
        if self._h is None:
            self._h = hash(tuple(sorted(self._d.items(), key=lambda kv: kv[0])))
        return self._h

    def __eq__(self, other: Any) -> bool:
        if isinstance(other, Mapping):
            return dict(self._d) == dict(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"FrozenDict({self._d!r})"


def thaw(value: Any) -> Any:
    """``Data`` as plain Python values: ``FrozenDict`` -> ``dict``, tuple -> ``list``."""
    if isinstance(value, FrozenDict):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [thaw(v) for v in value]
    return value
