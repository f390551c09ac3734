"""What every probe shares: the ``CheckResult`` of one run and the ``Probe`` base.

A probe kind implements ``check(now) -> CheckResult``: a Nagios status, a
line of text and its own values (metric suffixes under ``probe.<name>.``).
``Probe.collect`` (the ``pharosd.source.Source`` method) runs it and turns
the result into samples: ``status`` and ``state`` with the text as note
(status.py), then the values. ``collect`` never raises for a failing check:
a ``ProbeError`` becomes UNKNOWN with its message as the reason, and any
other exception (a bug) is logged with its traceback and becomes UNKNOWN
too, so a broken probe still raises its status alert and never takes the
collector down.

A probe is a blocking source: the collector runs it on its thread pool,
never twice at once, so a probe may keep state between runs without a lock.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import structlog

from pharosd.clock import Clock, SystemClock
from pharosd.errors import ProbeError, describe_error
from pharosd.model import NO_LABELS, Sample
from pharosd.probes.config import ProbeConfig
from pharosd.probes.status import (
    STATUS_NAMES,
    UNKNOWN,
    metric_prefix,
    state_of,
)

log = structlog.get_logger(__name__)

MAX_NOTE = 1024
FAILED = "check failed: "


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One run of a check: Nagios ``status`` (0..3), its ``text`` and its values.

    ``values`` are ``(suffix, value)``: the metric ``probe.<name>.<suffix>``;
    values that are not finite (NaN, infinity) are not sampled.
    For UNKNOWN, ``text`` is the reason the check failed.
    """

    status: int
    text: str
    values: tuple[tuple[str, float], ...] = ()

    @classmethod
    def failed(cls, reason: str,
               values: Sequence[tuple[str, float]] = ()) -> CheckResult:
        return cls(UNKNOWN, reason, tuple(values))


def note_of(result: CheckResult) -> str:
    """The sample note (and alert summary) of a result: its text, or for UNKNOWN
    ``check failed: <reason>``; at most ``MAX_NOTE`` characters."""
    text = " ".join(result.text.split()) or "(no output)"
    if result.status == UNKNOWN and not text.startswith(FAILED):
        text = FAILED + text
    if len(text) > MAX_NOTE:
        text = text[:MAX_NOTE - 1] + "…"
    return text


class Probe:
    """Base of the probe kinds: a blocking ``Source`` named after the probe."""

    blocking: bool = True
    kind: str = "probe"

    def __init__(self, cfg: ProbeConfig, every: float, clock: Clock | None = None) -> None:
        self.cfg = cfg
        self.clock: Clock = clock or SystemClock()
        self.name: str = cfg.name
        self.every: float = float(every)
        # Identifies the configuration: a reload that leaves it equal can keep this
        # instance (and its state, such as the process probe's cpu times).
        self.key: Hashable = ("probe", cfg, self.every)
        self.prefix = metric_prefix(cfg.name)
        self.last_result: CheckResult | None = None
        self.crashes = 0

    def check(self, now: float) -> CheckResult:  # pragma: no cover - abstract
        raise NotImplementedError

    def collect(self, now: float) -> list[Sample]:
        try:
            result = self.check(now)
        except ProbeError as e:
            result = CheckResult.failed(str(e) or type(e).__name__)
        except Exception as e:
            self.crashes += 1
            log.error("probe_crashed", probe=self.name, kind=self.kind,
                      error=describe_error(e), exc_info=True)
            result = CheckResult.failed(f"internal error: {describe_error(e)}")
        self._log_change(result)
        self.last_result = result
        return self.samples(result, now)

    def samples(self, result: CheckResult, now: float) -> list[Sample]:
        """The samples of one result, stamped ``now`` (wall-clock seconds)."""
        note = note_of(result)
        state = state_of(result.status, self.cfg.unknown)
        p = self.prefix
        out = [Sample(p + "status", NO_LABELS, float(result.status), now, note),
               Sample(p + "state", NO_LABELS, float(state), now, note)]
        out.extend(Sample(p + suffix, NO_LABELS, float(value), now)
                   for suffix, value in result.values if math.isfinite(value))
        return out

    def _log_change(self, result: CheckResult) -> None:
        last = self.last_result
        if last is None or last.status != result.status:
            log.info("probe_status", probe=self.name, kind=self.kind,
                     status=STATUS_NAMES[result.status], note=note_of(result))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} every={self.every:g}s>"
