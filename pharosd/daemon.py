"""The daemon: builds the workers from a config, supervises them, talks to systemd.

``pharosd run`` and ``pharosd.api`` share one path: ``start()`` builds and
starts every worker, ``serve()`` runs the supervisor's loop until a stop. The
main-thread parts are options: ``signals`` (handlers that only enqueue the
signal number) and ``sd_notify``; without them ``serve()`` may run on any
thread, and ``request_stop()`` ends it. The loop drains the queue (SIGTERM/SIGINT
or ``request_stop()`` stop, SIGHUP reloads and reopens files), lets the supervisor
restart crashed workers (a crash wakes it; else it sleeps ``next_check()``), sends
``READY=1`` after the control socket's first bind and the first collection, and
``WATCHDOG=1`` at half the watchdog interval while every heartbeat is fresh.

Nothing that can heal is fatal: an unusable state directory, spill or outbox
is logged, shown in ``status`` and ``STATUS=``, and retried (``statedir``).

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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from pharosd import __version__, faults
from pharosd.alerting.dispatch import NotifierWorker
from pharosd.alerting.evaluator import Evaluator
from pharosd.alerting.rules import compile_rules
from pharosd.alerting.worker import EvaluatorWorker
from pharosd.assembly import all_thresholds, build_sources, routes, schedule
from pharosd.bus import Bus
from pharosd.clock import Clock, SystemClock
from pharosd.collection.worker import Collector
from pharosd.config import LoadedConfig, load_config
from pharosd.config.loader import issue_at
from pharosd.config.schema import Config
from pharosd.control.protocol import Command, Peer, default_socket_path
from pharosd.control.server import ControlServer
from pharosd.errors import ConfigError, PharosError, SupervisorGaveUp, describe_error
from pharosd.http.store import LatestValues
from pharosd.model import labels_of
from pharosd.notify import Notifier
from pharosd.pipeline.worker import Pipeline
from pharosd.sinks.config import SinkConfig, delivery_part
from pharosd.sinks.factory import build_sink
from pharosd.sinks.outbox import outbox_path
from pharosd.sinks.worker import SinkWorker
from pharosd.source import Source
from pharosd.statedir import StateDir, problems
from pharosd.supervisor import Supervisor
from pharosd.worker import Worker

if TYPE_CHECKING:  # the listener's modules are imported only when http is on
    from pharosd.http.config import HttpConfig
    from pharosd.http.worker import HttpWorker, Listener

log = structlog.get_logger(__name__)

EXIT_OK = 0
EXIT_CONFIG = 1
EXIT_GAVE_UP = 70
STOP_TIMEOUT = 4.0
STOP_REQUEST = 0          # queued by request_stop(); never a signal number
WAKE = -1                 # queued after the first collection: send READY=1 now


@dataclass
class _SinkSlot:
    cfg: SinkConfig
    worker: SinkWorker


class Daemon:
    def __init__(self, loaded: LoadedConfig, *, config_path: str | None,
                 environ: Mapping[str, str] | None = None, signals: bool = True,
                 sd_notify: bool = True,
                 reload_config: Callable[[], LoadedConfig] | None = None,
                 clock: Clock | None = None) -> None:
        self.clock: Clock = clock or SystemClock()
        self.environ = dict(os.environ if environ is None else environ)
        self.loaded = loaded
        self.config_path = config_path
        self._reload_config = reload_config or (   # the file again, or the embedder's
            lambda: load_config(self.config_path, environ=self.environ))
        self.signals = signals
        self.notifier = Notifier(self.environ if sd_notify else {})
        self._signals: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._faults = faults.parse(self.environ)
        cfg = loaded.config
        self.host = cfg.resolved_host()
        self.state_dir = cfg.resolved_state_dir()
        self.supervisor = Supervisor(cfg.supervisor.max_restarts, cfg.supervisor.period,
                                     clock=self.clock, on_exit=lambda: self._signals.put(WAKE))
        self.bus = Bus()
        self.sinks: dict[str, _SinkSlot] = {}
        self.started_at = self.clock.wall()
        self.reload_state: dict[str, Any] = {"ok": True, "at": None, "errors": []}
        self.ready = False
        self._uplink_names: set[str] = set()
        self.state_store = StateDir(self.state_dir)
        self.latest = LatestValues()
        self.http: HttpWorker | None = None
        self._gave_up = False

    # -- building ----------------------------------------------------------

    def _sink_worker(self, cfg: SinkConfig) -> SinkWorker:
        sink = build_sink(cfg, state_dir=self.state_dir, host=self.host, clock=self.clock)
        return SinkWorker(sink, cfg, outbox_path(self.state_dir, cfg.name), clock=self.clock)

    def _supervise(self, worker: Worker) -> None:
        self.supervisor.start(faults.wrap(worker, self._faults))

    def _build(self) -> None:
        cfg = self.loaded.config
        self.state_store.check()
        for sink_cfg in cfg.sinks:
            self.sinks[sink_cfg.name] = _SinkSlot(sink_cfg, self._sink_worker(sink_cfg))
        # bus -> notifier (routing, silences, maintenance, reminders) -> sinks' outboxes
        self.alerts_out = NotifierWorker(routes(cfg), schedule(cfg.maintenance, self.environ),
                                         self._submitters(), state_dir=self.state_dir)
        self.alerts_out.load()
        self.bus.subscribe("notifier", self.alerts_out.publish)
        self.evaluator = EvaluatorWorker(
            Evaluator(all_thresholds(cfg), cfg, self.host), self.bus, clock=self.clock,
            state_path=os.path.join(self.state_dir, "alert-state.json"),
            reconcile=self.alerts_out.reconcile)
        self.pipeline = Pipeline(cfg, state_dir=self.state_dir, host=self.host, clock=self.clock)
        sources = build_sources(cfg)
        if self.pipeline.enabled or cfg.http.enabled:
            sources.append(self._telemetry(cfg))
        consumers = [self.evaluator.submit, self.pipeline.offer, self.latest.offer]
        self.collector = Collector(sources, consumers, clock=self.clock,
                                   on_first_collection=lambda: self._signals.put(WAKE))
        self.control = ControlServer(default_socket_path(self.environ, self.state_dir),
                                     self.state, commands=self._commands(), clock=self.clock)
        self.bus.subscribe("watchers", self.control.publish)    # `pharosd watch`
        if cfg.http.enabled:
            self.http = self._http_worker(self._open_listener(cfg.http, self.loaded.source))

    def _submitters(self) -> dict[str, Any]:
        return {name: slot.worker.submit for name, slot in self.sinks.items()}

    def _commands(self) -> dict[str, Command]:
        out = self.alerts_out

        def uid(peer: Peer | None) -> int | None:
            return None if peer is None else peer.uid

        return {
            "silence_add": Command(lambda req, peer: out.handle_add(req, uid(peer)),
                                   changes=True),
            "silence_expire": Command(lambda req, peer: out.handle_expire(req, uid(peer)),
                                      changes=True),
            "silence_list": Command(lambda req, peer: {"silences": out.silences()}),
        }

    def problems(self) -> list[str]:
        """What is degraded now and heals by itself once fixed (``status``, STATUS=)."""
        spill = self.pipeline.spill_error if self.pipeline.enabled else None
        return problems(self.state_store, spill,
                        {n: s.worker.outbox_state() for n, s in list(self.sinks.items())})

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
        from pharosd.pipeline.telemetry import TelemetrySource  # only with an uplink or http

        return TelemetrySource(self.pipeline, self._supervisor_stats, cfg.interval,
                               clock=self.clock)

    def _supervisor_stats(self) -> dict[str, float]:
        return {"restarts": float(self.supervisor.total_restarts)}

    # -- the HTTP listener ---------------------------------------------------------

    @staticmethod
    def _open_listener(cfg: HttpConfig, source: str) -> Listener:
        """Bind and read its files; a failure is a positioned config error."""
        from pharosd.http.worker import ListenerError, exposure_warning, open_listener
        try:
            listener = open_listener(cfg)
        except ListenerError as exc:
            raise ConfigError([issue_at(source, exc.key, str(exc))]) from None
        warning = exposure_warning(cfg)
        if warning:
            log.warning("http_listener_exposed", problem=warning,
                        hint="set http.tls and http.basic_auth, or listen on 127.0.0.1")
        return listener

    def _http_worker(self, listener: Listener) -> HttpWorker:
        from pharosd.http.view import LiveView, listener_families
        from pharosd.http.worker import HttpWorker
        def counters() -> list[Any]:
            http = self.http
            return listener_families(http.status(), dict(http.requests)) if http else []

        def help_for(metric: str) -> str | None:
            from pharosd.alerting.summary import metric_help
            from pharosd.pipeline.telemetry import HELP
            return HELP.get(metric) or metric_help(metric)

        view = LiveView(self.latest, state=self.state, alerts=self._alerts_with_holds,
                        ready=self.collector.first_collection.is_set,
                        healthy=lambda: not self._gave_up, help_for=help_for,
                        refresh=lambda: float(self.loaded.config.http.refresh),
                        counters=counters, clock=self.clock)
        return HttpWorker(listener, view, clock=self.clock)

    def _prepare_http(self, cfg: HttpConfig, source: str) -> Listener | None:
        """Open what a reload needs before the swap: a new listener when the address
        changed, or the files of the same one; None when the listener goes or stays."""
        running = self.http
        if not cfg.enabled:
            return None
        if running is not None and running.cfg == cfg:
            return None
        if running is not None and running.cfg.listen == cfg.listen:
            from pharosd.http.worker import ListenerError, open_listener
            try:
                return open_listener(cfg, sock=running.listening_socket)
            except ListenerError as exc:
                raise ConfigError([issue_at(source, exc.key, str(exc))]) from None
        return self._open_listener(cfg, source)

    def _swap_http(self, cfg: HttpConfig, prepared: Listener | None) -> None:
        running = self.http
        if running is not None and (not cfg.enabled or
                                    (prepared is not None and prepared.sock is not
                                     running.listening_socket)):
            self.supervisor.stop(running.name, timeout=2.0)
            running.close()
            self.http = None
            log.info("http_stopped", listen=running.cfg.listen)
        if prepared is None:
            return
        if self.http is not None:
            self.http.reconfigure(prepared)
            log.info("http_reconfigured", listen=cfg.listen)
            return
        self.http = self._http_worker(prepared)
        self._supervise(self.http)

    # -- running -----------------------------------------------------------

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self._signals.put(signum)

    def run(self) -> int:
        """``pharosd run``: start, then serve on this (the main) thread."""
        try:
            self.start()
        except PharosError as exc:
            log.error("startup_failed", error=str(exc))
            return EXIT_CONFIG
        return self.serve()

    def start(self) -> None:
        """Build every worker and start it; raises ``PharosError`` when a part cannot
        be built. Workers added with ``add_worker`` before ``serve`` are supervised too."""
        self._build()
        for signum in self._handled_signals():
            signal.signal(signum, self._on_signal)
        for slot in self.sinks.values():
            self._supervise(slot.worker)
        self._supervise(self.alerts_out)
        self._supervise(self.evaluator)
        self._sync_uplink_workers()
        self._supervise(self.control)      # READY=1 after its first bind: `status` answers
        self.control.first_bind.wait(2.0)
        self._supervise(self.collector)
        if self.http is not None:
            self._supervise(self.http)
        cfg = self.loaded.config
        log.info("daemon_started", version=__version__, config=self.loaded.source,
                 host=self.host, state_dir=self.state_dir, pid=os.getpid(),
                 statistics=len(cfg.statistics), probes=len(cfg.probes),
                 thresholds=len(cfg.thresholds), sinks=len(self.sinks),
                 uplink=self.pipeline.enabled, http=cfg.http.listen or "off")

    def add_worker(self, worker: Worker) -> None:
        """Supervise one more worker (between ``start`` and ``serve``)."""
        self._supervise(worker)

    def request_stop(self) -> None:
        """Ask ``serve`` to shut down (from any thread); it returns 0."""
        self._signals.put(STOP_REQUEST)

    def serve(self) -> int:
        """The supervisor's loop until a stop; returns the exit code."""
        try:
            return self._loop()
        finally:
            for signum in self._handled_signals():
                signal.signal(signum, signal.SIG_DFL)

    def _handled_signals(self) -> tuple[int, ...]:
        return (signal.SIGTERM, signal.SIGINT, signal.SIGHUP) if self.signals else ()

    def _loop(self) -> int:
        wd = self.notifier.watchdog_interval
        next_ping = self.clock.monotonic()
        while True:
            timeout = self.supervisor.next_check()
            if wd is not None:
                timeout = max(0.0, min(timeout, next_ping - self.clock.monotonic()))
            try:
                signum: int | None = self._signals.get(timeout=timeout)
            except queue.Empty:
                signum = None
            if signum == STOP_REQUEST:
                log.info("stop_requested", by="request_stop")
                return self._shutdown(EXIT_OK)
            if signum in (signal.SIGTERM, signal.SIGINT):
                log.info("stop_requested", signal=signal.Signals(signum).name)
                return self._shutdown(EXIT_OK)
            if signum == signal.SIGHUP:
                self.reload()
            try:
                self.supervisor.check()
            except SupervisorGaveUp as exc:
                self._gave_up = True
                log.critical("supervisor_gave_up", error=str(exc))
                self.notifier.status(f"gave up: {exc}")
                return self._shutdown(EXIT_GAVE_UP)
            self.state_store.maybe_retry()
            if not self.ready and self.collector.first_collection.is_set():
                self.ready = True
                self.notifier.ready(self.status_line())
                log.info("daemon_ready")
            elif self.ready:
                self.notifier.status(self.status_line())
            if wd is not None and self.clock.monotonic() >= next_ping:
                hung = self.supervisor.hung()
                if hung:
                    log.error("watchdog_withheld", hung_workers=hung)
                else:
                    self.notifier.watchdog()
                next_ping = self.clock.monotonic() + wd

    def _shutdown(self, code: int) -> int:
        self.notifier.stopping()
        deadline = self.clock.monotonic() + STOP_TIMEOUT
        self.supervisor.stop("collector", timeout=1.0)
        self.supervisor.stop_all(timeout=max(0.5, deadline - self.clock.monotonic()))
        for slot in self.sinks.values():
            slot.worker.close()
        self.pipeline.close()
        if self.http is not None:
            self.http.close()
        # A clean stop is news; any other exit code is the reason systemd restarts us.
        (log.info if code == EXIT_OK else log.error)("daemon_stopped", exit_code=code)
        return code

    # -- reload --------------------------------------------------------------

    def reload(self) -> bool:
        """SIGHUP: reopen files; re-read the config and apply it if valid."""
        for slot in self.sinks.values():
            slot.worker.reopen()
        self.state_store.check()         # an operator who fixed the disk may say so with HUP
        self.pipeline.retry_now()
        log.info("reload_requested", config=self.loaded.source)
        try:
            new = self._reload_config()
            self._apply(new)
        except Exception as exc:    # whatever it is, the running config stays
            if not isinstance(exc, PharosError):
                log.error("reload_crashed", error=describe_error(exc)[:300], exc_info=True)
            errors = ([str(i) for i in exc.issues] if isinstance(exc, ConfigError) else
                      [str(exc)] if isinstance(exc, PharosError) else
                      [f"{self.loaded.source}: not applied: {describe_error(exc)[:300]}"])
            for err in errors:
                log.error("reload_failed", error=err)
            self.reload_state = {"ok": False, "at": self.clock.wall(), "errors": errors}
            self.notifier.status(self.status_line())
            return False
        self.reload_state = {"ok": True, "at": self.clock.wall(), "errors": []}
        self.notifier.ready(self.status_line())
        log.info("reload_done", config=new.source, digest=new.digest[:12],
                 drop_ins=max(0, len(new.files) - 1))
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
        http: Listener | None = None
        try:
            for name, sink_cfg in new_sinks.items():
                slot = self.sinks.get(name)
                if slot is None or delivery_part(slot.cfg) != delivery_part(sink_cfg):
                    built[name] = self._sink_worker(sink_cfg)
            sources = build_sources(cfg)
            thresholds = all_thresholds(cfg)
            compile_rules(thresholds, cfg)   # fails here, not on the evaluator's thread
            notify_parts = routes(cfg), schedule(cfg.maintenance, self.environ)
            http = self._prepare_http(cfg.http, new.source)
            if old.uplink != cfg.uplink or old.buffer != cfg.buffer or old.spill != cfg.spill:
                # Raises before changing anything when a secret file is unreadable.
                self.pipeline.reconfigure(cfg)
        except BaseException:
            for worker in built.values():
                worker.close()
            if http is not None and (self.http is None
                                     or http.sock is not self.http.listening_socket):
                http.close()
            raise
        self.notifier.reloading()
        # Swap: the notifier hands events to the new workers before the old ones close.
        old_slots = {n: s for n, s in self.sinks.items() if n not in new_sinks or n in built}
        for name in old_slots:
            del self.sinks[name]
        for name, worker in built.items():
            self.sinks[name] = _SinkSlot(new_sinks[name], worker)
        for name, slot in self.sinks.items():
            slot.cfg = new_sinks[name]              # a filter or repeat that changed
        self.alerts_out.reconfigure(*notify_parts, self._submitters())
        for name, slot in old_slots.items():
            self.supervisor.stop(slot.worker.name, timeout=2.0)
            slot.worker.close()
            if name in built:    # the same sink, rebuilt: its counts go on
                built[name].carry_over(slot.worker)
        for worker in built.values():
            self._supervise(worker)
        self.evaluator.reconfigure(thresholds, cfg)
        self._sync_uplink_workers()
        self._swap_http(cfg.http, http)
        if self.pipeline.enabled or cfg.http.enabled:
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
                       "digest": self.loaded.digest, "files": list(self.loaded.files)},
            "reload": dict(self.reload_state),
            "problems": self.problems(),
            "workers": self.supervisor.status(),
            "alerts": self._alerts_with_holds(),
            **self.alerts_out.status(),
            "sinks": [{"name": n, **s.worker.status()} for n, s in list(self.sinks.items())],
            "collector": self.collector.status(),
            "pipeline": self.pipeline.status() if self.pipeline.enabled else None,
            "http": self.http.status() if self.http is not None else None,
        }

    def _alerts_with_holds(self) -> list[dict[str, Any]]:
        """Open alerts; a silenced one says by what (``silenced_by``)."""
        alerts = self.evaluator.open_alerts()
        for a in alerts:
            hold = self.alerts_out.hold(a["rule"], labels_of(a["labels"]))
            if hold is not None:
                a["silenced_by"] = hold.to_data()
        return alerts
