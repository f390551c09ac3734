"""Finding a Python statistic's class: ``plugin_dirs``, ``module:Class`` and entry points.

* ``add_plugin_dirs(dirs)`` appends the top-level ``plugin_dirs`` to
  ``sys.path`` (after everything already there, so a plugin never shadows
  the standard library or pharosd itself), once each.
* ``find_class(spec)`` imports what ``python:`` names: ``module:Class`` (the
  part after the colon may be dotted, ``module:Outer.Inner``), or a bare name
  registered by an installed package under the entry-point group
  ``pharosd.statistics`` (``importlib.metadata``). It raises ``PluginError``
  with a message that says what was expected and what happened instead,
  which the config turns into a positioned error.
* ``dir_issue(path)``: why a ``plugin_dirs`` entry cannot be used, or None;
  ``missing_dirs(dirs)``: those that are not directories (an import error
  names them).

Importing is the only side effect, and it is the point: ``check-config``
imports every plugin so that a module that fails to import is reported
where the config names it. A module stays imported for the life of the
process; a changed plugin module needs a restart (a reload imports only
modules it has not imported yet).
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence
from importlib import metadata
from typing import Any

from pharosd.errors import PluginError, describe_error
from pharosd.statistics.config import ENTRY_POINT_GROUP, PYTHON_SPEC


def dir_issue(path: str) -> str | None:
    """Why ``path`` cannot be a plugin directory, or None. A directory that does not
    exist (yet) is allowed: a plugin named from it fails to import, and says so."""
    if not os.path.isabs(path):
        return f"expected an absolute directory path, got {path!r}"
    return None


def missing_dirs(dirs: Sequence[str]) -> list[str]:
    return [d for d in dirs if not os.path.isdir(d)]


def add_plugin_dirs(dirs: Sequence[str]) -> None:
    """Append each directory to ``sys.path`` unless it is already there."""
    added = False
    for d in dirs:
        if d not in sys.path:
            sys.path.append(d)
            added = True
    if added:
        importlib.invalidate_caches()


def entry_point_names() -> list[str]:
    return sorted({ep.name for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)})


def find_class(spec: str) -> Any:
    """The callable ``python: spec`` names; raises ``PluginError``."""
    m = PYTHON_SPEC.fullmatch(spec)
    if m is None:
        return _from_entry_point(spec)
    module_name, attr = m.group("module"), m.group("attr")
    try:
        module = importlib.import_module(module_name)
    except (Exception, SystemExit) as e:   # a plugin's import may raise anything
        raise PluginError(f"expected an importable module {module_name!r}, got "
                          f"{describe_error(e)}") from e
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            where = getattr(module, "__file__", None) or module_name
            raise PluginError(f"expected {attr!r} in module {module_name!r} ({where}), "
                              f"found no {part!r}")
        obj = getattr(obj, part)
    return _checked(obj, spec)


def _from_entry_point(name: str) -> Any:
    found = [ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
    if not found:
        names = entry_point_names()
        import difflib  # for a suggestion after an error only

        close = difflib.get_close_matches(name, names, n=1)
        hint = f", did you mean {close[0]!r}?" if close else ""
        known = f"installed: {', '.join(names)}" if names else "none installed"
        raise PluginError(f"expected 'module:Class' or the name of a {ENTRY_POINT_GROUP} "
                          f"entry point ({known}), got {name!r}{hint}")
    ep = found[0]
    try:
        obj = ep.load()
    except (Exception, SystemExit) as e:
        raise PluginError(f"expected entry point {name!r} ({ep.value}) to load, got "
                          f"{describe_error(e)}") from e
    return _checked(obj, f"{name} ({ep.value})")


def _checked(obj: Any, what: str) -> Any:
    if not callable(obj):
        raise PluginError(f"expected {what} to be a class, got a {type(obj).__name__}")
    if isinstance(obj, type) and not callable(getattr(obj, "collect", None)):
        raise PluginError(f"expected class {what} to have a collect() method, found none")
    return obj
