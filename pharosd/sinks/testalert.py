"""``pharosd test-alert``: send a synthetic firing + resolved pair through the sinks.

Each configured sink (or the one named) is built and gets the two events
directly, not through the outbox, so the operator sees at once whether it
works: one line per sink, ``NAME: ok`` or ``NAME: failed: REASON``. A sink
whose ``filter`` refuses the synthetic alert (rule ``pharos-test-alert``, the
``level`` asked for, labels ``test=true`` and ``sink=NAME``) is not sent it:
``NAME: skipped: ...`` says which part of the filter refused it. The exit code
is 0 when every sink worked or was skipped, 1 when one failed, 2 for an unknown
sink name. The Alertmanager sink's re-send state is not touched.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TextIO

from pharosd.clock import Clock, SystemClock
from pharosd.errors import ConfigError, DeliveryError, describe_error
from pharosd.model import AlertEvent, Level, fingerprint, labels_of
from pharosd.sinks.config import SinkConfig, SinkSettings
from pharosd.sinks.factory import build_sink

TEST_RULE = "pharos-test-alert"


def synthetic_events(host: str, sink: str, now: float,
                     level: Level = "warning") -> tuple[AlertEvent, AlertEvent]:
    """A firing event and its resolved event, one second apart."""
    labels = labels_of(test="true", sink=sink)
    fp = fingerprint(TEST_RULE, labels)
    common = dict(rule=TEST_RULE, level=level, metric="pharos.test_alert", labels=labels,
                  limit=0.0, op="above", host=host, started_at=now - 1.0, fingerprint=fp)
    firing = AlertEvent(status="firing", value=1.0, at=now - 1.0,
                        summary=f"pharosd test alert from {host} (sink {sink}): firing",
                        **common)  # type: ignore[arg-type]
    resolved = AlertEvent(status="resolved", value=0.0, at=now,
                          summary=f"pharosd test alert from {host} (sink {sink}): resolved",
                          **common)  # type: ignore[arg-type]
    return firing, resolved


SkipReason = Callable[[SinkConfig, AlertEvent], "str | None"]


def run_test_alert(config: SinkSettings, sink: str | None, out: TextIO, *,
                   level: Level = "warning", skip: SkipReason | None = None,
                   clock: Clock | None = None) -> int:
    names = [s.name for s in config.sinks]
    if sink is not None and sink not in names:
        known = ", ".join(names) or "none"
        out.write(f"unknown sink {sink!r} (configured: {known})\n")
        return 2
    state_dir = config.resolved_state_dir()
    host = config.resolved_host()
    clock = clock or SystemClock()
    failed = 0
    for cfg in config.sinks:
        if sink is not None and cfg.name != sink:
            continue
        firing = synthetic_events(host, cfg.name, clock.wall(), level)[0]
        why = skip(cfg, firing) if skip is not None else None
        if why is not None:
            out.write(f"{cfg.name}: skipped: its filter refuses this alert: {why}\n")
            continue
        reason = _try(cfg, state_dir, host, level, clock)
        if reason is None:
            out.write(f"{cfg.name}: ok\n")
        else:
            failed += 1
            out.write(f"{cfg.name}: failed: {reason}\n")
        out.flush()
    return 1 if failed else 0


def _try(cfg: object, state_dir: str, host: str, level: Level, clock: Clock) -> str | None:
    try:
        built = build_sink(cfg, state_dir=state_dir, host=host,  # type: ignore[arg-type]
                           ephemeral=True, clock=clock)
    except ConfigError as e:
        return str(e)
    except (OSError, ValueError) as e:
        return f"cannot build the sink: {e}"
    try:
        for event in synthetic_events(host, built.name, clock.wall(), level):
            built.deliver(event)
    except DeliveryError as e:
        return str(e)
    except Exception as e:  # a sink bug must still give a line of output
        return describe_error(e)
    finally:
        with contextlib.suppress(Exception):
            built.close()
    return None
