"""The embedding API: pharosd inside another Python program (the seed's start/subscribe/stop).

::

    import pharosd.api

    handle = pharosd.api.start({"statistics": ["cpu"], "thresholds": [
        {"name": "cpu-busy", "metric": "cpu.percent", "above": 90}]})
    token = handle.subscribe(lambda event: print(event.to_json()))
    handle.status()            # what `pharosd status --json` shows, and more
    handle.unsubscribe(token)
    handle.stop()              # safe to call twice

``start(config)`` takes a path to a pharos.yaml, a mapping with the same keys
as the YAML, or None (the embedded default). It builds the daemon through
the same composition as ``pharosd run`` (``pharosd.daemon.Daemon.start``)
and runs the supervisor's loop on a thread of its own (``pharosd-supervisor``).
Unless asked (``signals=True``, ``sd_notify=True``) it installs no signal
handler and sends nothing to systemd, even with ``NOTIFY_SOCKET`` set. It does
not configure logging: pharosd logs through structlog, as the host program
configures it (``pharosd.logs.configure`` is what the command line uses).

Subscribers get every alert event (a ``pharosd.model.AlertEvent``; ``to_dict()``
is the JSON contract of docs/alerting.md) on one thread of their own
(``subscribers``, a supervised worker), so a slow callback never holds up
alerting: the events wait in a bounded queue (``QUEUE_CAPACITY``; when it is
full the newest event is dropped and counted). A callback that raises is
logged (``subscriber_failed``) and counted, and stays subscribed, as on the
bus. A mapping config has no file to re-read: a reload (SIGHUP with
``signals=True``) applies the same mapping again.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import structlog
import yaml

from pharosd.config import LoadedConfig, load_config, parse_config
from pharosd.daemon import STOP_TIMEOUT, Daemon
from pharosd.digest import sha256
from pharosd.errors import ConfigError, ConfigIssue
from pharosd.model import AlertEvent
from pharosd.worker import IDLE_WAIT, WorkerContext

log = structlog.get_logger(__name__)

Callback = Callable[[AlertEvent], None]
MAPPING_SOURCE = "<mapping>"
QUEUE_CAPACITY = 1000


def start(config: str | os.PathLike[str] | Mapping[str, Any] | None = None, *,
          environ: Mapping[str, str] | None = None, signals: bool = False,
          sd_notify: bool = False) -> Handle:
    """Start pharosd in this process; raises ``ConfigError`` for a bad config and
    ``PharosError`` when a part (a sink, a plugin) cannot be built."""
    env = dict(os.environ if environ is None else environ)
    if isinstance(config, Mapping):
        data = dict(config)
        loaded = load_mapping(data, env)
        daemon = Daemon(loaded, config_path=None, environ=env, signals=signals,
                        sd_notify=sd_notify, reload_config=lambda: load_mapping(data, env))
    else:
        path = None if config is None else os.fspath(config)
        daemon = Daemon(load_config(path, environ=env), config_path=path, environ=env,
                        signals=signals, sd_notify=sd_notify)
    return Handle(daemon)


def load_mapping(data: Mapping[str, Any], environ: Mapping[str, str]) -> LoadedConfig:
    """A config mapping, checked as its YAML would be; errors name the key path
    (there are no lines to point at)."""
    issues: list[ConfigIssue] = []
    plain = _plain(data, "", issues)
    if issues:
        raise ConfigError(issues)
    text = yaml.safe_dump(plain, sort_keys=False, allow_unicode=True)
    try:
        config = parse_config(text, MAPPING_SOURCE, environ)
    except ConfigError as e:
        raise ConfigError([replace(i, line=0, column=0) for i in e.issues]) from None
    return LoadedConfig(config, MAPPING_SOURCE, time.time(),
                        sha256(text.encode()).hexdigest())


def _plain(value: Any, path: str, issues: list[ConfigIssue]) -> Any:
    """``value`` as YAML-able plain data; anything else is an issue at ``path``."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                issues.append(ConfigIssue(MAPPING_SOURCE, 0, 0, path,
                                          f"expected string keys, got {k!r}"))
                continue
            out[k] = _plain(v, f"{path}.{k}" if path else k, issues)
        return out
    if isinstance(value, list | tuple):
        return [_plain(v, f"{path}[{i}]", issues) for i, v in enumerate(value)]
    issues.append(ConfigIssue(MAPPING_SOURCE, 0, 0, path,
                              f"expected a string, number, bool, None, list or mapping, "
                              f"got {type(value).__name__}"))
    return None


class Subscribers:
    """The ``subscribers`` worker: hands each alert event to every callback, in turn."""

    name = "subscribers"
    heartbeat_timeout = 60.0

    def __init__(self, capacity: int = QUEUE_CAPACITY) -> None:
        self._queue: queue.Queue[AlertEvent | None] = queue.Queue(maxsize=capacity)
        self._lock = threading.Lock()
        self._callbacks: dict[int, Callback] = {}
        self._tokens = itertools.count(1)
        self.delivered = 0
        self.dropped = 0
        self.failures = 0

    def add(self, callback: Callback) -> int:
        if not callable(callback):
            raise TypeError(f"expected a callable, got {type(callback).__name__}")
        with self._lock:
            token = next(self._tokens)
            self._callbacks[token] = callback
        return token

    def remove(self, token: int) -> bool:
        with self._lock:
            return self._callbacks.pop(token, None) is not None

    def offer(self, event: AlertEvent) -> None:
        """On the bus (the evaluator's thread): queue the event, never block."""
        with self._lock:
            if not self._callbacks:
                return
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            with self._lock:
                self.dropped += 1
                first = self.dropped == 1
            if first:
                log.warning("subscriber_queue_full", capacity=self._queue.maxsize,
                            note="newest events dropped; counted in status")

    def _wake(self) -> None:
        with contextlib.suppress(queue.Full):       # full: it is awake anyway
            self._queue.put_nowait(None)

    def run(self, ctx: WorkerContext) -> None:
        ctx.on_stop(self._wake)
        while not ctx.stopping:
            ctx.beat()
            try:
                event = self._queue.get(timeout=IDLE_WAIT)
            except queue.Empty:
                continue
            if event is None:
                continue
            with self._lock:
                callbacks = list(self._callbacks.items())
            for token, callback in callbacks:
                try:
                    callback(event)
                except Exception as exc:
                    with self._lock:
                        self.failures += 1
                    log.error("subscriber_failed", subscriber=f"api#{token}",
                              event_id=event.id, error=repr(exc), exc_info=True)
                else:
                    with self._lock:
                        self.delivered += 1
                ctx.beat()

    def status(self) -> dict[str, int]:
        with self._lock:
            return {"subscribed": len(self._callbacks), "queued": self._queue.qsize(),
                    "delivered": self.delivered, "dropped": self.dropped,
                    "failures": self.failures}


class Handle:
    """A running pharosd; see the module docstring."""

    def __init__(self, daemon: Daemon) -> None:
        self._daemon = daemon
        self._subscribers = Subscribers()
        self._lock = threading.Lock()
        self._exit_code: int | None = None
        daemon.start()
        daemon.bus.subscribe("api", self._subscribers.offer)
        daemon.add_worker(self._subscribers)
        self._thread = threading.Thread(target=self._serve, name="pharosd-supervisor",
                                        daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        code = self._daemon.serve()
        with self._lock:
            self._exit_code = code

    def subscribe(self, callback: Callback) -> int:
        """Call ``callback(event)`` for every alert event from now on; returns a token."""
        return self._subscribers.add(callback)

    def unsubscribe(self, token: int) -> bool:
        """Stop calling the callback of ``token``; False if it was not subscribed."""
        return self._subscribers.remove(token)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def status(self) -> dict[str, Any]:
        """``pharosd status --json``'s object, with ``running``, ``ready`` (every
        statistic ran once: when ``pharosd run`` sends READY=1), ``exit_code`` and
        ``subscribers`` (subscribed, queued, delivered, dropped, failures)."""
        with self._lock:
            code = self._exit_code
        out: dict[str, Any] = {"running": self.running, "ready": self._daemon.ready,
                               "exit_code": code}
        if self.running:
            out.update(self._daemon.state())
        out["subscribers"] = self._subscribers.status()
        return out

    def wait(self, timeout: float | None = None) -> int | None:
        """Block until pharosd stops (``stop()``, a signal, or the supervisor gave up);
        its exit code (0, or 70), or None if ``timeout`` passed first."""
        self._thread.join(timeout)
        with self._lock:
            return self._exit_code

    def stop(self, timeout: float = STOP_TIMEOUT + 6.0) -> int | None:
        """Stop every worker and close the outboxes; the exit code (0 for a clean stop),
        or None if the shutdown did not end within ``timeout``. Safe to call again."""
        if self._thread.is_alive():
            self._daemon.request_stop()
        return self.wait(timeout)

    def __enter__(self) -> Handle:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
