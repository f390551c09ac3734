"""Waiting after failures: the one ``Backoff`` policy and the ``Retry-After`` header.

``Backoff`` is used by the supervisor (restarting a crashed worker), the
sink worker (re-delivering an alert event) and the uplink (re-sending a
batch); each keeps its own defaults (``initial``, ``maximum``, ``jitter``,
``retry_after_cap``), the rule is this one:

* After the k-th failure in a row (k = 1, 2, ...) the nominal wait is
  ``min(maximum, initial * 2**(k-1))``.
* Jitter shortens it by up to ``jitter`` (a fraction) at random, so many
  clients failing together do not retry in lockstep; a wait is never
  longer than the nominal one, and so never longer than ``maximum``.
* A receiver's ``Retry-After`` is a floor: the wait is the longer of the
  backoff and the ``Retry-After``, the latter counted up to
  ``retry_after_cap`` (``maximum`` when not given). A short ``Retry-After``
  never makes a retry come sooner than the backoff.
* ``reset()`` (a success, or a worker that ran long enough) starts over.

``parse_retry_after`` reads the header: delta-seconds (``120``) or an
HTTP date (``Wed, 21 Oct 2015 07:28:00 GMT``), as seconds from now.

Defaults of the users: supervisor 0.5 s -> 30 s, no jitter; sinks
``retry.initial`` -> ``retry.max`` (1 s -> 5 m), ``Retry-After`` up to
``max(retry.max, 1 h)``; uplink ``min_backoff`` -> ``max_backoff`` (1 s -> 30 s),
``Retry-After`` up to ``max_backoff``.
"""

from __future__ import annotations

import email.utils
import math
import random
import re
from datetime import UTC

__all__ = ["Backoff", "parse_retry_after"]

_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]+)?")     # RFC 9110 says digits; a fraction is read too


class Backoff:
    """A growing wait with jitter and a cap; see the module docstring."""

    def __init__(self, initial: float, maximum: float, *, jitter: float = 0.2,
                 retry_after_cap: float | None = None,
                 rng: random.Random | None = None) -> None:
        self.initial = initial
        self.maximum = maximum
        self.jitter = jitter
        self.retry_after_cap = retry_after_cap
        self.failures = 0
        self._rng = rng or random.Random()

    def nominal(self, failures: int) -> float:
        """The un-jittered wait after ``failures + 1`` failures in a row."""
        return min(self.maximum, self.initial * math.pow(2.0, min(max(failures, 0), 62)))

    def delay(self, failures: int, rand: float, retry_after: float | None = None) -> float:
        """The wait after ``failures + 1`` failures in a row, with ``rand`` in [0, 1)
        choosing the jitter (pure: the stateful callers use ``next_delay``)."""
        wait = self.nominal(failures) * (1.0 - self.jitter * min(max(rand, 0.0), 1.0))
        if retry_after is not None and retry_after > wait:
            cap = self.maximum if self.retry_after_cap is None else self.retry_after_cap
            wait = max(wait, min(retry_after, cap))
        return wait

    def next_delay(self, retry_after: float | None = None) -> float:
        """Count one more failure and return the wait before the next try."""
        wait = self.delay(self.failures, self._rng.random() if self.jitter else 0.0,
                          retry_after)
        self.failures += 1
        return wait

    def reset(self) -> None:
        self.failures = 0


def parse_retry_after(value: str | None, now_wall: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delta-seconds or an HTTP date
    (a date in the past is 0); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if _SECONDS.fullmatch(value):
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:       # "-0000" in an HTTP date means UTC too
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now_wall)
