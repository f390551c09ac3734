"""Deferred imports: a module registered now, executed on its first real use.

Why: ``import structlog`` runs ``structlog.stdlib`` (and ``_native`` or
``_log_levels``), which ``import asyncio`` for their ``async`` logging methods,
and asyncio imports ``ssl`` (libcrypto), ``subprocess`` and its event loops:
about 6 MiB of a daemon that never runs an event loop. ``defer("asyncio")``
before structlog is first imported puts a stand-in in ``sys.modules``; the
module's code runs, in that same module object, the first time anything reads
one of its attributes (``asyncio.get_running_loop``, ``from asyncio import x``,
``import asyncio.events``), so code that does use it works unchanged.

Unlike ``importlib.util.LazyLoader`` on Python 3.11, a later plain
``import asyncio`` does not execute it: the import system only reads
``__spec__`` of a module already in ``sys.modules``, and the stand-in answers
that (and the other attributes ``module_from_spec`` sets) without executing.
The first use executes under a lock, so a second thread waits for the whole
module rather than seeing half of it.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
import types
from typing import Any

# Attributes the import system and introspection read that do not need the code run.
_METADATA = frozenset({"__spec__", "__name__", "__file__", "__loader__", "__package__",
                       "__class__", "__cached__"})
_lock = threading.RLock()
_executing: set[str] = set()


class _Deferred(types.ModuleType):
    """A module whose code has not run yet; the first attribute use runs it in place."""

    def __getattribute__(self, attr: str) -> Any:
        get = types.ModuleType.__getattribute__
        if attr not in _METADATA:
            spec = get(self, "__spec__")
            with _lock:
                if type(self) is _Deferred and spec.name not in _executing:
                    _execute(self, spec)
        return get(self, attr)


def _execute(module: types.ModuleType, spec: Any) -> None:
    """Run ``module``'s code once, as an import would; on failure drop it from
    ``sys.modules`` so that the next import starts afresh, as an import would."""
    _executing.add(spec.name)
    try:
        spec.loader.exec_module(module)
    except BaseException:
        if sys.modules.get(spec.name) is module:
            del sys.modules[spec.name]
        raise
    finally:
        module.__class__ = types.ModuleType
        _executing.discard(spec.name)


def defer(name: str) -> bool:
    """Register top-level module ``name`` to run on first use; False (nothing done)
    when it is already imported or cannot be found."""
    if name in sys.modules or "." in name:
        return False
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        return False
    module = importlib.util.module_from_spec(spec)
    module.__class__ = _Deferred
    sys.modules[name] = module
    return True
