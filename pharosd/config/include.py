"""Drop-ins: the main file's ``include: [GLOB, ..]`` and the one ``Config`` made of all files.

``parse_tree(text, filename, environ)`` reads the main file, then every file its
``include`` globs match (paths relative to the main file's directory; each glob's
matches in sorted order, the globs in the order written; the main file itself and
anything that is not a regular file are skipped; a glob without wildcards must name
an existing file). A drop-in holds only the list keys of ``Config`` (``statistics``,
``probes``, ``thresholds``, ``sinks``, ``maintenance``): their entries are added after
the main file's, in file order. When the main file does not set a list key, the
drop-ins add to its default (``statistics`` and ``sinks`` have one). Anything else
in a drop-in is a positioned error: a top-level scalar or mapping belongs to the
main file, and an included file does not include.

The files are merged as YAML nodes, so each value keeps its own line and column,
and the generic ``Builder`` builds the one ``Config``; an issue inside a drop-in's
entry names the drop-in and the entry's index in that file. An entry whose name
another entry already took (in any file, or a default) is an error naming both
places, and is left out of the build so it is reported once.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from pharosd.config.builder import INVALID, Builder, unknown_key
from pharosd.config.document import compose, is_null, pairs
from pharosd.config.hints import fields_of
from pharosd.config.schema import Config
from pharosd.digest import sha256
from pharosd.errors import ConfigError, ConfigIssue

MAX_DROP_INS = 1000
MAIN_FILE_LISTS = frozenset({"include", "plugin_dirs"})
_ITEM = re.compile(r"([a-z_]+)\[(\d+)\]")
_STR_TAG = "tag:yaml.org,2002:str"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MAP_TAG = "tag:yaml.org,2002:map"

Reader = Callable[[str], str]


@dataclass(frozen=True)
class Tree:
    """The config made of the main file and its drop-ins."""

    config: Config
    files: tuple[str, ...]            # the main file, then each drop-in in the order read
    digest: str                       # sha256 over every file's name and text
    added: tuple[dict[str, int], ...] = ()   # per file: list key -> entries it added


def list_keys() -> tuple[str, ...]:
    """The top-level keys a drop-in may hold: every list of ``Config`` but the main file's own.

    ``include`` (included files do not include) and ``plugin_dirs`` (the import path is
    the main file's to set) are lists that stay in the main file.
    """
    return tuple(name for name, f in fields_of(Config).items()
                 if f.accepts.sequence is not None and name not in MAIN_FILE_LISTS)


def read_text(path: str) -> str:
    """A config file's text; a ``ConfigError`` naming the file when it cannot be read."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as e:
        message = f"cannot read the file: {e.strerror or e}"
        raise ConfigError([ConfigIssue(path, 0, 0, "", message)]) from e
    except UnicodeDecodeError as e:
        message = f"expected UTF-8 text, got byte 0x{e.object[e.start]:02x} at offset {e.start}"
        raise ConfigError([ConfigIssue(path, 0, 0, "", message)]) from e


class _TreeBuilder(Builder):
    """The builder of the merged document: an issue names the file its node came from."""

    def __init__(self, filename: str, environ: Mapping[str, str]) -> None:
        super().__init__(filename, environ)
        self.origin: dict[tuple[str, int], tuple[str, int]] = {}  # merged item -> file, index
        self.order: dict[str, int] = {filename: 0}
        self.scanning: str | None = None      # while one file is scanned on its own

    def issue(self, node: Node, path: str, message: str) -> None:
        file = self.scanning or self.filename
        m = _ITEM.match(path)
        if self.scanning is None and m is not None:
            found = self.origin.get((m[1], int(m[2])))
            if found is not None:
                file, index = found
                path = f"{m[1]}[{index}]{path[m.end():]}"
        self.issue_in(file, node, path, message)

    def issue_in(self, file: str, node: Node, path: str, message: str) -> None:
        mark = node.start_mark
        self.issues.append(ConfigIssue(file, mark.line + 1, mark.column + 1, path, message))

    def sorted_issues(self) -> list[ConfigIssue]:
        unique = list(dict.fromkeys(self.issues))
        return sorted(unique, key=lambda i: (self.order.get(i.file, 0), i.line, i.column))


def parse_tree(text: str, filename: str, environ: Mapping[str, str],
               read: Reader = read_text) -> Tree:
    """The main file's text -> the ``Tree`` of it and its drop-ins; ``ConfigError`` lists
    every problem of every file."""
    root = compose(text, filename)
    if root is None or is_null(root):
        root = MappingNode(_MAP_TAG, [], start_mark=yaml.Mark(filename, 0, 0, 0, "", 0))
    b = _TreeBuilder(filename, environ)
    b.scanning = filename
    b.scan(root, "", set())
    texts = [(filename, text)]
    drop_ins: list[tuple[str, Node]] = []
    if isinstance(root, MappingNode):
        for path in _discover(b, root, filename):
            b.order.setdefault(path, len(b.order))
            try:
                dtext = read(path)
                node = compose(dtext, path)
            except ConfigError as e:
                b.issues.extend(e.issues)
                continue
            texts.append((path, dtext))
            if node is None or is_null(node):
                continue
            b.scanning = path
            b.scan(node, "", set())
            drop_ins.append((path, node))
    b.scanning = None
    merged, defaulted, added = _merge(b, root, filename, drop_ins)
    config = b.build(merged, Config, "")
    if b.issues or config is INVALID:
        raise ConfigError(b.sorted_issues())
    defaults = Config()
    for key in defaulted:
        attr = fields_of(Config)[key].attr
        config = dataclasses.replace(
            config, **{attr: (*getattr(defaults, attr), *getattr(config, attr))})
    return Tree(config, tuple(p for p, _ in texts), _digest(texts), added)


def _discover(b: _TreeBuilder, root: MappingNode, filename: str) -> list[str]:
    """The drop-ins the main file's ``include`` names, in the order they are read."""
    pair = pairs(root).get("include")
    if pair is None or not isinstance(pair[1], SequenceNode):
        return []                  # absent, or not a list: the build reports it
    base = os.path.dirname(filename)
    me = os.path.realpath(filename)
    found: list[str] = []
    for i, item in enumerate(pair[1].value):
        if not isinstance(item, ScalarNode) or is_null(item):
            continue
        pattern = b.text(item, f"include[{i}]")
        if pattern is INVALID or not pattern:
            continue
        full = os.path.join(base, pattern)
        if any(c in pattern for c in "*?["):
            matches = sorted(glob.glob(full))
        elif os.path.isdir(full):
            b.issue_in(filename, item, f"include[{i}]",
                       f"expected a file or a glob, got the directory {pattern!r} "
                       f"(write {os.path.join(pattern, '*.yaml')!r})")
            continue
        elif not os.path.exists(full):
            b.issue_in(filename, item, f"include[{i}]",
                       f"expected an existing file, got {pattern!r} (no such file)")
            continue
        else:
            matches = [full]
        for path in matches:
            if (os.path.isfile(path) and os.path.realpath(path) != me
                    and path not in found):
                found.append(path)
    if len(found) > MAX_DROP_INS:
        b.issue_in(filename, pair[1], "include",
                   f"expected at most {MAX_DROP_INS} drop-ins, got {len(found)}")
        return []
    return found


def _merge(b: _TreeBuilder, root: Node, filename: str, drop_ins: list[tuple[str, Node]],
           ) -> tuple[Node, list[str], tuple[dict[str, int], ...]]:
    """The merged root, the list keys whose default the drop-ins add to, and what each
    file added."""
    keys = list_keys()
    if not isinstance(root, MappingNode):
        return root, [], ()
    main = pairs(root)
    items: dict[str, list[Node]] = {}
    taken: dict[str, dict[str, str]] = {k: {} for k in keys}   # key -> name -> where
    main_added: dict[str, int] = {}
    defaults = Config()
    for key in keys:
        value = main.get(key, (None, None))[1]
        if isinstance(value, SequenceNode):
            items[key] = list(value.value)
            main_added[key] = len(value.value)
            for item in value.value:
                name = _name_node(item)
                if name is not None:
                    taken[key].setdefault(name.value, "at " + _where(filename, name))
        elif value is None or is_null(value):
            for entry in getattr(defaults, fields_of(Config)[key].attr):
                taken[key].setdefault(str(entry.name), f"in the default {key} (the main file "
                                                       f"sets no {key!r})")
    added: list[dict[str, int]] = [main_added]
    for path, node in drop_ins:
        added.append(_add_drop_in(b, path, node, keys, items, taken))
    out: list[tuple[Node, Node]] = []
    defaulted: list[str] = []
    done: set[str] = set()
    for key_node, value in root.value:
        name = key_node.value if isinstance(key_node, ScalarNode) else None
        if name in items and name not in done and isinstance(value, SequenceNode):
            value = SequenceNode(value.tag, items[name], value.start_mark, value.end_mark,
                                 value.flow_style)
            done.add(name)
        out.append((key_node, value))
    for key, extra in items.items():
        if key in done or not extra:
            continue
        value = main.get(key, (None, None))[1]
        if value is not None and not is_null(value):
            continue                       # not a list: the build reports the main file's value
        if getattr(defaults, fields_of(Config)[key].attr):
            defaulted.append(key)
        mark = extra[0].start_mark
        seq = SequenceNode(_SEQ_TAG, extra, mark, mark)
        out = [(k, v) for k, v in out if not (isinstance(k, ScalarNode) and k.value == key)]
        out.append((ScalarNode(_STR_TAG, key, mark, mark), seq))
    merged = MappingNode(root.tag, out, root.start_mark, root.end_mark, root.flow_style)
    return merged, defaulted, tuple(added)


def _add_drop_in(b: _TreeBuilder, path: str, root: Node, keys: tuple[str, ...],
                 items: dict[str, list[Node]], taken: dict[str, dict[str, str]],
                 ) -> dict[str, int]:
    """Append a drop-in's entries to ``items``; report what it may not hold."""
    added: dict[str, int] = {}
    if not isinstance(root, MappingNode):
        b.issue_in(path, root, "", f"expected a mapping of {', '.join(keys)}, "
                                   f"got {b.describe(root, '')}")
        return added
    for key, (key_node, value) in pairs(root).items():
        if key == "include":
            b.issue_in(path, key_node, "include",
                       "included files do not include: 'include' belongs to the main file")
            continue
        if key not in keys:
            if key in fields_of(Config):
                b.issue_in(path, key_node, key,
                           f"{key!r} belongs to the main file: a drop-in holds only "
                           f"{', '.join(keys)}")
            else:
                b.issue_in(path, key_node, "", unknown_key(key, list(keys)))
            continue
        if is_null(value):
            continue
        if not isinstance(value, SequenceNode):
            b.issue_in(path, value, key, f"expected a list, got {b.describe(value, key)}")
            continue
        count = 0
        for index, item in enumerate(value.value):
            name = _name_node(item)
            if name is not None:
                here = _where(path, name)
                first = taken[key].get(name.value)
                if first is not None:
                    at = f"{key}[{index}]" + ("" if name is item else ".name")
                    b.issue_in(path, name, at, f"expected a unique name, got {name.value!r} "
                                               f"twice: {first} and at {here}")
                    continue
                taken[key][name.value] = "at " + here
            b.origin[(key, len(items.setdefault(key, [])))] = (path, index)
            items[key].append(item)
            count += 1
        added[key] = count
    return added


def _name_node(item: Node) -> ScalarNode | None:
    """The node holding an entry's name: the entry itself when bare, else its ``name``."""
    if isinstance(item, ScalarNode):
        return None if is_null(item) else item
    if isinstance(item, MappingNode):
        pair = pairs(item).get("name")
        if pair is not None and isinstance(pair[1], ScalarNode) and not is_null(pair[1]):
            return pair[1]
    return None


def _where(file: str, node: Node) -> str:
    return f"{file}:{node.start_mark.line + 1}:{node.start_mark.column + 1}"


def _digest(texts: list[tuple[str, str]]) -> str:
    if len(texts) == 1:
        return sha256(texts[0][1].encode()).hexdigest()
    h = sha256()
    for path, text in texts:
        h.update(f"{len(path)}:{path}:{len(text.encode())}:".encode())
        h.update(text.encode())
    return h.hexdigest()


def describe_added(added: dict[str, int]) -> str:
    """``{"thresholds": 2, "sinks": 1}`` -> ``2 thresholds, 1 sinks`` (nothing: "nothing")."""
    parts = [f"{n} {key}" for key, n in added.items() if n]
    return ", ".join(parts) or "nothing"

