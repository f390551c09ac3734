"""Operator-defined probes: Nagios plugins (exec), http, tcp, process, file."""
