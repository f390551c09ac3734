"""Alertmanager's shapes, as pure functions of an alert event.

* ``am_labels`` / ``am_annotations``: the labels (``alertname`` = rule,
  ``severity`` = level, ``host``, then the metric's labels, then extra
  labels from config; the three fixed ones win) and annotations
  (``summary``, ``value``, ``limit``) shared by both shapes.
* ``api_alert``: one element of the ``POST /api/v2/alerts`` array.
* ``webhook_body``: the Alertmanager webhook v4 notification body, for
  ``webhook`` sinks with ``format: alertmanager``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pharosd.model import AlertEvent, rfc3339, wire_label_name
from pharosd.sinks.syslog import format_number

ZERO_TIME = "0001-01-01T00:00:00Z"   # Alertmanager's "not ended" endsAt


def am_labels(event: AlertEvent, extra: Mapping[str, str] | None = None,
              level: str | None = None) -> dict[str, str]:
    labels: dict[str, str] = {}
    for k, v in (extra or {}).items():
        if v != "":
            labels[wire_label_name(k)] = v
    for k, v in event.labels:
        if v != "":
            labels[wire_label_name(k)] = v
    labels["alertname"] = event.rule
    labels["severity"] = level or event.level
    labels["host"] = event.host
    return labels


def am_annotations(event: AlertEvent) -> dict[str, str]:
    ann = {"summary": event.summary}
    if event.value is not None:
        ann["value"] = format_number(event.value)
    if event.limit is not None:
        ann["limit"] = format_number(event.limit)
    return ann


def api_alert(event: AlertEvent, *, ends_at: float, generator_url: str = "",
              extra_labels: Mapping[str, str] | None = None,
              level: str | None = None) -> dict[str, Any]:
    """One alert for ``POST /api/v2/alerts``; ``level`` overrides the severity label."""
    alert: dict[str, Any] = {
        "labels": am_labels(event, extra_labels, level),
        "annotations": am_annotations(event),
        "startsAt": rfc3339(event.started_at),
        "endsAt": rfc3339(ends_at),
    }
    if generator_url:
        alert["generatorURL"] = generator_url
    return alert


def webhook_body(event: AlertEvent, *, receiver: str, external_url: str = "",
                 generator_url: str = "") -> dict[str, Any]:
    """The body Alertmanager's webhook receiver sends (version 4), for one alert."""
    labels = am_labels(event)
    annotations = am_annotations(event)
    group_labels = {"alertname": event.rule}
    return {
        "version": "4",
        "groupKey": "{}:{alertname=" + json.dumps(event.rule) + "}",
        "truncatedAlerts": 0,
        "status": event.status,
        "receiver": receiver,
        "groupLabels": group_labels,
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "externalURL": external_url,
        "alerts": [{
            "status": event.status,
            "labels": labels,
            "annotations": annotations,
            "startsAt": rfc3339(event.started_at),
            "endsAt": rfc3339(event.at) if event.status == "resolved" else ZERO_TIME,
            "generatorURL": generator_url,
            "fingerprint": event.fingerprint,
        }],
    }
