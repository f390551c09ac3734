"""A private Alertmanager 0.25 on 127.0.0.1, notifying a webhook URL the test runs.

``group_wait`` and ``group_interval`` are short (1s; 2s clustered) so
notifications come quickly; ``send_resolved`` is on. Alone it runs with an empty
``--cluster.listen-address`` (the default binds 0.0.0.0:9094); with
``cluster_port`` it gossips on loopback with the ``peers`` given.
``stop()`` sends SIGTERM and waits (the last clustered instance takes ~10 s).
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

from peers.process import HttpPeer

# A clustered member at position n waits n x peer_timeout before it notifies what
# the others have not. Keep peer_timeout well below group_interval: a member's
# flushes then line up with the first member's, and a flush taken just before a
# resolve is checked before the first member notifies the resolve (otherwise the
# late member sends the stale "firing" again).
PEER_TIMEOUT = 1.0
CLUSTER_GROUP_INTERVAL = 2.0


def _config(webhook_url: str, group_interval: float) -> str:
    return f"""
route:
  receiver: hook
  group_by: [alertname]
  group_wait: 1s
  group_interval: {group_interval:g}s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: {json.dumps(webhook_url)}
        send_resolved: true
"""


class Alertmanager(HttpPeer):
    name = "alertmanager"
    program = ("prometheus-alertmanager", "/usr/bin/prometheus-alertmanager")
    ready_timeout = 30.0
    stop_timeout = 20.0

    def __init__(self, tmp: Path, webhook_url: str, *, cluster_port: int | None = None,
                 peers: tuple[int, ...] = ()) -> None:
        super().__init__(tmp)
        self.webhook_url = webhook_url
        self.cluster_port = cluster_port
        self.peers = peers

    def _command(self) -> list[str]:
        conf = self.tmp / "alertmanager.yml"
        interval = 1.0 if self.cluster_port is None else CLUSTER_GROUP_INTERVAL
        conf.write_text(_config(self.webhook_url, interval))
        (self.tmp / "data").mkdir(exist_ok=True)
        args = [self.binary, f"--config.file={conf}", f"--storage.path={self.tmp / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=debug"]
        if self.cluster_port is None:
            args.append("--cluster.listen-address=")
        else:
            args += [f"--cluster.listen-address=127.0.0.1:{self.cluster_port}",
                     f"--cluster.peer-timeout={PEER_TIMEOUT * 1000:.0f}ms",
                     "--cluster.settle-timeout=2s", "--cluster.gossip-interval=100ms",
                     "--cluster.pushpull-interval=1s", "--cluster.reconnect-interval=1s"]
            args += [f"--cluster.peer=127.0.0.1:{p}" for p in self.peers]
        return args

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=5) as r:
            return json.loads(r.read())

    def cluster_peers(self) -> int:
        status = self.get("/api/v2/status")
        return len((status.get("cluster") or {}).get("peers") or [])

    def cluster_ready(self, peers: int) -> bool:
        """The cluster has ``peers`` members and has settled (it notifies only then)."""
        cluster = self.get("/api/v2/status").get("cluster") or {}
        return cluster.get("status") == "ready" and len(cluster.get("peers") or []) == peers

    def alerts(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.get("/api/v2/alerts")
        return result
