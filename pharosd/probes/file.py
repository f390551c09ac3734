"""The file probe: does a file exist, how old is it, how big.

``path`` is a file, or a glob when it holds ``*``, ``?`` or ``[`` (then the
newest match counts). Values: ``exists`` (1 or 0), ``count`` (matches),
``age_seconds`` (now minus the newest mtime; negative when the mtime is in
the future) and ``size_bytes`` (of the newest match). The check fails (the
probe's ``level``) when nothing matches, when the newest is older than
``max_age`` or smaller than ``min_size``; a path that cannot be examined
(permission denied) is UNKNOWN. For "the backup did not run" and "the log
stopped moving".
"""

from __future__ import annotations

import glob
import os

from pharosd.probes.base import CheckResult, Probe
from pharosd.probes.config import FileProbeConfig
from pharosd.probes.status import OK, UNKNOWN_STATE
from pharosd.units import format_duration, format_size


class FileProbe(Probe):
    kind = "file"
    cfg: FileProbeConfig

    def __init__(self, cfg: FileProbeConfig, every: float) -> None:
        super().__init__(cfg, every)
        self.fail_status = UNKNOWN_STATE[cfg.level]
        self.is_glob = glob.has_magic(cfg.path)

    def check(self, now: float) -> CheckResult:
        cfg = self.cfg
        paths = sorted(glob.glob(cfg.path)) if self.is_glob else [cfg.path]
        found: list[tuple[float, int, str]] = []
        for path in paths:
            try:
                st = os.stat(path)
            except FileNotFoundError:
                continue
            except OSError as e:
                return CheckResult.failed(f"{path}: {e.strerror or e}")
            found.append((st.st_mtime, st.st_size, path))
        if not found:
            what = "no file matches" if self.is_glob else "no such file"
            return CheckResult(self.fail_status, f"{cfg.path}: {what}",
                               (("exists", 0.0), ("count", 0.0)))
        mtime, size, newest = max(found)
        age = now - mtime
        values = (("exists", 1.0), ("count", float(len(found))), ("age_seconds", age),
                  ("size_bytes", float(size)))
        shown = f"{newest} ({len(found)} files)" if self.is_glob else newest
        if cfg.max_age is not None and age > cfg.max_age:
            return CheckResult(self.fail_status,
                               f"{shown}: modified {format_duration(round(age))} ago, "
                               f"more than {format_duration(cfg.max_age)}", values)
        if cfg.min_size is not None and size < cfg.min_size:
            return CheckResult(self.fail_status,
                               f"{shown}: {format_size(size)}, less than "
                               f"{format_size(cfg.min_size)}", values)
        return CheckResult(OK, f"{shown}: {format_size(size)}, modified "
                               f"{format_duration(max(round(age), 0))} ago", values)
