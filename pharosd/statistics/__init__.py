"""Built-in statistics (psutil and /proc) and the collector that polls them.

``build_statistic(cfg, default_every)`` makes one statistic (a
``pharosd.source.Source``); the collector that polls statistics and probes
is ``pharosd.collector.Collector``. Modules: ``factory`` (name to class),
``base`` (shared base class, filters, item errors), ``rates`` (counters to
per-second rates, pure), ``procfs`` (/proc readers and parsers), ``cpu``
(cpu, load), ``memory`` (memory, swap), ``disk`` (disk, diskio),
``network``, ``system`` (processes, files, uptime), ``sensors``
(temperature). Metric names: docs/metrics.md.
"""

from pharosd.statistics.factory import build_statistic

__all__ = ["build_statistic"]
