"""One remote_write receiver's settings, resolved: ``ReceiverSettings`` and ``resolve_settings``.

``resolve_settings`` turns a ``RemoteWriteConfig`` into ``ReceiverSettings``:
secret files are read (``pharosd.secretfile``), the protocol and auth
headers built, TLS options and defaults resolved. The headers are left out
of ``repr``; the URL is only ever logged or reported as ``safe_url``
(``pharosd.redact.redact_url``).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pharosd.pipeline.config import RemoteWriteConfig
from pharosd.pipeline.remote_write import headers
from pharosd.redact import redact_url
from pharosd.secretfile import read_secret_file

__all__ = ["ReceiverSettings", "resolve_settings"]


@dataclass(frozen=True)
class ReceiverSettings:
    """A receiver's config with secrets read and defaults resolved."""

    name: str
    url: str
    headers: Mapping[str, str] = field(repr=False)
    timeout: float
    verify: bool | str
    cert: tuple[str, str] | None
    external_labels: Mapping[str, str]
    batch: int
    flush: float
    min_backoff: float
    max_backoff: float
    max_pending: int
    capacity: int

    @property
    def safe_url(self) -> str:
        return redact_url(self.url)

    def transport_key(self) -> tuple[Any, ...]:
        """What a connection depends on: a change needs a new session."""
        return (self.url, self.verify, self.cert)


def resolve_settings(cfg: RemoteWriteConfig, *, index: int, host: str,
                     capacity: int) -> ReceiverSettings:
    """Read secret files and resolve defaults (raises ``ConfigError``)."""
    where = f"uplink.remote_write[{index}]"
    h: dict[str, str] = dict(cfg.headers)
    if cfg.basic_auth is not None:
        pw = cfg.basic_auth.password
        if cfg.basic_auth.password_file is not None:
            pw = read_secret_file(cfg.basic_auth.password_file,
                                  f"{where}.basic_auth.password_file")
        token = base64.b64encode(f"{cfg.basic_auth.username}:{pw or ''}".encode()).decode()
        h["Authorization"] = f"Basic {token}"
    bearer = cfg.bearer_token
    if cfg.bearer_token_file is not None:
        bearer = read_secret_file(cfg.bearer_token_file, f"{where}.bearer_token_file")
    if bearer:
        h["Authorization"] = f"Bearer {bearer}"
    verify: bool | str = True
    if cfg.tls.ca_file:
        verify = cfg.tls.ca_file
    elif cfg.tls.insecure:
        verify = False
    cert = (cfg.tls.cert_file, cfg.tls.key_file) if cfg.tls.cert_file and cfg.tls.key_file \
        else None
    external = {"host": host, "job": "pharosd"}
    external.update(cfg.external_labels)
    external = {k: v for k, v in external.items() if v}
    max_pending = cfg.max_pending if cfg.max_pending is not None else max(1, capacity // 2)
    return ReceiverSettings(
        name=cfg.receiver_name(), url=cfg.url, headers=headers(h), timeout=float(cfg.timeout),
        verify=verify, cert=cert, external_labels=external, batch=cfg.batch,
        flush=float(cfg.flush), min_backoff=float(cfg.min_backoff),
        max_backoff=float(cfg.max_backoff), max_pending=min(max_pending, capacity),
        capacity=capacity)
