"""Operator-defined probes: Nagios plugins (exec), http, tcp, process, file.

The package face only names its modules; import from the module that owns
a name. ``config`` (one dataclass per ``kind``), ``factory`` (config to
probe), ``base`` (the shared ``Probe`` base), ``status`` (a probe's own
status as samples and as a threshold), ``exec`` + ``nagios`` (plugins and
their output), ``http`` + ``x509``, ``tcp``, ``process``, ``file``.
"""
