"""The type-hint walker: what a config annotation accepts and how a scalar converts.

The vocabulary of the config dataclasses (see ``pharosd.config.schema``):
``str``, ``int``, ``float``, ``bool``, ``Duration``, ``Size``, string
``Literal[...]``, ``tuple[X, ...]`` (a YAML list), ``FrozenDict[X]`` (a YAML
mapping), ``Data`` (any YAML value, as plain data), dataclasses, and unions
of those told apart by the YAML node's shape or, for dataclasses with a
``kind: Literal[...]`` field, by ``kind``.
``accepts(annotation)`` says what one annotation takes, ``fields_of(cls)``
describes a dataclass's fields, ``convert`` turns a text into a scalar (or
raises ``Mismatch`` with what was expected). ``check_schema(cls)`` verifies a
dataclass tree uses only this vocabulary (tests call it on ``Config``).
"""

from __future__ import annotations

import dataclasses
import math
import re
import sys
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from pharosd.types import Data, Duration, FrozenDict, Size
from pharosd.units import UnitError, format_duration, format_size, parse_duration, parse_size

INT_TEXT = re.compile(r"[-+]?[0-9][0-9_]*")
FLOAT_TEXT = re.compile(r"[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)?")
TRUE_TEXTS, FALSE_TEXTS = ("true", "True", "TRUE"), ("false", "False", "FALSE")
# Limits on every number, whatever a field's own bounds: a config never needs more, and
# past them Python refuses (4,300 digits), waits overflow, or SQLite cannot store the value.
MAX_NUMBER_TEXT = 64                 # characters of a number, duration or size
INT_LIMIT = 2**63 - 1                # |int| and sizes in bytes
DURATION_LIMIT = 10 * 365 * 86400.0  # ten years, in seconds


def check_schema(cls: type) -> None:
    """Raise ``TypeError`` if a dataclass tree uses an annotation the loader cannot build."""
    _check_schema(cls, set())


@dataclass(frozen=True)
class Accepts:
    """The shapes an annotation (or a union of them) accepts, by YAML node kind."""

    none: bool = False
    scalars: tuple[Any, ...] = ()            # str, int, float, bool, Duration, Size, Literal[...]
    sequence: Any = None                     # X of tuple[X, ...]
    dict_values: Any = None                  # X of FrozenDict[X]
    record: type | None = None               # one dataclass, built from a mapping
    kinds: Mapping[str, type] | None = None  # dataclasses picked by their `kind`
    bare: type | None = None                 # `record` built from a bare scalar (__scalar_field__)
    data: bool = False                       # ``Data``: any node, as plain data

    def expected(self) -> str:
        wants = [scalar_expected(t) for t in self.scalars]
        if self.bare is not None:
            bare_field = fields_of(self.bare)[self.bare.__scalar_field__]  # type: ignore[attr-defined]
            wants.extend(scalar_expected(t) for t in bare_field.accepts.scalars)
        if self.sequence is not None:
            wants.append("a list")
        if self.dict_values is not None or self.record is not None or self.kinds is not None:
            wants.append("a mapping")
        return either(wants)


@dataclass(frozen=True)
class Field:
    name: str                 # the YAML key (``metadata["key"]``, else the attribute)
    annotation: Any
    accepts: Accepts
    required: bool
    bounds: tuple[float | None, float | None]
    attr: str = ""            # the dataclass attribute the key fills


_SCALAR_TYPES = (str, int, float, bool, Duration, Size)


def _is_union(annotation: Any) -> bool:
    return get_origin(annotation) in (Union, types.UnionType)


@cache
def accepts(annotation: Any) -> Accepts:
    members = get_args(annotation) if _is_union(annotation) else (annotation,)
    none, scalars, sequence, dict_values, records = False, [], None, None, []
    for m in members:
        origin = get_origin(m)
        if m is Data:
            if members != (m,):
                raise TypeError(f"config annotation {annotation!r}: Data takes no union")
            return Accepts(data=True)
        if m is type(None):
            none = True
        elif m in _SCALAR_TYPES or origin is Literal:
            scalars.append(m)
        elif origin is tuple and len(get_args(m)) == 2 and get_args(m)[1] is Ellipsis:
            if sequence is not None:
                raise TypeError(f"config annotation {annotation!r}: two list types in one union")
            sequence = get_args(m)[0]
        elif m is FrozenDict or origin is FrozenDict:
            dict_values = (get_args(m) or (str,))[0]
        elif isinstance(m, type) and dataclasses.is_dataclass(m):
            records.append(m)
        else:
            raise TypeError(f"unsupported config annotation {m!r} in {annotation!r}")
    if dict_values is not None and records:
        raise TypeError(f"config annotation {annotation!r}: a mapping type and a dataclass")
    scalars.sort(key=lambda t: t is str)   # str accepts every text: try it last
    record = kinds = bare = None
    if len(records) == 1 and kind_values(records[0]) is None:
        record = records[0]
        if hasattr(record, "__scalar_field__") and not scalars:
            bare = record
    elif records:
        kinds = kind_table(records, annotation)
    return Accepts(none, tuple(scalars), sequence, dict_values, record, kinds, bare)


def kind_values(cls: type) -> tuple[str, ...] | None:
    """The values of a ``kind: Literal[...]`` field, or None without one."""
    if not any(f.name == "kind" for f in dataclasses.fields(cls)):
        return None
    annotation = hints_of(cls)["kind"]
    return tuple(get_args(annotation)) if get_origin(annotation) is Literal else None


@cache
def hints_of(cls: type) -> dict[str, Any]:
    return get_type_hints(cls)


def kind_table(classes: list[type], annotation: Any) -> dict[str, type]:
    table: dict[str, type] = {}
    for cls in classes:
        values = kind_values(cls)
        if values is None:
            raise TypeError(f"config annotation {annotation!r}: {cls.__name__} needs a "
                            "`kind: Literal[...]` field to be told apart")
        for v in values:
            if v in table:
                raise TypeError(f"config annotation {annotation!r}: kind {v!r} is used "
                                f"by {table[v].__name__} and {cls.__name__}")
            table[v] = cls
    return table


@cache
def fields_of(cls: type) -> dict[str, Field]:
    hints = hints_of(cls)
    out: dict[str, Field] = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        bounds = (f.metadata.get("min"), f.metadata.get("max"))
        # metadata "key": a YAML key that cannot be an attribute name (``from``)
        key = f.metadata.get("key", f.name)
        out[key] = Field(key, hints[f.name], accepts(hints[f.name]), required, bounds,
                         attr=f.name)
    return out


def _check_schema(cls: type, seen: set[type]) -> None:
    if cls in seen:
        return
    seen.add(cls)
    try:
        fields = fields_of(cls)
    except TypeError as e:
        raise TypeError(f"{cls.__name__}: {e}") from e
    scalar_field = getattr(cls, "__scalar_field__", None)
    if scalar_field is not None and (scalar_field not in fields
                                     or not fields[scalar_field].accepts.scalars):
        raise TypeError(f"{cls.__name__}.__scalar_field__ = {scalar_field!r} is not a scalar field")
    for f in fields.values():
        pending = [f.accepts]
        while pending:
            acc = pending.pop()
            for t in acc.scalars:
                if get_origin(t) is Literal and not all(isinstance(v, str) for v in get_args(t)):
                    raise TypeError(f"{cls.__name__}.{f.name}: only string Literals are supported")
            for inner in (acc.sequence, acc.dict_values):
                if inner is not None:
                    pending.append(accepts(inner))
            for record in [acc.record, *(acc.kinds or {}).values()]:
                if record is not None:
                    _check_schema(record, seen)


class Mismatch(Exception):
    """A text does not fit a scalar type; ``expected`` and an optional ``hint``."""

    def __init__(self, expected: str, hint: str = "") -> None:
        super().__init__(expected)
        self.expected = expected
        self.hint = hint


def scalar_expected(t: Any) -> str:
    if get_origin(t) is Literal:
        return "one of " + ", ".join(str(v) for v in get_args(t))
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false",
            Duration: "a duration like 30s", Size: "a size like 512MiB"}[t]


def convert(t: Any, text: str, bounds: tuple[float | None, float | None]) -> Any:
    """Text -> a value of scalar type ``t``, or raise ``Mismatch``."""
    if t is str:
        # A copy, interned: repeated texts (metric names) are kept once, and the
        # YAML tree's strings die with the tree, so its memory can go back after a load.
        return sys.intern(text.encode("utf-8", "surrogatepass").decode("utf-8", "surrogatepass"))
    if get_origin(t) is Literal:
        for v in get_args(t):
            if v == text:
                return v
        import difflib  # for a suggestion after an error only

        close = difflib.get_close_matches(text, [str(v) for v in get_args(t)], n=1)
        raise Mismatch(scalar_expected(t), f", did you mean {close[0]!r}?" if close else "")
    if t is bool:
        if text in TRUE_TEXTS or text in FALSE_TEXTS:
            return text in TRUE_TEXTS
        raise Mismatch("true or false")
    value: float
    if len(text) > MAX_NUMBER_TEXT:
        raise Mismatch(scalar_expected(t), f" ({len(text)} characters; at most "
                                           f"{MAX_NUMBER_TEXT})")
    if t is int:
        if not INT_TEXT.fullmatch(text):
            raise Mismatch("an integer")
        value = int(text.replace("_", ""))
    elif t is float:
        if not FLOAT_TEXT.fullmatch(text):
            raise Mismatch("a number")
        value = float(text.replace("_", ""))
        if not math.isfinite(value):
            raise Mismatch("a number")
    else:
        try:
            value = parse_duration(text) if t is Duration else parse_size(text)
        except UnitError as e:
            raise Mismatch(e.expected) from None
    _check_bounds(t, value, bounds)
    limit = {int: INT_LIMIT, Size: INT_LIMIT, Duration: DURATION_LIMIT}.get(t)
    if limit is not None and abs(value) > limit:
        _check_bounds(t, value, (None if value > 0 else -limit, limit if value > 0 else None))
    return value


def _check_bounds(t: Any, value: float, bounds: tuple[float | None, float | None]) -> None:
    low, high = bounds
    if (low is None or value >= low) and (high is None or value <= high):
        return
    noun = {int: "an integer", float: "a number", Duration: "a duration", Size: "a size"}[t]
    show: Callable[[float], str] = {
        Duration: format_duration, Size: lambda v: format_size(int(v)),
        int: lambda v: str(int(v)),
    }.get(t, lambda v: f"{v:g}")
    if low is not None and high is not None:
        raise Mismatch(f"{noun} between {show(low)} and {show(high)}")
    if low is not None:
        raise Mismatch(f"{noun} of at least {show(low)}")
    assert high is not None
    raise Mismatch(f"{noun} of at most {show(high)}")


def either(options: list[str]) -> str:
    options = list(dict.fromkeys(options))
    return options[0] if len(options) == 1 else ", ".join(options[:-1]) + " or " + options[-1]
