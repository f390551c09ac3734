"""One parse: the walk over the YAML nodes against the type hints, every issue recorded.

``Builder.scan`` checks the document as a whole (duplicate keys, key shapes,
tags, merges); ``Builder.build(node, annotation, path)`` builds a value of
``annotation`` from ``node``. A bad value records a ``ConfigIssue`` and
yields ``INVALID``, and the walk goes on, so one run reports every problem.

* Scalars convert from their text by the target type, whatever their YAML
  style: ``port: "80"`` is the int 80; ``name: 80`` is the string "80".
  ``bool`` takes only ``true``/``false``; ``int`` and ``float`` refuse bools.
* ``${...}`` is substituted first (``pharosd.config.substitution``); a
  substitution that leaves an empty text reads as null where null is allowed.
* An empty value (``spill:`` with every child commented out) of a list,
  mapping or section field that has a default means "use the default".
* A dataclass's ``check()`` issues are placed at the field they name.
* ``Data`` takes any node as plain data: scalars typed by YAML's own rules
  (``"80"`` stays a string there), a substituted scalar is a string.
* Error messages never show a value that came from the environment (it may be a
  secret): they show the ``${NAME}`` text as written. Long values are cut.
* The work is bounded: aliases can make a small document expand enormously
  (``[*a, *a, ...]`` nested), so after ``MAX_BUILDS`` nodes built the walk stops with
  one positioned issue; merges (``<<``) are expanded once per mapping (``pairs``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from pharosd.config.document import (
    MERGE_TAG,
    YAML_TAG_PREFIX,
    is_null,
    join_path,
    locate,
    pairs,
    shape,
)
from pharosd.config.hints import (
    FALSE_TEXTS,
    FLOAT_TEXT,
    TRUE_TEXTS,
    Accepts,
    Mismatch,
    accepts,
    convert,
    either,
    fields_of,
)
from pharosd.config.substitution import looks_secret, substitute
from pharosd.errors import ConfigIssue
from pharosd.types import Data, FrozenDict

INVALID: Any = object()   # a value that failed to build; its issue is already recorded
MAX_BUILDS = 200_000      # nodes built in one parse (aliases count each time they are used)
MAX_SHOWN = 80            # characters of a value quoted in an error message
_TYPED_TAGS = frozenset(f"tag:yaml.org,2002:{t}" for t in ("null", "bool", "int", "float"))


class Builder:
    """One parse: the walk over the nodes and the issues it found."""

    def __init__(self, filename: str, environ: Mapping[str, str]) -> None:
        self.filename = filename
        self.environ = environ
        self.issues: list[ConfigIssue] = []
        self._texts: dict[int, str] = {}        # id(scalar node) -> text after substitution
        self._substituted: set[int] = set()
        self._active: set[int] = set()          # nodes being built (recursive aliases)
        self._bad_tags: set[int] = set()        # nodes whose tag `scan` refused
        self._builds = 0                        # nodes built so far (see MAX_BUILDS)

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
        if not node.tag.startswith(YAML_TAG_PREFIX):
            self.issue(node, path, f"unsupported YAML tag {node.tag!r}")
            self._bad_tags.add(id(node))
        if isinstance(node, SequenceNode):
            for i, item in enumerate(node.value):
                self.scan(item, f"{path}[{i}]", seen)
        elif isinstance(node, MappingNode):
            first_line: dict[str, int] = {}
            for key, value in node.value:
                if not isinstance(key, ScalarNode):
                    self.issue(key, path, f"expected a string key, got {shape(key)}")
                    continue
                if key.tag == MERGE_TAG:
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
                self.scan(value, join_path(path, key.value), seen)

    def build(self, node: Node, annotation: Any, path: str,
              bounds: tuple[float | None, float | None] = (None, None)) -> Any:
        """Build a value of ``annotation`` from ``node``, or record issues and return INVALID."""
        if id(node) in self._bad_tags:
            return INVALID
        self._builds += 1
        if self._builds > MAX_BUILDS:
            if self._builds == MAX_BUILDS + 1:
                self.issue(node, path, f"expected a document of at most {MAX_BUILDS} values, "
                                       "got more through aliases (*name) and merges (<<)")
            return INVALID
        if isinstance(node, ScalarNode):   # a scalar cannot contain itself
            return self._build(node, accepts(annotation), path, bounds)
        if id(node) in self._active:
            self.issue(node, path, "expected a value, got an alias of its own parent")
            return INVALID
        self._active.add(id(node))
        try:
            return self._build(node, accepts(annotation), path, bounds)
        finally:
            self._active.discard(id(node))

    def _build(self, node: Node, acc: Accepts, path: str,
               bounds: tuple[float | None, float | None]) -> Any:
        if acc.data:
            return self.data(node, path)
        if is_null(node):
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
                return INVALID if any_invalid(items) else tuple(items)
        elif isinstance(node, MappingNode):
            if acc.dict_values is not None:
                return self.frozen_dict(node, acc.dict_values, path, bounds)
            if acc.record is not None:
                return self.record(node, acc.record, path)
            if acc.kinds is not None:
                cls = self.pick_kind(node, acc.kinds, path)
                return INVALID if cls is None else self.record(node, cls, path)
        self.issue(node, path, f"expected {acc.expected()}, got {self.describe(node, path)}")
        return INVALID

    def scalar(self, node: ScalarNode, acc: Accepts, path: str,
               bounds: tuple[float | None, float | None]) -> Any:
        text = self.text(node, path)
        if text is INVALID:
            return INVALID
        if text == "" and acc.none and id(node) in self._substituted:
            return None
        misses: list[Mismatch] = []
        for t in acc.scalars:
            try:
                return convert(t, text, bounds)
            except Mismatch as e:
                misses.append(e)
        got = self.show(node, text, path)
        if len(misses) == 1:
            self.issue(node, path, f"expected {misses[0].expected}, got {got}{misses[0].hint}")
        else:
            self.issue(node, path, f"expected {either([m.expected for m in misses])}, got {got}")
        return INVALID

    def data(self, node: Node, path: str) -> Any:
        """Any node as plain data (``Data``): tuples, ``FrozenDict`` and YAML's scalars."""
        if isinstance(node, SequenceNode):
            items = [self.build(item, Data, f"{path}[{i}]") for i, item in enumerate(node.value)]
            return INVALID if any_invalid(items) else tuple(items)
        if isinstance(node, MappingNode):
            out = {key: self.build(value, Data, join_path(path, key))
                   for key, (_, value) in pairs(node).items()}
            return INVALID if any_invalid(out.values()) else FrozenDict(out)
        assert isinstance(node, ScalarNode)
        text = self.text(node, path)
        if text is INVALID or id(node) in self._substituted or node.tag not in _TYPED_TAGS:
            return text
        try:
            return SafeConstructor().construct_object(node)
        except (ConstructorError, ValueError) as e:
            self.issue(node, path, f"expected a YAML value, got {self.show(node, text, path)}: {e}")
            return INVALID

    def frozen_dict(self, node: MappingNode, value_type: Any, path: str,
                    bounds: tuple[float | None, float | None]) -> Any:
        out = {key: self.build(value, value_type, join_path(path, key), bounds)
               for key, (_, value) in pairs(node).items()}
        return INVALID if any_invalid(out.values()) else FrozenDict(out)

    def pick_kind(self, node: MappingNode, kinds: Mapping[str, type], path: str) -> type | None:
        known = f"(known kinds: {', '.join(kinds)})"
        pair = pairs(node).get("kind")
        if pair is None:
            self.issue(node, path, f"missing required key 'kind' {known}")
            return None
        kind_node, kind_path = pair[1], join_path(path, "kind")
        if not isinstance(kind_node, ScalarNode) or is_null(kind_node):
            got = self.describe(kind_node, kind_path)
            self.issue(kind_node, kind_path, f"expected one of {', '.join(kinds)}, got {got}")
            return None
        text = self.text(kind_node, kind_path)
        if text is INVALID:
            return None
        if text not in kinds:
            import difflib  # for a suggestion after an error only

            close = difflib.get_close_matches(text, list(kinds), n=1)
            hint = f", did you mean {close[0]!r}?" if close else ""
            self.issue(kind_node, kind_path,
                       f"unknown kind {self.show(kind_node, text, kind_path)}{hint} {known}")
            return None
        return kinds[text]

    def record(self, node: Node, cls: type, path: str) -> Any:
        """A dataclass from a mapping, or from a bare scalar via ``__scalar_field__``."""
        fields = fields_of(cls)
        values: dict[str, Any] = {}
        given: set[str] = set()
        if isinstance(node, ScalarNode):
            bare = fields[cls.__scalar_field__]  # type: ignore[attr-defined]
            given.add(bare.name)
            values[bare.attr] = self.build(node, bare.annotation, path, bare.bounds)
        else:
            assert isinstance(node, MappingNode)
            for key, (key_node, value_node) in pairs(node).items():
                f = fields.get(key)
                if f is None:
                    self.issue(key_node, path, unknown_key(key, list(fields)))
                    values[key] = INVALID
                    continue
                given.add(key)
                if is_null(value_node) and not f.required and is_container(f.accepts):
                    continue   # `spill:` with its children commented out: the default
                values[f.attr] = self.build(value_node, f.annotation, join_path(path, key),
                                            f.bounds)
        for f in fields.values():
            if f.name in given or not f.required:
                continue
            if f.accepts.none:
                values[f.attr] = None
            else:
                self.issue(node, path, f"missing required key {f.name!r}")
                values[f.attr] = INVALID
        if any_invalid(values.values()):
            return INVALID
        try:
            obj = cls(**values)
        except (TypeError, ValueError) as e:
            self.issue(node, path, str(e))
            return INVALID
        check = getattr(obj, "check", None)
        if callable(check):
            for field_path, message in check():
                if isinstance(node, ScalarNode) and field_path == getattr(
                        cls, "__scalar_field__", None):
                    field_path = ""     # `- cpuu`: the entry itself is the bad value
                at = locate(node, field_path)
                self.issue(at, join_path(path, field_path), self._unsubstitute(at, message))
        return obj

    def text(self, node: ScalarNode, path: str) -> Any:
        """The scalar's text after ``${...}`` substitution, or INVALID (issues recorded)."""
        key = id(node)
        if key not in self._texts:
            text = node.value
            if "$" in text:
                text, errors = substitute(text, self.environ)
                for message in errors:
                    self.issue(node, path, message)
                if errors:
                    text = INVALID
                self._substituted.add(key)
            self._texts[key] = text
        return self._texts[key]

    def _unsubstitute(self, node: Node, message: str) -> str:
        """``message`` with the environment's text of ``node`` (and of the scalars in it)
        put back as written (``${NAME}``): a check may quote a value."""
        stack, seen = [node], 0
        while stack and seen < 1000:
            n = stack.pop()
            seen += 1
            if isinstance(n, ScalarNode):
                text = self._texts.get(id(n))
                if id(n) in self._substituted and isinstance(text, str) and len(text) >= 3:
                    message = message.replace(text, n.value)
            elif isinstance(n, SequenceNode):
                stack.extend(n.value)
            elif isinstance(n, MappingNode):
                stack.extend(v for _, v in n.value)
        return message

    def show(self, node: ScalarNode, text: str, path: str) -> str:
        """A value for an error message: bare if a plain number or bool, quoted if text."""
        if looks_secret(path):
            return "<redacted>"
        if id(node) in self._substituted:       # maybe a secret: show what was written
            return f"{_cut(node.value)} (its value from the environment is not shown)"
        plain = FLOAT_TEXT.fullmatch(text) or text in TRUE_TEXTS or text in FALSE_TEXTS
        if not node.style and plain and len(text) <= MAX_SHOWN:   # plain: None or ''
            return text
        return _cut(text)

    def describe(self, node: Node, path: str) -> str:
        if is_null(node):
            return "null"
        if isinstance(node, ScalarNode):
            return self.show(node, node.value, path)
        return shape(node)


def _cut(text: str) -> str:
    if len(text) <= MAX_SHOWN:
        return repr(text)
    return f"{text[:MAX_SHOWN]!r}... ({len(text)} characters)"


def any_invalid(values: Iterable[Any]) -> bool:
    return any(v is INVALID for v in values)


def is_container(acc: Accepts) -> bool:
    return not acc.scalars and acc.bare is None


def unknown_key(key: str, known: list[str]) -> str:
    import difflib  # for a suggestion after an error only

    close = difflib.get_close_matches(key, known, n=1)
    if close:
        return f"unknown key {key!r}, did you mean {close[0]!r}?"
    return f"unknown key {key!r} (known keys: {', '.join(known)})"
