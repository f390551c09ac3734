"""Built-in statistics (psutil and /proc): each one a ``pharosd.source.Source``.

The package face only names its modules; import from the module that owns
a name. ``config`` (``StatisticConfig`` and the statistic names),
``factory`` (``build_statistic(cfg, default_every)``: name to class),
``base`` (shared base class, filters, item errors), ``rates`` (counters to
per-second rates, pure), ``procfs`` (/proc readers and parsers), ``cpu``
(cpu, load), ``memory`` (memory, swap), ``disk`` (disk, diskio),
``network``, ``system`` (processes, files, uptime), ``sensors``
(temperature), ``pressure`` (Linux PSI), ``services`` (systemd units),
``plugins`` (finding a ``python:`` statistic's class: plugin_dirs, entry
points) and ``python`` (the plugin protocol and its isolation).
The collector that polls them is ``pharosd.collection.worker``. Metric
names: docs/metrics.md.
"""
