"""``Spool``: a Python statistic shipped with pharosd: the files waiting in a directory.

It is written against the plugin protocol alone (docs/plugins.md) and imports
nothing of pharosd, so it doubles as the protocol's worked example. It is
registered under the entry-point group ``pharosd.statistics`` as ``spool``:

    - {name: mailq, python: spool, every: 30s,
       options: {path: /var/spool/postfix/deferred, recursive: true}}

Options: ``path`` (the directory, required), ``pattern`` (a glob on file
names, default ``*``), ``recursive`` (also the directories below, default
false). Metrics, labelled ``{path}``: ``spool.files``, ``spool.bytes`` and
``spool.oldest_seconds`` (age of the oldest file by its modification time,
0 when there is none). A missing directory raises, so the statistic shows as
failing until it exists.
"""

from __future__ import annotations

import fnmatch
import os
import stat
import time
from collections.abc import Iterator
from typing import Any

OPTIONS = ("path", "pattern", "recursive")


class Spool:
    def __init__(self, options: dict[str, Any]) -> None:
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise ValueError(f"unknown option(s) {', '.join(unknown)} "
                             f"(known: {', '.join(OPTIONS)})")
        path = options.get("path")
        if not isinstance(path, str) or not os.path.isabs(path):
            raise ValueError(f"options.path: expected an absolute directory path, got {path!r}")
        pattern = options.get("pattern", "*")
        if not isinstance(pattern, str) or not pattern:
            raise ValueError(f"options.pattern: expected a glob, got {pattern!r}")
        recursive = options.get("recursive", False)
        if not isinstance(recursive, bool):
            raise ValueError(f"options.recursive: expected true or false, got {recursive!r}")
        self.path, self.pattern, self.recursive = path, pattern, recursive

    def _files(self) -> Iterator[os.stat_result]:
        pending = [self.path]
        while pending:
            with os.scandir(pending.pop()) as entries:
                for entry in entries:
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except FileNotFoundError:       # delivered while we looked
                        continue
                    if stat.S_ISDIR(st.st_mode):
                        if self.recursive:
                            pending.append(entry.path)
                    elif stat.S_ISREG(st.st_mode) and fnmatch.fnmatchcase(entry.name,
                                                                           self.pattern):
                        yield st

    def collect(self) -> list[tuple[str, dict[str, str], float]]:
        count = size = 0
        oldest: float | None = None
        for st in self._files():
            count += 1
            size += st.st_size
            oldest = st.st_mtime if oldest is None else min(oldest, st.st_mtime)
        age = 0.0 if oldest is None else max(0.0, time.time() - oldest)
        labels = {"path": self.path}
        return [("spool.files", labels, count), ("spool.bytes", labels, size),
                ("spool.oldest_seconds", labels, age)]
