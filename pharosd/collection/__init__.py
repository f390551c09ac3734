"""Collection: the schedule that polls every source (statistics and probes).

The package face only names its modules: ``worker`` (``Collector``, the
collector thread, and its pure helpers ``next_due`` and ``source_key``). It
depends on the ``pharosd.source.Source`` contract only, never on the
statistics or probes families that implement it.
"""
