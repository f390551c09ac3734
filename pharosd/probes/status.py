"""A probe's own status as samples and as a threshold.

Every probe yields, on every run, ``probe.<name>.status`` (the Nagios code:
0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN) and ``probe.<name>.state`` (the same
with UNKNOWN mapped by the probe's ``unknown`` key to 0, 1 or 2); both carry
the check's text as ``Sample.note``. ``status_thresholds`` turns each probe
into a ``ThresholdConfig`` on ``probe.<name>.state`` (warning above 0.5,
critical above 1.5, summary ``{note}``) so the probe's status goes through
the ordinary alert machine with its soak and cool.

Those thresholds are named ``probe:<name>``; user thresholds may not start
with ``probe:`` (``reserved_threshold_issues`` reports them), so the two can
never clash (``reserved_threshold_issues`` lives in pharosd.probes.config, beside
the other config shapes, for ``Config.check`` to call).
"""

from __future__ import annotations

from collections.abc import Sequence

from pharosd.alerting.config import LevelLimits, ThresholdConfig
from pharosd.probes.config import THRESHOLD_PREFIX, ProbeConfig

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
STATUS_NAMES = ("OK", "WARNING", "CRITICAL", "UNKNOWN")
UNKNOWN_STATE = {"ok": OK, "warning": WARNING, "critical": CRITICAL}

STATUS_SUMMARY = "{note}"


def metric_prefix(probe: str) -> str:
    """``probe.<name>.``: every metric of a probe starts with it."""
    return f"probe.{probe}."


def status_metric(probe: str) -> str:
    return f"probe.{probe}.status"


def state_metric(probe: str) -> str:
    return f"probe.{probe}.state"


def threshold_name(probe: str) -> str:
    """The name of the generated status threshold (the alert's ``rule``)."""
    return THRESHOLD_PREFIX + probe


def state_of(status: int, unknown: str) -> int:
    """The alert state (0, 1, 2) of a Nagios status, UNKNOWN mapped by ``unknown``."""
    if status in (OK, WARNING, CRITICAL):
        return status
    return UNKNOWN_STATE[unknown]


def status_thresholds(probes: Sequence[ProbeConfig]) -> list[ThresholdConfig]:
    """One threshold per probe on its state; append them to the configured ones."""
    return [
        ThresholdConfig(
            name=threshold_name(p.name),
            metric=state_metric(p.name),
            above=LevelLimits(warning=0.5, critical=1.5),
            soak=p.soak,
            cool=p.cool,
            summary=STATUS_SUMMARY,
        )
        for p in probes
    ]

