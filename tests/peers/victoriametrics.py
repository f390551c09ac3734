"""A private VictoriaMetrics 1.79 on 127.0.0.1 accepting remote_write, for uplink tests.

Started per PEERS.md with ``-search.latencyOffset=0s`` (else the newest
30 s are hidden) and a temporary ``-storageDataPath``. ``stop()`` and
``start()`` again keep the port and the data: an outage. ``export(match)``
returns every raw sample (duplicates included) through ``/api/v1/export``.
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


class VictoriaMetrics:
    def __init__(self, tmp: Path) -> None:
        self.binary = require_binary("victoria-metrics")
        self.tmp = tmp
        tmp.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def write_url(self) -> str:
        return self.url + "/api/v1/write"

    def start(self) -> VictoriaMetrics:
        args = [self.binary, f"-httpListenAddr=127.0.0.1:{self.port}",
                f"-storageDataPath={self.tmp / 'data'}", "-retentionPeriod=100y",
                "-search.latencyOffset=0s", "-loggerLevel=WARN"]
        self._log = open(self.tmp / "victoria-metrics.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT)
        if not wait_for(self._ready, timeout=60):
            self.stop()
            raise RuntimeError("victoria-metrics did not become ready: " + self.log()[-2000:])
        return self

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError("victoria-metrics exited: " + self.log()[-2000:])
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=1) as r:
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

    def __enter__(self) -> VictoriaMetrics:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log(self) -> str:
        p = self.tmp / "victoria-metrics.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def export(self, match: str) -> dict[tuple[tuple[str, str], ...],
                                         list[tuple[int, float]]]:
        """Raw samples of the series matching ``match``: labels -> [(ts_ms, value)]."""
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
        params = {"query": expr}
        if at is not None:
            params["time"] = str(at)
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}/api/v1/query?{query}", timeout=10) as r:
            body = json.loads(r.read())
        result: list[dict[str, Any]] = body["data"]["result"]
        return result
