"""A private Prometheus 2.42 on 127.0.0.1 accepting remote_write, for uplink tests.

Started per PEERS.md: ``--web.enable-remote-write-receiver``, no scrape
jobs, a temporary TSDB, and by default ``out_of_order_time_window: 6h`` so
replayed old samples are taken (``ooo_window=None`` leaves it out).
``stop()`` and ``start()`` again keep the port and the TSDB: an outage.
``samples(expr, start, end)`` returns raw samples through a range selector.
"""

from __future__ import annotations

import json
import signal
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from peers import free_port, require_binary, wait_for


class Prometheus:
    def __init__(self, tmp: Path, *, ooo_window: str | None = "6h") -> None:
        self.binary = require_binary("prometheus")
        self.tmp = tmp
        tmp.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.ooo_window = ooo_window
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def write_url(self) -> str:
        return self.url + "/api/v1/write"

    def start(self) -> Prometheus:
        conf = self.tmp / "prometheus.yml"
        text = "global: {scrape_interval: 1m}\nscrape_configs: []\n"
        if self.ooo_window:
            text += f"storage: {{tsdb: {{out_of_order_time_window: {self.ooo_window}}}}}\n"
        conf.write_text(text)
        args = [self.binary, f"--config.file={conf}",
                f"--storage.tsdb.path={self.tmp / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.enable-remote-write-receiver", "--storage.tsdb.retention.time=10y"]
        self._log = open(self.tmp / "prometheus.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT)
        if not wait_for(self._ready, timeout=60):
            self.stop()
            raise RuntimeError("prometheus did not become ready: " + self.log()[-2000:])
        return self

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError("prometheus exited: " + self.log()[-2000:])
        try:
            with urllib.request.urlopen(self.url + "/-/ready", timeout=1) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self._log is not None:
            self._log.close()
            self._log = None
        self.proc = None

    def __enter__(self) -> Prometheus:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log(self) -> str:
        p = self.tmp / "prometheus.log"
        return p.read_text(errors="replace") if p.exists() else ""

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
