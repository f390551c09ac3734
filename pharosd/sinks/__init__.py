"""Sinks: where alert events are delivered (file, log, syslog, webhook, Alertmanager, ...).

The package face only names its modules; import from the module that owns
a name. ``config`` (one dataclass per ``kind``), ``factory`` (config to
sink), ``base`` (the ``Sink`` protocol), ``outbox`` (the durable queue),
``worker`` (``SinkWorker``, one thread per sink), ``http`` (shared HTTP
posting), ``amformat`` (event bodies), ``file``, ``log``, ``syslog``,
``webhook``, ``alertmanager``, ``email`` (SMTP), ``exec`` (a program per
event), ``testalert`` (``pharosd test-alert``).
"""
