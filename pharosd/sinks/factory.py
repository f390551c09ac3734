"""``build_sink``: a sink config becomes a ready ``Sink``.

Secrets given as ``*_file`` are read here (``pharosd.secretfile``: surrounding
whitespace stripped); a file that cannot be read is a ``ConfigError`` naming the key,
never the secret. Each kind's module is imported only when a sink of that
kind is built, so a daemon without HTTP sinks never loads requests.
``state_dir`` places the file sink's default path and
the Alertmanager sink's re-send state; ``ephemeral=True`` (test-alert)
keeps that state in memory only.
"""

from __future__ import annotations

import os

from pharosd.clock import Clock
from pharosd.secretfile import read_secret_file
from pharosd.sinks.base import Sink
from pharosd.sinks.config import (
    AlertmanagerSinkConfig,
    EmailSinkConfig,
    ExecSinkConfig,
    FileSinkConfig,
    LogSinkConfig,
    SinkConfig,
    SyslogSinkConfig,
    WebhookSinkConfig,
)
from pharosd.sinks.outbox import outbox_path


def read_secret(cfg: object, key: str) -> str | None:
    """The inline value of ``key``, else the stripped content of ``key_file``."""
    inline = getattr(cfg, key, None)
    if inline is not None:
        return str(inline)
    path = getattr(cfg, key + "_file", None)
    if path is None:
        return None
    return read_secret_file(str(path), f"sinks[{getattr(cfg, 'name', '?')}].{key}_file")


def default_file_path(state_dir: str) -> str:
    return os.path.join(state_dir, "alerts.jsonl")


def alertmanager_state_path(state_dir: str, name: str) -> str:
    base = os.path.basename(outbox_path(state_dir, name))[: -len(".db")]
    return os.path.join(state_dir, "alertmanager", base + ".json")


def _http_kwargs(cfg: WebhookSinkConfig | AlertmanagerSinkConfig) -> dict[str, object]:
    return {
        "headers": dict(cfg.headers),
        "token": read_secret(cfg, "token"),
        "username": cfg.username,
        "password": read_secret(cfg, "password"),
        "ca_file": cfg.ca_file,
        "cert_file": cfg.cert_file,
        "key_file": cfg.key_file,
        "insecure": cfg.insecure,
        "timeout": float(cfg.timeout),
    }


def build_sink(cfg: SinkConfig, *, state_dir: str, host: str, ephemeral: bool = False,
               clock: Clock | None = None) -> Sink:
    """Build the sink ``cfg`` describes; raises ``ConfigError`` for unreadable secrets."""
    if isinstance(cfg, FileSinkConfig):
        from pharosd.sinks.file import FileSink

        return FileSink(cfg.name, cfg.path or default_file_path(state_dir),
                        max_size=cfg.max_size, keep=cfg.keep, fsync=cfg.fsync)
    if isinstance(cfg, LogSinkConfig):
        from pharosd.sinks.log import LogSink

        return LogSink(cfg.name)
    if isinstance(cfg, SyslogSinkConfig):
        from pharosd.sinks.syslog import SyslogSink

        return SyslogSink(cfg.name, transport=cfg.transport, socket_path=cfg.socket,
                          host=cfg.host, port=cfg.port, fmt=cfg.format, facility=cfg.facility,
                          hostname=cfg.hostname or host, timeout=float(cfg.timeout))
    if isinstance(cfg, WebhookSinkConfig):
        from pharosd.sinks.webhook import WebhookSink

        kw = _http_kwargs(cfg)
        return WebhookSink(cfg.name, cfg.url, fmt=cfg.format, secret=read_secret(cfg, "secret"),
                           external_url=cfg.external_url, generator_url=cfg.generator_url,
                           clock=clock, **kw)  # type: ignore[arg-type]
    if isinstance(cfg, AlertmanagerSinkConfig):
        from pharosd.sinks.alertmanager import AlertmanagerSink

        state = None if ephemeral else alertmanager_state_path(state_dir, cfg.name)
        return AlertmanagerSink(cfg.name, cfg.urls, resend=float(cfg.resend),
                                resolved_for=float(cfg.resolved_for),
                                extra_labels=dict(cfg.labels), generator_url=cfg.generator_url,
                                state_path=state, clock=clock, **_http_kwargs(cfg))
    if isinstance(cfg, EmailSinkConfig):
        from pharosd.sinks.email import EmailSink

        return EmailSink(cfg.name, sender=cfg.sender, to=cfg.to, host=cfg.host,
                         port=cfg.resolved_port(), starttls=cfg.starttls, use_ssl=cfg.ssl,
                         username=cfg.username, password=read_secret(cfg, "password"),
                         subject=cfg.subject, ca_file=cfg.ca_file, insecure=cfg.insecure,
                         timeout=float(cfg.timeout))
    if isinstance(cfg, ExecSinkConfig):
        from pharosd.sinks.exec import ExecSink

        return ExecSink(cfg.name, cfg.command, env=dict(cfg.env), timeout=float(cfg.timeout),
                        clock=clock)
    raise TypeError(f"unknown sink config {type(cfg).__name__}")
