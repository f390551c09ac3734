"""A private Prometheus 2.42 on 127.0.0.1 accepting remote_write, for uplink tests.

With ``scrape=["127.0.0.1:PORT"]`` it also scrapes those targets as job
``pharosd`` every ``scrape_interval`` (for the HTTP listener's tests).

Started with ``--web.enable-remote-write-receiver``, no scrape
jobs, a temporary TSDB, and by default ``out_of_order_time_window: 6h`` so
replayed old samples are taken (``ooo_window=None`` leaves it out).
``stop()`` and ``start()`` again keep the port and the TSDB: an outage.
``samples(expr, start, end)`` returns raw samples through a range selector.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from peers.process import HttpPeer


class Prometheus(HttpPeer):
    name = "prometheus"
    program = ("prometheus",)
    ready_timeout = 60.0
    stop_timeout = 30.0

    def __init__(self, tmp: Path, *, ooo_window: str | None = "6h",
                 scrape: list[str] | None = None, scrape_interval: str = "1s") -> None:
        super().__init__(tmp)
        self.ooo_window = ooo_window
        self.scrape = scrape or []
        self.scrape_interval = scrape_interval

    @property
    def write_url(self) -> str:
        return self.url + "/api/v1/write"

    def _command(self) -> list[str]:
        conf = self.tmp / "prometheus.yml"
        text = "global: {scrape_interval: 1m}\nscrape_configs: []\n"
        if self.scrape:     # one job `pharosd` scraping these host:port targets
            targets = ", ".join(f"'{t}'" for t in self.scrape)
            text = (f"global: {{scrape_interval: {self.scrape_interval}, "
                    f"scrape_timeout: {self.scrape_interval}}}\n"
                    f"scrape_configs:\n  - job_name: pharosd\n"
                    f"    static_configs: [{{targets: [{targets}]}}]\n")
        if self.ooo_window:
            text += f"storage: {{tsdb: {{out_of_order_time_window: {self.ooo_window}}}}}\n"
        conf.write_text(text)
        return [self.binary, f"--config.file={conf}",
                f"--storage.tsdb.path={self.tmp / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.enable-remote-write-receiver", "--storage.tsdb.retention.time=10y"]

    def api(self, path: str, **params: Any) -> Any:
        query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        with urllib.request.urlopen(f"{self.url}{path}?{query}", timeout=10) as r:
            body = json.loads(r.read())
        if body.get("status") != "success":
            raise RuntimeError(f"prometheus query failed: {body}")
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """An instant query: ``[{"metric": {...}, "value": [ts, "v"]}, ...]``."""
        result: list[dict[str, Any]] = self.api("/api/v1/query", query=expr, time=at)["result"]
        return result

    def samples(self, selector: str, start: float, end: float) -> dict[tuple[tuple[str, str], ...],
                                                                       list[tuple[float, float]]]:
        """Raw samples of ``selector`` in [start, end] (seconds): labels -> [(ts, value)]."""
        window = max(1, int(end - start + 1))
        data = self.api("/api/v1/query", query=f"{selector}[{window}s]", time=end)
        out: dict[tuple[tuple[str, str], ...], list[tuple[float, float]]] = {}
        for series in data["result"]:
            key = tuple(sorted(series["metric"].items()))
            out[key] = [(float(t), float(v)) for t, v in series["values"] if float(t) >= start]
        return out
