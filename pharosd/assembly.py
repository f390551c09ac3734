"""What the daemon builds from a ``Config`` before it starts workers.

Pure functions over the assembled config, shared by the daemon's start and its
reload: the thresholds to evaluate (the configured ones plus each probe's status
threshold), the notifier's routes and maintenance schedule, and the sources the
collector polls.
"""

from __future__ import annotations

from collections.abc import Mapping

from pharosd.alerting.config import MaintenanceConfig, ThresholdConfig
from pharosd.alerting.maintenance import Schedule, Window, local_zone
from pharosd.alerting.routing import Route, route_of
from pharosd.config.schema import Config
from pharosd.probes.factory import build_probe, status_thresholds
from pharosd.source import Source
from pharosd.statistics.factory import build_statistic


def all_thresholds(config: Config) -> list[ThresholdConfig]:
    """The configured thresholds plus one status threshold per probe."""
    return [*config.thresholds, *status_thresholds(config.probes)]


def routes(config: Config) -> list[Route]:
    return [route_of(s) for s in config.sinks]


def schedule(windows: tuple[MaintenanceConfig, ...], environ: Mapping[str, str]) -> Schedule:
    """The maintenance windows, read in the host's local time zone (none is read
    without a window: nothing would use it)."""
    return Schedule(tuple(Window.of(m.name, m.start, m.duration, m.days, m.rules, m.labels)
                          for m in windows), local_zone(environ) if windows else None)


def build_sources(config: Config) -> list[Source]:
    sources: list[Source] = [build_statistic(s, config.interval, plugin_dirs=config.plugin_dirs)
                             for s in config.statistics]
    sources += [build_probe(p, config.interval) for p in config.probes]
    return sources
