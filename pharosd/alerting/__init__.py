"""Thresholds and the alert state machine: the pure core of alerting."""
