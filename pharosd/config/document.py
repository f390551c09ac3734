"""pharos.yaml as YAML nodes that keep their line and column.

The document is composed with libyaml (PyYAML's ``CSafeLoader``) when PyYAML
has it: about twenty times faster than the pure-Python ``SafeLoader`` on a large
file (10,000 thresholds: 0.3 s instead of 6 s). The C composer recurses without
a limit (deep nesting crashes the process with Debian's libyaml), so the events
are first read once to check the depth, and a document nested deeper than
``FAST_DEPTH``, one that libyaml refuses, or a PyYAML without libyaml, is
composed again by the pure-Python ``SafeLoader``, whose error texts are the ones
users see: a syntax error becomes a ``ConfigError`` at its position, and so does
nesting deeper than ``MAX_DEPTH`` (the composer recurses; Python's stack would give
out first). Both give
the same nodes (libyaml marks a plain scalar's style ``''``, PyYAML ``None``).
The helpers read mappings the way the loader needs: ``pairs`` (first of
duplicate keys, ``<<`` merges under the keys written here), ``locate`` (the
node at a key path, for positioned errors) and ``join_path`` (``a.b[2].c``).
"""

from __future__ import annotations

import re

import yaml
from yaml.events import CollectionEndEvent, CollectionStartEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from pharosd.errors import ConfigError, ConfigIssue

NULL_TAG = "tag:yaml.org,2002:null"
MERGE_TAG = "tag:yaml.org,2002:merge"
YAML_TAG_PREFIX = "tag:yaml.org,2002:"
_PATH_PART = re.compile(r"\[(\d+)\]|([^.\[\]]+)")
MAX_DEPTH = 64          # nested lists and mappings; the schema needs fewer than 10
FAST_DEPTH = MAX_DEPTH  # nesting the libyaml path accepts


class _DepthLimitedLoader(yaml.SafeLoader):
    """``SafeLoader`` that refuses, at its position, a node nested too deep."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: int) -> Node:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(
                    None, None, f"nested deeper than {MAX_DEPTH} levels",
                    self.peek_event().start_mark)
            node: Node | None = super().compose_node(parent, index)  # type: ignore[no-untyped-call,unused-ignore]
            assert node is not None
            return node
        finally:
            self._depth -= 1


def compose(text: str, filename: str) -> Node | None:
    """YAML text -> the root node; a syntax error is a ConfigError at its position."""
    fast = _compose_fast(text)
    if fast is not None:
        return fast[0]
    loader: _DepthLimitedLoader | None = None
    try:
        loader = _DepthLimitedLoader(text)
        node: Node | None = loader.get_single_node()
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
    finally:
        if loader is not None:
            loader.dispose()


def _compose_fast(text: str) -> tuple[Node | None] | None:
    """``(root,)`` composed by libyaml, or None to take the pure-Python path."""
    loader = getattr(yaml, "CSafeLoader", None)
    if loader is None:
        return None
    try:
        depth = 0
        for event in yaml.parse(text, Loader=loader):
            if isinstance(event, CollectionStartEvent):
                depth += 1
                if depth > FAST_DEPTH:
                    return None
            elif isinstance(event, CollectionEndEvent):
                depth -= 1
        return (yaml.compose(text, Loader=loader),)
    except (yaml.YAMLError, ValueError, TypeError):
        return None


def is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == NULL_TAG


def shape(node: Node) -> str:
    return "a list" if isinstance(node, SequenceNode) else "a mapping"


def pairs(node: MappingNode, _visited: set[int] | None = None) -> dict[str, tuple[Node, Node]]:
    """A mapping's ``key -> (key node, value node)``: the first of duplicates (reported by
    ``scan``), with ``<<`` merges under the keys written here; non-string keys skipped.

    Each mapping is expanded once per call (``_visited``): merging the same anchor again
    adds no key, so a chain of ``<<: [*a, *a, ...]`` costs its size, not its expansion."""
    visited = {id(node)} if _visited is None else _visited
    own: dict[str, tuple[Node, Node]] = {}
    merged: dict[str, tuple[Node, Node]] = {}
    for key, value in node.value:
        if not isinstance(key, ScalarNode):
            continue
        if key.tag == MERGE_TAG:
            for source in value.value if isinstance(value, SequenceNode) else [value]:
                if isinstance(source, MappingNode) and id(source) not in visited:
                    visited.add(id(source))
                    for k, pair in pairs(source, visited).items():
                        merged.setdefault(k, pair)
        else:
            own.setdefault(key.value, (key, value))
    return {**merged, **own}


def locate(node: Node, field_path: str) -> Node:
    """The node at ``field_path`` (``x[1].name``) under ``node``, or the deepest found."""
    for index, key in _PATH_PART.findall(field_path):
        if key and isinstance(node, MappingNode) and key in pairs(node):
            node = pairs(node)[key][1]
        elif index and isinstance(node, SequenceNode) and int(index) < len(node.value):
            node = node.value[int(index)]
        else:
            break
    return node


def join_path(path: str, sub: str) -> str:
    if not path or not sub:
        return path or sub
    return path + sub if sub.startswith("[") else f"{path}.{sub}"
