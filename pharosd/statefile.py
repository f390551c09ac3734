"""Small JSON state files (alert state, notifier state, silences, the Alertmanager sink's
active alerts), written so that a crash or power loss leaves either the old file or the
new one, never a torn one.

``write_json`` writes ``path.tmp``, fsyncs it, renames it over ``path`` and fsyncs the
directory; ``read_json`` returns None for a missing file and raises ``OSError`` or
``ValueError`` for one it cannot read. Mode 0640 (the state directory is the daemon's).
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any


def write_json(path: str, data: Any) -> None:
    tmp = f"{path}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    try:
        os.fchmod(fd, 0o640)         # whatever the umask or a stale temporary file's mode
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, separators=(",", ":"))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dfd = os.open(os.path.dirname(path) or ".", os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def read_json(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return None
