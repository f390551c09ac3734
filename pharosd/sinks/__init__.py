"""Sinks: where alert events are delivered (file, log, syslog, webhook, Alertmanager)."""
