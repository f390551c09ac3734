"""The ``Source`` protocol: something the collector polls for samples.

Built-in statistics and operator probes are both sources. ``collect(now)``
gets the wall-clock time to stamp samples with and returns them; it may
raise ``ProbeError`` (logged once per distinct message, then the collector
goes on). A source with ``blocking = True`` (a plugin, an HTTP check) is
run on the collector's small thread pool, at most one run in flight per
source, so it never delays the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from pharosd.model import Sample


class Source(Protocol):
    name: str
    every: float          # seconds between polls
    blocking: bool

    def collect(self, now: float) -> Sequence[Sample]: ...
