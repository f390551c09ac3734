"""A private VictoriaMetrics 1.79 on 127.0.0.1 accepting remote_write, for uplink tests.

Started with ``-search.latencyOffset=0s`` (else the newest
30 s are hidden) and a temporary ``-storageDataPath``. ``stop()`` and
``start()`` again keep the port and the data: an outage. ``export(match)``
returns every raw sample (duplicates included) through ``/api/v1/export``.
``export`` and ``query`` first ask for ``/internal/force_flush``: what was
written is searchable at once, not a few seconds later.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from typing import Any

from peers.process import HttpPeer


class VictoriaMetrics(HttpPeer):
    name = "victoria-metrics"
    program = ("victoria-metrics",)
    ready_timeout = 60.0
    stop_timeout = 30.0
    ready_path = "/health"

    @property
    def write_url(self) -> str:
        return self.url + "/api/v1/write"

    def _command(self) -> list[str]:
        return [self.binary, f"-httpListenAddr=127.0.0.1:{self.port}",
                f"-storageDataPath={self.tmp / 'data'}", "-retentionPeriod=100y",
                "-search.latencyOffset=0s", "-loggerLevel=WARN"]

    def flush(self) -> None:
        """Make what was written so far searchable now (else it shows up within seconds)."""
        with urllib.request.urlopen(f"{self.url}/internal/force_flush", timeout=10) as r:
            r.read()

    def export(self, match: str) -> dict[tuple[tuple[str, str], ...],
                                         list[tuple[int, float]]]:
        """Raw samples of the series matching ``match``: labels -> [(ts_ms, value)]."""
        self.flush()
        query = urllib.parse.urlencode({"match[]": match, "start": "0"})
        with urllib.request.urlopen(f"{self.url}/api/v1/export?{query}", timeout=30) as r:
            lines = r.read().decode().splitlines()
        out: dict[tuple[tuple[str, str], ...], list[tuple[int, float]]] = {}
        for line in lines:
            if not line.strip():
                continue
            row = json.loads(line)
            key = tuple(sorted(row["metric"].items()))
            pairs = [(int(t), float(v)) for t, v in
                     zip(row["timestamps"], row["values"], strict=True)]
            out.setdefault(key, []).extend(pairs)
        return out

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        self.flush()
        params = {"query": expr}
        if at is not None:
            params["time"] = str(at)
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}/api/v1/query?{query}", timeout=10) as r:
            body = json.loads(r.read())
        result: list[dict[str, Any]] = body["data"]["result"]
        return result
