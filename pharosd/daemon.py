"""The daemon: builds the workers from a config, supervises them, talks to systemd.

The main thread runs ``Daemon.run``: signal handlers only enqueue the
signal number; the loop drains that queue (SIGTERM/SIGINT stop, SIGHUP
reloads and reopens files), lets the supervisor restart crashed workers,
sends ``READY=1`` after the first collection and ``WATCHDOG=1`` at half the
watchdog interval while every worker's heartbeat is fresh.

Nothing that can heal is fatal: a state directory, spill or outbox that
cannot be written at start (read-only, full, not a directory) is logged,
shown in ``status`` (``problems``) and ``STATUS=``, and retried; alerts go
on through the sinks, samples and events wait in memory (bounded).

A reload builds every new part first and swaps only when all of them
built: a config that does not parse, or a sink that cannot be built, is
logged error by error, shown in ``STATUS=`` and leaves the old config
running. Alert state survives a reload for every threshold whose
definition did not change.
"""

from __future__ import annotations

import os
import queue
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from pharosd import __version__, faults
from pharosd.alerting.config import ThresholdConfig
from pharosd.alerting.evaluator import Evaluator
from pharosd.alerting.rules import compile_rules
from pharosd.alerting.worker import EvaluatorWorker
from pharosd.bus import Bus
from pharosd.collection.worker import Collector
from pharosd.config import LoadedConfig, load_config
from pharosd.config.schema import Config
from pharosd.control.protocol import default_socket_path
from pharosd.control.server import ControlServer
from pharosd.errors import ConfigError, PharosError, SupervisorGaveUp
from pharosd.notify import Notifier
from pharosd.pipeline.worker import Pipeline
from pharosd.probes.factory import build_probe, status_thresholds
from pharosd.sinks.config import SinkConfig
from pharosd.sinks.factory import build_sink
from pharosd.sinks.outbox import outbox_path
from pharosd.sinks.worker import SinkWorker
from pharosd.source import Source
from pharosd.statistics.factory import build_statistic
from pharosd.supervisor import Supervisor
from pharosd.worker import Worker

log = structlog.get_logger(__name__)

EXIT_OK = 0
EXIT_CONFIG = 1
EXIT_GAVE_UP = 70
STOP_TIMEOUT = 4.0
STATE_RETRY = 5.0           # seconds between attempts to create an unusable state_dir


@dataclass
class _SinkSlot:
    cfg: SinkConfig
    worker: SinkWorker
    handle: int


def all_thresholds(config: Config) -> list[ThresholdConfig]:
    """The configured thresholds plus one status threshold per probe."""
    return [*config.thresholds, *status_thresholds(config.probes)]


def build_sources(config: Config) -> list[Source]:
    sources: list[Source] = [build_statistic(s, config.interval) for s in config.statistics]
    sources += [build_probe(p, config.interval) for p in config.probes]
    return sources


def describe(exc: BaseException) -> str:
    """An unexpected exception in one line: its type and its first 300 characters."""
    text = str(exc)
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


class Daemon:
    def __init__(self, loaded: LoadedConfig, *, config_path: str | None,
                 environ: Mapping[str, str] | None = None) -> None:
        self.environ = dict(os.environ if environ is None else environ)
        self.loaded = loaded
        self.config_path = config_path
        self.notifier = Notifier(self.environ)
        self._signals: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._faults = faults.parse(self.environ)
        cfg = loaded.config
        self.host = cfg.resolved_host()
        self.state_dir = cfg.resolved_state_dir()
        self.supervisor = Supervisor(cfg.supervisor.max_restarts, cfg.supervisor.period)
        self.bus = Bus()
        self.sinks: dict[str, _SinkSlot] = {}
        self.started_at = time.time()
        self.reload_state: dict[str, Any] = {"ok": True, "at": None, "errors": []}
        self.ready = False
        self._uplink_names: set[str] = set()
        self.state_dir_error: str | None = None
        self._next_state_check = 0.0

    # -- building ----------------------------------------------------------

    def _sink_worker(self, cfg: SinkConfig) -> SinkWorker:
        sink = build_sink(cfg, state_dir=self.state_dir, host=self.host)
        return SinkWorker(sink, cfg, outbox_path(self.state_dir, cfg.name))

    def _supervise(self, worker: Worker) -> None:
        self.supervisor.start(faults.wrap(worker, self._faults))

    def _build(self) -> None:
        cfg = self.loaded.config
        self._check_state_dir()
        for sink_cfg in cfg.sinks:
            worker = self._sink_worker(sink_cfg)
            handle = self.bus.subscribe(sink_cfg.name, worker.submit)
            self.sinks[sink_cfg.name] = _SinkSlot(sink_cfg, worker, handle)
        self.evaluator = EvaluatorWorker(
            Evaluator(all_thresholds(cfg), cfg, self.host), self.bus,
            state_path=os.path.join(self.state_dir, "alert-state.json"))
        self.pipeline = Pipeline(cfg, state_dir=self.state_dir, host=self.host)
        sources = build_sources(cfg)
        if self.pipeline.enabled:
            sources.append(self._telemetry(cfg))
        # offer() is a no-op while no receiver is configured; a reload may add one.
        consumers = [self.evaluator.submit, self.pipeline.offer]
        self.collector = Collector(sources, consumers)
        self.control = ControlServer(default_socket_path(self.environ, self.state_dir),
                                     self.state)

    def _check_state_dir(self) -> None:
        """Create the state directory; one that cannot be made is no reason not to run
        (the outboxes, the spill and the alert state each retry and say so)."""
        try:
            os.makedirs(self.state_dir, mode=0o750, exist_ok=True)
            if not os.access(self.state_dir, os.W_OK):
                raise PermissionError(f"{self.state_dir} is not writable")
        except OSError as e:
            error = e.strerror or str(e)
            if self.state_dir_error is None:
                log.error("state_dir_unavailable", path=self.state_dir, error=error,
                          note="running without durable state until it can be written")
            self.state_dir_error = error
            return
        if self.state_dir_error is not None:
            log.info("state_dir_recovered", path=self.state_dir)
        self.state_dir_error = None

    def problems(self) -> list[str]:
        """What is degraded now and heals by itself once fixed (``status``, STATUS=)."""
        out: list[str] = []
        if self.state_dir_error is not None:
            out.append(f"state_dir {self.state_dir}: {self.state_dir_error}")
        if self.pipeline.enabled and self.pipeline.spill_error is not None:
            out.append(f"spill: {self.pipeline.spill_error} (samples kept in memory)")
        for name, slot in list(self.sinks.items()):
            st = slot.worker.outbox_state()
            if st is not None:
                out.append(f"sink {name}: outbox {st} (events kept in memory)")
        return out

    def _sync_uplink_workers(self) -> None:
        """Start the uplink's workers when a reload turned it on; stop them when off."""
        running = set(self.supervisor.names())
        wanted = {w.name: w for w in self.pipeline.workers()} if self.pipeline.enabled else {}
        for name, worker in wanted.items():
            if name not in running:
                self._supervise(worker)
        for name in self._uplink_names - set(wanted):
            self.supervisor.stop(name, timeout=2.0)
        self._uplink_names = set(wanted)

    def _telemetry(self, cfg: Config) -> Source:
        from pharosd.pipeline.telemetry import TelemetrySource  # only with an uplink

        return TelemetrySource(self.pipeline, self._supervisor_stats, cfg.interval)

    def _supervisor_stats(self) -> dict[str, float]:
        return {"restarts": float(self.supervisor.total_restarts)}

    # -- running -----------------------------------------------------------

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self._signals.put(signum)

    def run(self) -> int:
        try:
            self._build()
        except PharosError as exc:
            log.error("startup_failed", error=str(exc))
            return EXIT_CONFIG
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._on_signal)
        for slot in self.sinks.values():
            self._supervise(slot.worker)
        self._supervise(self.evaluator)
        self._sync_uplink_workers()
        self._supervise(self.collector)
        self._supervise(self.control)
        log.info("daemon_started", version=__version__, config=self.loaded.source,
                 host=self.host, state_dir=self.state_dir, pid=os.getpid(),
                 statistics=len(self.loaded.config.statistics),
                 probes=len(self.loaded.config.probes),
                 thresholds=len(self.loaded.config.thresholds),
                 sinks=len(self.sinks), uplink=self.pipeline.enabled)
        try:
            return self._loop()
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                signal.signal(signum, signal.SIG_DFL)

    def _loop(self) -> int:
        wd = self.notifier.watchdog_interval
        next_ping = time.monotonic()
        while True:
            timeout = 1.0 if wd is None else max(0.0, min(1.0, next_ping - time.monotonic()))
            try:
                signum: int | None = self._signals.get(timeout=timeout)
            except queue.Empty:
                signum = None
            if signum in (signal.SIGTERM, signal.SIGINT):
                log.info("stop_requested", signal=signal.Signals(signum).name)
                return self._shutdown(EXIT_OK)
            if signum == signal.SIGHUP:
                self.reload()
            try:
                self.supervisor.check()
            except SupervisorGaveUp as exc:
                log.critical("supervisor_gave_up", error=str(exc))
                self.notifier.status(f"gave up: {exc}")
                return self._shutdown(EXIT_GAVE_UP)
            if self.state_dir_error is not None and time.monotonic() >= self._next_state_check:
                self._next_state_check = time.monotonic() + STATE_RETRY
                self._check_state_dir()
            if not self.ready and self.collector.first_collection.is_set():
                self.ready = True
                self.notifier.ready(self.status_line())
                log.info("daemon_ready")
            elif self.ready:
                self.notifier.status(self.status_line())
            if wd is not None and time.monotonic() >= next_ping:
                hung = self.supervisor.hung()
                if hung:
                    log.error("watchdog_withheld", hung_workers=hung)
                else:
                    self.notifier.watchdog()
                next_ping = time.monotonic() + wd

    def _shutdown(self, code: int) -> int:
        self.notifier.stopping()
        deadline = time.monotonic() + STOP_TIMEOUT
        self.supervisor.stop("collector", timeout=1.0)
        self.supervisor.stop_all(timeout=max(0.5, deadline - time.monotonic()))
        for slot in self.sinks.values():
            slot.worker.close()
        self.pipeline.close()
        log.info("daemon_stopped", exit_code=code)
        return code

    # -- reload --------------------------------------------------------------

    def reload(self) -> bool:
        """SIGHUP: reopen files; re-read the config and apply it if valid."""
        for slot in self.sinks.values():
            slot.worker.reopen()
        self._check_state_dir()          # an operator who fixed the disk may say so with HUP
        self.pipeline.retry_now()
        source = self.config_path
        log.info("reload_requested", config=self.loaded.source)
        try:
            new = load_config(source, environ=self.environ)
            self._apply(new)
        except Exception as exc:    # whatever it is, the running config stays
            if isinstance(exc, ConfigError):
                errors = [str(i) for i in exc.issues]
            elif isinstance(exc, PharosError):
                errors = [str(exc)]
            else:
                errors = [f"{self.loaded.source}: the new config could not be applied: "
                          f"{describe(exc)}"]
                log.error("reload_crashed", error=describe(exc), exc_info=True)
            for err in errors:
                log.error("reload_failed", error=err)
            self.reload_state = {"ok": False, "at": time.time(), "errors": errors}
            self.notifier.status(self.status_line())
            return False
        self.reload_state = {"ok": True, "at": time.time(), "errors": []}
        self.notifier.ready(self.status_line())
        log.info("reload_done", config=new.source, digest=new.digest[:12])
        return True

    def _apply(self, new: LoadedConfig) -> None:
        cfg = new.config
        old = self.loaded.config
        if cfg.resolved_state_dir() != self.state_dir or cfg.resolved_host() != self.host:
            log.warning("reload_needs_restart", keys="state_dir, host",
                        note="kept the running values; restart to apply")
        # Build everything that can fail before touching the running daemon.
        new_sinks = {s.name: s for s in cfg.sinks}
        built: dict[str, SinkWorker] = {}
        try:
            for name, sink_cfg in new_sinks.items():
                slot = self.sinks.get(name)
                if slot is None or slot.cfg != sink_cfg:
                    built[name] = self._sink_worker(sink_cfg)
            sources = build_sources(cfg)
            thresholds = all_thresholds(cfg)
            compile_rules(thresholds, cfg)   # fails here, not on the evaluator's thread
            if old.uplink != cfg.uplink or old.buffer != cfg.buffer or old.spill != cfg.spill:
                # Raises before changing anything when a secret file is unreadable.
                self.pipeline.reconfigure(cfg)
        except BaseException:
            for worker in built.values():
                worker.close()
            raise
        self.notifier.reloading()
        # Swap.
        for name in list(self.sinks):
            if name not in new_sinks or name in built:
                slot = self.sinks.pop(name)
                self.bus.unsubscribe(slot.handle)
                self.supervisor.stop(slot.worker.name, timeout=2.0)
                slot.worker.close()
        for name, worker in built.items():
            handle = self.bus.subscribe(name, worker.submit)
            self.sinks[name] = _SinkSlot(new_sinks[name], worker, handle)
            self._supervise(worker)
        self.evaluator.reconfigure(thresholds, cfg)
        self._sync_uplink_workers()
        if self.pipeline.enabled:
            sources.append(self._telemetry(cfg))
        self.collector.reconfigure(sources)
        self.supervisor.max_restarts = cfg.supervisor.max_restarts
        self.supervisor.period = cfg.supervisor.period
        self.loaded = new

    # -- state ---------------------------------------------------------------

    def status_line(self) -> str:
        if not self.reload_state["ok"]:
            errs = self.reload_state["errors"]
            return (f"reload failed ({len(errs)} error{'s' if len(errs) != 1 else ''}), "
                    f"running previous config: {errs[0] if errs else ''}")[:400]
        alerts = self.evaluator.open_alerts()
        firing = sum(1 for a in alerts if a.get("status") in ("firing", "resolving"))
        problems = self.problems()
        head = f"degraded: {problems[0]}; " if problems else "ok: "
        return (f"{head}{len(self.supervisor.names())} workers, {firing} alerts firing, "
                f"config {self.loaded.source}")[:400]

    def state(self) -> dict[str, Any]:
        """What ``pharosd status`` shows (called on the control worker's thread)."""
        return {
            "version": __version__,
            "pid": os.getpid(),
            "started_at": self.started_at,
            "host": self.host,
            "config": {"source": self.loaded.source, "loaded_at": self.loaded.loaded_at,
                       "digest": self.loaded.digest},
            "reload": dict(self.reload_state),
            "problems": self.problems(),
            "workers": self.supervisor.status(),
            "alerts": self.evaluator.open_alerts(),
            "sinks": [{"name": n, **s.worker.status()} for n, s in list(self.sinks.items())],
            "collector": self.collector.status(),
            "pipeline": self.pipeline.status() if self.pipeline.enabled else None,
        }
