"""Load pharos.yaml: YAML text -> frozen config dataclasses, generically, every error at once.

The document is composed once with PyYAML's pure-Python ``SafeLoader`` (the
C loader's error texts differ and correctness beats speed here) into nodes
that keep their line and column. ``_Builder.build(node, annotation, path)``
then walks the nodes against the dataclasses' type hints (the vocabulary of
``pharosd.config.schema``): no per-class code, so any dataclass made of that
vocabulary loads. A bad value records a ``ConfigIssue`` and the walk goes on,
so one run reports every problem; ``ConfigError`` lists them in file order.

Rules beyond the schema docstring:

* Scalars convert from their text by the target type, whatever their YAML
  style: ``port: "80"`` is the int 80; ``name: 80`` is the string "80".
  ``bool`` takes only ``true``/``false``; ``int`` and ``float`` refuse bools.
* ``${NAME}``, ``${NAME:-default}`` (default when unset or empty) and ``$$``
  (a literal ``$``) are substituted in every value scalar before conversion;
  a substitution that leaves an empty text reads as null where null is
  allowed. Values of secret-looking keys are shown as ``<redacted>``.
* An empty value (``spill:`` with every child commented out) of a list,
  mapping or section field that has a default means "use the default".
* ``<<`` merge keys work; duplicate keys, non-string keys and tags outside
  YAML's own (``!vault``) are errors anywhere in the document.

``check_schema(cls)`` verifies a dataclass tree uses only this vocabulary
(tests call it on ``Config``).
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import math
import os
import re
import time
import types
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from pharosd.config.schema import Config
from pharosd.config.types import Duration, FrozenDict, Size
from pharosd.config.units import UnitError, format_duration, format_size, parse_duration, parse_size
from pharosd.errors import ConfigError, ConfigIssue

DEFAULT_CONFIG_PATH = "/etc/pharos.yaml"
EMBEDDED_SOURCE = "<embedded default>"

_NULL_TAG = "tag:yaml.org,2002:null"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_YAML_TAG_PREFIX = "tag:yaml.org,2002:"
_SECRET_WORDS = ("token", "secret", "password", "passwd", "key", "auth", "credential")
_INT = re.compile(r"[-+]?[0-9][0-9_]*")
_FLOAT = re.compile(r"[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)?")
_TRUE, _FALSE = ("true", "True", "TRUE"), ("false", "False", "FALSE")
_REF = re.compile(r"\$(?:(\$)|\{([^}]*)\}|(\{))")
_REF_BODY = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?", re.DOTALL)
_PATH_PART = re.compile(r"\[(\d+)\]|([^.\[\]]+)")

_INVALID: Any = object()   # a value that failed to build; its issue is already recorded


# -- public API ---------------------------------------------------------------


@dataclass(frozen=True)
class LoadedConfig:
    """A validated config and where it came from (``source`` is a path or EMBEDDED_SOURCE)."""

    config: Config
    source: str
    loaded_at: float      # wall-clock time of the load
    digest: str           # sha256 of the text, to tell whether a reload changed anything


def parse_config(text: str, filename: str = "<string>",
                 environ: Mapping[str, str] | None = None) -> Config:
    """Parse pharos.yaml text into ``Config``; raise ``ConfigError`` listing every problem."""
    config: Config = parse_as(Config, text, filename, environ)
    return config


def parse_as(cls: type, text: str, filename: str = "<string>",
             environ: Mapping[str, str] | None = None) -> Any:
    """Parse YAML text into any dataclass made of the schema vocabulary."""
    root = _compose(text, filename)
    if root is None or _is_null(root):   # an empty file: every default
        root = MappingNode("tag:yaml.org,2002:map", [],
                           start_mark=yaml.Mark(filename, 0, 0, 0, "", 0))
    builder = _Builder(filename, os.environ if environ is None else environ)
    builder.scan(root, "", set())
    value = builder.build(root, cls, "")
    if builder.issues:
        raise ConfigError(builder.sorted_issues())
    return value


def default_config_text() -> str:
    """The embedded default config (pharosd/config/default.yaml)."""
    return resources.files("pharosd.config").joinpath("default.yaml").read_text(encoding="utf-8")


def load_config(path: str | None, environ: Mapping[str, str] | None = None) -> LoadedConfig:
    """Read and parse ``path``, or the embedded default when ``path`` is None."""
    if path is None:
        source, text = EMBEDDED_SOURCE, default_config_text()
    else:
        source = path
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            message = f"cannot read the file: {e.strerror or e}"
            raise ConfigError([ConfigIssue(path, 0, 0, "", message)]) from e
        except UnicodeDecodeError as e:
            message = f"expected UTF-8 text, got byte 0x{e.object[e.start]:02x} at offset {e.start}"
            raise ConfigError([ConfigIssue(path, 0, 0, "", message)]) from e
    config = parse_config(text, source, environ)
    return LoadedConfig(config, source, time.time(), hashlib.sha256(text.encode()).hexdigest())


def resolve_config_path(cli_path: str | None, environ: Mapping[str, str] | None = None,
                        default_path: str = DEFAULT_CONFIG_PATH) -> str | None:
    """``-c/--config``, else ``$PHAROS_CONFIG``, else ``default_path`` if it exists,
    else None (the embedded default)."""
    if cli_path:
        return cli_path
    env = os.environ if environ is None else environ
    if env.get("PHAROS_CONFIG"):
        return env["PHAROS_CONFIG"]
    if os.path.exists(default_path):
        return default_path
    return None


def substitute(text: str, environ: Mapping[str, str]) -> tuple[str, list[str]]:
    """Expand ``${NAME}``, ``${NAME:-default}`` and ``$$``; return the text and the errors."""
    errors: list[str] = []

    def expand(m: re.Match[str]) -> str:
        if m[1]:
            return "$"
        if m[3]:
            errors.append("unterminated '${' (expected ${NAME} or ${NAME:-default})")
            return ""
        body = _REF_BODY.fullmatch(m[2])
        if body is None:
            errors.append(f"invalid reference '${{{m[2]}}}' "
                          "(expected ${NAME} or ${NAME:-default})")
            return ""
        name, default = body[1], body[2]
        value = environ.get(name)
        if value is None or (value == "" and default is not None):
            if default is None:
                errors.append(f"environment variable {name} is not set")
                return ""
            return default
        return value

    return _REF.sub(expand, text), errors


def check_schema(cls: type) -> None:
    """Raise ``TypeError`` if a dataclass tree uses an annotation the loader cannot build."""
    _check_schema(cls, set())


# -- what an annotation accepts -------------------------------------------------


@dataclass(frozen=True)
class _Accepts:
    """The shapes an annotation (or a union of them) accepts, by YAML node kind."""

    none: bool = False
    scalars: tuple[Any, ...] = ()            # str, int, float, bool, Duration, Size, Literal[...]
    sequence: Any = None                     # X of tuple[X, ...]
    dict_values: Any = None                  # X of FrozenDict[X]
    record: type | None = None               # one dataclass, built from a mapping
    kinds: Mapping[str, type] | None = None  # dataclasses picked by their `kind`
    bare: type | None = None                 # `record` built from a bare scalar (__scalar_field__)

    def expected(self) -> str:
        wants = [_scalar_expected(t) for t in self.scalars]
        if self.bare is not None:
            bare_field = _fields(self.bare)[self.bare.__scalar_field__]  # type: ignore[attr-defined]
            wants.extend(_scalar_expected(t) for t in bare_field.accepts.scalars)
        if self.sequence is not None:
            wants.append("a list")
        if self.dict_values is not None or self.record is not None or self.kinds is not None:
            wants.append("a mapping")
        return _either(wants)


@dataclass(frozen=True)
class _Field:
    name: str
    annotation: Any
    accepts: _Accepts
    required: bool
    bounds: tuple[float | None, float | None]


_SCALAR_TYPES = (str, int, float, bool, Duration, Size)


def _is_union(annotation: Any) -> bool:
    return get_origin(annotation) in (Union, types.UnionType)


@cache
def _accepts(annotation: Any) -> _Accepts:
    members = get_args(annotation) if _is_union(annotation) else (annotation,)
    none, scalars, sequence, dict_values, records = False, [], None, None, []
    for m in members:
        origin = get_origin(m)
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
    if len(records) == 1 and _kind_values(records[0]) is None:
        record = records[0]
        if hasattr(record, "__scalar_field__") and not scalars:
            bare = record
    elif records:
        kinds = _kind_table(records, annotation)
    return _Accepts(none, tuple(scalars), sequence, dict_values, record, kinds, bare)


def _kind_values(cls: type) -> tuple[str, ...] | None:
    """The values of a ``kind: Literal[...]`` field, or None without one."""
    if not any(f.name == "kind" for f in dataclasses.fields(cls)):
        return None
    annotation = _hints(cls)["kind"]
    return tuple(get_args(annotation)) if get_origin(annotation) is Literal else None


@cache
def _hints(cls: type) -> dict[str, Any]:
    return get_type_hints(cls)


def _kind_table(classes: list[type], annotation: Any) -> dict[str, type]:
    table: dict[str, type] = {}
    for cls in classes:
        values = _kind_values(cls)
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
def _fields(cls: type) -> dict[str, _Field]:
    hints = _hints(cls)
    out: dict[str, _Field] = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        bounds = (f.metadata.get("min"), f.metadata.get("max"))
        out[f.name] = _Field(f.name, hints[f.name], _accepts(hints[f.name]), required, bounds)
    return out


def _check_schema(cls: type, seen: set[type]) -> None:
    if cls in seen:
        return
    seen.add(cls)
    try:
        fields = _fields(cls)
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
                    pending.append(_accepts(inner))
            for record in [acc.record, *(acc.kinds or {}).values()]:
                if record is not None:
                    _check_schema(record, seen)


# -- scalars --------------------------------------------------------------------


class _Mismatch(Exception):
    """A text does not fit a scalar type; ``expected`` and an optional ``hint``."""

    def __init__(self, expected: str, hint: str = "") -> None:
        super().__init__(expected)
        self.expected = expected
        self.hint = hint


def _scalar_expected(t: Any) -> str:
    if get_origin(t) is Literal:
        return "one of " + ", ".join(str(v) for v in get_args(t))
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false",
            Duration: "a duration like 30s", Size: "a size like 512MiB"}[t]


def _convert(t: Any, text: str, bounds: tuple[float | None, float | None]) -> Any:
    """Text -> a value of scalar type ``t``, or raise ``_Mismatch``."""
    if t is str:
        return text
    if get_origin(t) is Literal:
        if text in get_args(t):
            return text
        close = difflib.get_close_matches(text, [str(v) for v in get_args(t)], n=1)
        raise _Mismatch(_scalar_expected(t), f", did you mean {close[0]!r}?" if close else "")
    if t is bool:
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        raise _Mismatch("true or false")
    value: float
    if t is int:
        if not _INT.fullmatch(text):
            raise _Mismatch("an integer")
        value = int(text.replace("_", ""))
    elif t is float:
        if not _FLOAT.fullmatch(text):
            raise _Mismatch("a number")
        value = float(text.replace("_", ""))
        if not math.isfinite(value):
            raise _Mismatch("a number")
    else:
        try:
            value = parse_duration(text) if t is Duration else parse_size(text)
        except UnitError as e:
            raise _Mismatch(e.expected) from None
    _check_bounds(t, value, bounds)
    return value


def _check_bounds(t: Any, value: float, bounds: tuple[float | None, float | None]) -> None:
    low, high = bounds
    if (low is None or value >= low) and (high is None or value <= high):
        return
    noun = {int: "an integer", float: "a number", Duration: "a duration", Size: "a size"}[t]
    show: Callable[[float], str] = {
        Duration: format_duration, Size: lambda v: format_size(int(v)),
    }.get(t, lambda v: f"{v:g}")
    if low is not None and high is not None:
        raise _Mismatch(f"{noun} between {show(low)} and {show(high)}")
    if low is not None:
        raise _Mismatch(f"{noun} of at least {show(low)}")
    assert high is not None
    raise _Mismatch(f"{noun} of at most {show(high)}")


# -- the builder -----------------------------------------------------------------


class _Builder:
    """One parse: the walk over the nodes and the issues it found."""

    def __init__(self, filename: str, environ: Mapping[str, str]) -> None:
        self.filename = filename
        self.environ = environ
        self.issues: list[ConfigIssue] = []
        self._texts: dict[int, str] = {}        # id(scalar node) -> text after substitution
        self._substituted: set[int] = set()
        self._active: set[int] = set()          # nodes being built (recursive aliases)
        self._bad_tags: set[int] = set()        # nodes whose tag `scan` refused

    def issue(self, node: Node, path: str, message: str) -> None:
        mark = node.start_mark
        self.issues.append(
            ConfigIssue(self.filename, mark.line + 1, mark.column + 1, path, message))

    def sorted_issues(self) -> list[ConfigIssue]:
        unique = list(dict.fromkeys(self.issues))
        return sorted(unique, key=lambda i: (i.line, i.column))

    # The document as a whole: duplicate keys, key shapes, tags, merges.
    def scan(self, node: Node, path: str, seen: set[int]) -> None:
        if id(node) in seen:
            return
        seen.add(id(node))
        if not node.tag.startswith(_YAML_TAG_PREFIX):
            self.issue(node, path, f"unsupported YAML tag {node.tag!r}")
            self._bad_tags.add(id(node))
        if isinstance(node, SequenceNode):
            for i, item in enumerate(node.value):
                self.scan(item, f"{path}[{i}]", seen)
        elif isinstance(node, MappingNode):
            first_line: dict[str, int] = {}
            for key, value in node.value:
                if not isinstance(key, ScalarNode):
                    self.issue(key, path, f"expected a string key, got {_shape(key)}")
                    continue
                if key.tag == _MERGE_TAG:
                    sources = value.value if isinstance(value, SequenceNode) else [value]
                    if not all(isinstance(s, MappingNode) for s in sources):
                        self.issue(value, path, "expected a mapping or a list of mappings to merge")
                    self.scan(value, path, seen)
                    continue
                if key.value in first_line:
                    self.issue(key, path, f"duplicate key {key.value!r} "
                                          f"(first at line {first_line[key.value]})")
                    continue
                first_line[key.value] = key.start_mark.line + 1
                self.scan(value, _join(path, key.value), seen)

    def build(self, node: Node, annotation: Any, path: str,
              bounds: tuple[float | None, float | None] = (None, None)) -> Any:
        """Build a value of ``annotation`` from ``node``, or record issues and return _INVALID."""
        if id(node) in self._bad_tags:
            return _INVALID
        if isinstance(node, ScalarNode):   # a scalar cannot contain itself
            return self._build(node, _accepts(annotation), path, bounds)
        if id(node) in self._active:
            self.issue(node, path, "expected a value, got an alias of its own parent")
            return _INVALID
        self._active.add(id(node))
        try:
            return self._build(node, _accepts(annotation), path, bounds)
        finally:
            self._active.discard(id(node))

    def _build(self, node: Node, acc: _Accepts, path: str,
               bounds: tuple[float | None, float | None]) -> Any:
        if _is_null(node):
            if acc.none:
                return None
        elif isinstance(node, ScalarNode):
            if acc.scalars:
                return self.scalar(node, acc, path, bounds)
            if acc.bare is not None:
                return self.record(node, acc.bare, path)
        elif isinstance(node, SequenceNode):
            if acc.sequence is not None:
                items = [self.build(item, acc.sequence, f"{path}[{i}]", bounds)
                         for i, item in enumerate(node.value)]
                return _INVALID if _any_invalid(items) else tuple(items)
        elif isinstance(node, MappingNode):
            if acc.dict_values is not None:
                return self.frozen_dict(node, acc.dict_values, path, bounds)
            if acc.record is not None:
                return self.record(node, acc.record, path)
            if acc.kinds is not None:
                cls = self.pick_kind(node, acc.kinds, path)
                return _INVALID if cls is None else self.record(node, cls, path)
        self.issue(node, path, f"expected {acc.expected()}, got {self.describe(node, path)}")
        return _INVALID

    def scalar(self, node: ScalarNode, acc: _Accepts, path: str,
               bounds: tuple[float | None, float | None]) -> Any:
        text = self.text(node, path)
        if text is _INVALID:
            return _INVALID
        if text == "" and acc.none and id(node) in self._substituted:
            return None
        misses: list[_Mismatch] = []
        for t in acc.scalars:
            try:
                return _convert(t, text, bounds)
            except _Mismatch as e:
                misses.append(e)
        got = self.show(node, text, path)
        if len(misses) == 1:
            self.issue(node, path, f"expected {misses[0].expected}, got {got}{misses[0].hint}")
        else:
            self.issue(node, path, f"expected {_either([m.expected for m in misses])}, got {got}")
        return _INVALID

    def frozen_dict(self, node: MappingNode, value_type: Any, path: str,
                    bounds: tuple[float | None, float | None]) -> Any:
        out = {key: self.build(value, value_type, _join(path, key), bounds)
               for key, (_, value) in _pairs(node).items()}
        return _INVALID if _any_invalid(out.values()) else FrozenDict(out)

    def pick_kind(self, node: MappingNode, kinds: Mapping[str, type], path: str) -> type | None:
        known = f"(known kinds: {', '.join(kinds)})"
        pair = _pairs(node).get("kind")
        if pair is None:
            self.issue(node, path, f"missing required key 'kind' {known}")
            return None
        kind_node, kind_path = pair[1], _join(path, "kind")
        if not isinstance(kind_node, ScalarNode) or _is_null(kind_node):
            got = self.describe(kind_node, kind_path)
            self.issue(kind_node, kind_path, f"expected one of {', '.join(kinds)}, got {got}")
            return None
        text = self.text(kind_node, kind_path)
        if text is _INVALID:
            return None
        if text not in kinds:
            close = difflib.get_close_matches(text, list(kinds), n=1)
            hint = f", did you mean {close[0]!r}?" if close else ""
            self.issue(kind_node, kind_path,
                       f"unknown kind {self.show(kind_node, text, kind_path)}{hint} {known}")
            return None
        return kinds[text]

    def record(self, node: Node, cls: type, path: str) -> Any:
        """A dataclass from a mapping, or from a bare scalar via ``__scalar_field__``."""
        fields = _fields(cls)
        values: dict[str, Any] = {}
        given: set[str] = set()
        if isinstance(node, ScalarNode):
            bare = fields[cls.__scalar_field__]  # type: ignore[attr-defined]
            given.add(bare.name)
            values[bare.name] = self.build(node, bare.annotation, path, bare.bounds)
        else:
            assert isinstance(node, MappingNode)
            for key, (key_node, value_node) in _pairs(node).items():
                f = fields.get(key)
                if f is None:
                    self.issue(key_node, path, _unknown_key(key, list(fields)))
                    values[key] = _INVALID
                    continue
                given.add(key)
                if _is_null(value_node) and not f.required and _is_container(f.accepts):
                    continue   # `spill:` with its children commented out: the default
                values[key] = self.build(value_node, f.annotation, _join(path, key), f.bounds)
        for f in fields.values():
            if f.name in given or not f.required:
                continue
            if f.accepts.none:
                values[f.name] = None
            else:
                self.issue(node, path, f"missing required key {f.name!r}")
                values[f.name] = _INVALID
        if _any_invalid(values.values()):
            return _INVALID
        try:
            obj = cls(**values)
        except (TypeError, ValueError) as e:
            self.issue(node, path, str(e))
            return _INVALID
        check = getattr(obj, "check", None)
        if callable(check):
            for field_path, message in check():
                self.issue(_locate(node, field_path), _join(path, field_path), message)
        return obj

    def text(self, node: ScalarNode, path: str) -> Any:
        """The scalar's text after ``${...}`` substitution, or _INVALID (issues recorded)."""
        key = id(node)
        if key not in self._texts:
            text = node.value
            if "$" in text:
                text, errors = substitute(text, self.environ)
                for message in errors:
                    self.issue(node, path, message)
                if errors:
                    text = _INVALID
                self._substituted.add(key)
            self._texts[key] = text
        return self._texts[key]

    def show(self, node: ScalarNode, text: str, path: str) -> str:
        """A value for an error message: bare if a plain number or bool, quoted if text."""
        if _looks_secret(path):
            return "<redacted>"
        if node.style is None and (_FLOAT.fullmatch(text) or text in _TRUE or text in _FALSE):
            return text
        return repr(text)

    def describe(self, node: Node, path: str) -> str:
        if _is_null(node):
            return "null"
        if isinstance(node, ScalarNode):
            return self.show(node, node.value, path)
        return _shape(node)


# -- small helpers -----------------------------------------------------------------


def _compose(text: str, filename: str) -> Node | None:
    """YAML text -> the root node; a syntax error is a ConfigError at its position."""
    try:
        node: Node | None = yaml.compose(text, Loader=yaml.SafeLoader)
        return node
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        message = f"invalid YAML: {e.problem or e.context}"
        if e.problem and e.context and e.problem.startswith("but "):
            message = f"invalid YAML: {e.context}, {e.problem}"
        elif e.problem and e.context:
            where = f" at line {e.context_mark.line + 1}" if e.context_mark else ""
            message += f" ({e.context}{where})"
        line, column = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        raise ConfigError([ConfigIssue(filename, line, column, "", message)]) from None
    except yaml.reader.ReaderError as e:
        line = text.count("\n", 0, e.position) + 1
        column = e.position - (text.rfind("\n", 0, e.position) + 1) + 1
        message = f"invalid YAML: character U+{e.character:04X} is not allowed"
        raise ConfigError([ConfigIssue(filename, line, column, "", message)]) from None
    except yaml.YAMLError as e:
        raise ConfigError([ConfigIssue(filename, 0, 0, "", f"invalid YAML: {e}")]) from None


def _is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == _NULL_TAG


def _any_invalid(values: Iterable[Any]) -> bool:
    return any(v is _INVALID for v in values)


def _is_container(acc: _Accepts) -> bool:
    return not acc.scalars and acc.bare is None


def _shape(node: Node) -> str:
    return "a list" if isinstance(node, SequenceNode) else "a mapping"


def _pairs(node: MappingNode,
           _merging: frozenset[int] = frozenset()) -> dict[str, tuple[Node, Node]]:
    """A mapping's ``key -> (key node, value node)``: the first of duplicates (reported by
    ``scan``), with ``<<`` merges under the keys written here; non-string keys skipped."""
    own: dict[str, tuple[Node, Node]] = {}
    merged: dict[str, tuple[Node, Node]] = {}
    for key, value in node.value:
        if not isinstance(key, ScalarNode):
            continue
        if key.tag == _MERGE_TAG:
            for source in value.value if isinstance(value, SequenceNode) else [value]:
                if isinstance(source, MappingNode) and id(source) not in _merging:
                    for k, pair in _pairs(source, _merging | {id(node)}).items():
                        merged.setdefault(k, pair)
        else:
            own.setdefault(key.value, (key, value))
    return {**merged, **own}


def _locate(node: Node, field_path: str) -> Node:
    """The node at ``field_path`` (``x[1].name``) under ``node``, or the deepest found."""
    for index, key in _PATH_PART.findall(field_path):
        if key and isinstance(node, MappingNode) and key in _pairs(node):
            node = _pairs(node)[key][1]
        elif index and isinstance(node, SequenceNode) and int(index) < len(node.value):
            node = node.value[int(index)]
        else:
            break
    return node


def _join(path: str, sub: str) -> str:
    if not path or not sub:
        return path or sub
    return path + sub if sub.startswith("[") else f"{path}.{sub}"


def _either(options: list[str]) -> str:
    options = list(dict.fromkeys(options))
    return options[0] if len(options) == 1 else ", ".join(options[:-1]) + " or " + options[-1]


def _unknown_key(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    if close:
        return f"unknown key {key!r}, did you mean {close[0]!r}?"
    return f"unknown key {key!r} (known keys: {', '.join(known)})"


def _looks_secret(path: str) -> bool:
    last = path.rsplit(".", 1)[-1].split("[", 1)[0].lower()
    if last.endswith("_file"):      # a path to a secret (token_file, key_file) is no secret
        return False
    return any(word in last for word in _SECRET_WORDS)


def issue_at(source: str, path: str, message: str) -> ConfigIssue:
    """A ``ConfigIssue`` at the value of key ``path`` (``http.listen``) in the config
    ``source`` (a path or ``EMBEDDED_SOURCE``), for errors found after parsing
    (a port in use); the position is 0:0 when the file or key cannot be found."""
    line = column = 0
    try:
        if source == EMBEDDED_SOURCE:
            text = default_config_text()
        else:
            with open(source, encoding="utf-8") as f:
                text = f.read()
        root = _compose(text, source)
    except (OSError, UnicodeDecodeError, ConfigError):
        root = None
    if root is not None:
        mark = _locate(root, path).start_mark
        line, column = mark.line + 1, mark.column + 1
    return ConfigIssue(source, line, column, path, message)
