"""The supervisor: runs each worker on its own thread and restarts it when it crashes.

Restart policy, after OTP and supervisord: a crashed worker (``run`` raised,
or returned while not asked to stop) is logged with its traceback and
started again after a ``pharosd.backoff.Backoff`` that doubles from
``backoff_initial`` up to ``backoff_max`` (no jitter); a worker that then
runs for a whole ``period`` gets its backoff reset. More than
``max_restarts`` crashes across all workers within ``period`` raises
``SupervisorGaveUp``: the daemon exits 70 and systemd, the next supervisor
up, decides what comes next.

Each worker's restart state is a ``pharosd.slots.Slot`` (an explicit state
machine: starting, running, backoff, stopped), changed only by the thread
that drives the supervisor (the daemon's main thread, through ``start``,
``check`` and ``stop``); a worker thread only records how its own run ended
(``_Run``) and sets an event. A lock keeps ``status()`` and ``hung()``, read
from other threads (the control socket), consistent.

``check()`` also watches heartbeats: a worker whose last beat is older than
its ``heartbeat_timeout`` is logged ``worker_hung`` (error, once per hang)
and ``worker_resumed`` when it beats again, with or without systemd's
watchdog.

The driving thread need not poll: ``next_check()`` says how long it may
wait (until a restart comes due, at most ``IDLE_WAIT``, so a hang is noticed
within that of its timeout), and ``on_exit``, called from a worker's thread
as its run ends, wakes it for a crash at once.
"""

from __future__ import annotations

import threading
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from pharosd.backoff import Backoff
from pharosd.clock import Clock, SystemClock
from pharosd.errors import SupervisorGaveUp, describe_error
from pharosd.slots import HeartbeatChange, Slot, SlotState
from pharosd.worker import IDLE_WAIT, Worker, WorkerContext

log = structlog.get_logger(__name__)


@dataclass
class _Run:
    """One run of a worker on one thread. The thread writes ``error`` and then sets
    ``done``; the supervisor reads them only after ``done`` is set."""

    worker: Worker
    ctx: WorkerContext
    thread: threading.Thread | None = None
    error: str | None = None
    done: threading.Event = field(default_factory=threading.Event)


class Supervisor:
    def __init__(self, max_restarts: int = 5, period: float = 60.0,
                 backoff_initial: float = 0.5, backoff_max: float = 30.0,
                 clock: Clock | None = None,
                 on_exit: Callable[[], None] | None = None) -> None:
        self.max_restarts = max_restarts
        self.period = period
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self._clock: Clock = clock or SystemClock()
        self._backoff = Backoff(backoff_initial, backoff_max, jitter=0.0)
        self._lock = threading.Lock()
        self._slots: dict[str, Slot] = {}
        self._runs: dict[str, _Run] = {}
        self._crashes: deque[float] = deque()
        self.total_restarts = 0
        self.on_exit: Callable[[], None] = on_exit or (lambda: None)   # a run ended

    # -- lifecycle -----------------------------------------------------------

    def start(self, worker: Worker) -> None:
        with self._lock:
            if worker.name in self._slots:
                raise ValueError(f"a worker named {worker.name!r} is already supervised")
            slot = Slot(worker.name, worker.heartbeat_timeout)
            self._slots[worker.name] = slot
            self._spawn(slot, worker, self._clock.monotonic())

    def _spawn(self, slot: Slot, worker: Worker, now: float) -> None:
        run = _Run(worker, WorkerContext(threading.Event(), clock=self._clock))
        run.thread = threading.Thread(target=self._run, args=(run, self.on_exit),
                                      name=f"pharosd-{worker.name}", daemon=True)
        self._runs[slot.name] = run
        slot.started(now)
        run.thread.start()

    @staticmethod
    def _run(run: _Run, on_exit: Callable[[], None]) -> None:
        try:
            run.worker.run(run.ctx)
        except BaseException as exc:
            run.error = describe_error(exc)
            log.error("worker_crashed", worker=run.worker.name, error=run.error,
                      traceback=traceback.format_exc())
        else:
            if not run.ctx.stopping:
                run.error = "run() returned while not stopping"
                log.error("worker_exited", worker=run.worker.name)
        finally:
            run.done.set()
            on_exit()

    def stop(self, name: str, timeout: float = 4.0) -> bool:
        """Stop one worker (on reload); True if its thread ended in time."""
        with self._lock:
            slot = self._slots.pop(name, None)
            run = self._runs.pop(name, None)
            if slot is None or run is None:
                return True
            slot.stopped()
        return self._join([run], self._clock.monotonic() + timeout)

    def stop_all(self, timeout: float = 4.0) -> bool:
        """Ask every worker to stop and join them within ``timeout`` in all."""
        with self._lock:
            for slot in self._slots.values():
                slot.stopped()
            runs = list(self._runs.values())
            self._slots.clear()
            self._runs.clear()
        return self._join(runs, self._clock.monotonic() + timeout)

    def _join(self, runs: list[_Run], deadline: float) -> bool:
        for run in runs:
            run.ctx.stop()
        ok = True
        for run in runs:
            if run.thread is not None:
                run.thread.join(max(0.0, deadline - self._clock.monotonic()))
                if run.thread.is_alive():
                    ok = False
                    log.warning("worker_stop_timeout", worker=run.worker.name)
        return ok

    # -- the main thread's duty ---------------------------------------------

    def next_check(self, now: float | None = None) -> float:
        """Seconds until ``check`` has to run again (see the module docstring)."""
        now = self._clock.monotonic() if now is None else now
        with self._lock:
            due = [s.restart_at - now for s in self._slots.values()
                   if s.state is SlotState.BACKOFF]
        return max(0.0, min([IDLE_WAIT, *due]))

    def check(self, now: float | None = None) -> None:
        """Notice crashes, restart due workers, log hung ones; raises SupervisorGaveUp."""
        now = self._clock.monotonic() if now is None else now
        with self._lock:
            for name, slot in list(self._slots.items()):
                run = self._runs[name]
                if slot.state is SlotState.RUNNING and run.done.is_set():
                    self._record_crash(slot, run, now)
                elif slot.restart_due(now):
                    self._spawn(slot, run.worker, now)
                    self.total_restarts += 1
                    log.info("worker_restarted", worker=name, restarts=slot.restarts)
                else:
                    slot.ran_well(now, self.period)
                    self._watch_heartbeat(slot, run, now)

    def _record_crash(self, slot: Slot, run: _Run, now: float) -> None:
        error = run.error or "thread ended"
        self._crashes.append(now)
        while self._crashes and now - self._crashes[0] > self.period:
            self._crashes.popleft()
        if len(self._crashes) > self.max_restarts:
            raise SupervisorGaveUp(
                f"{len(self._crashes)} worker crashes within {self.period:g}s "
                f"(max_restarts {self.max_restarts}); last: {slot.name}: {error}")
        backoff = slot.crashed(error, now, self._backoff)
        log.warning("worker_restart_scheduled", worker=slot.name, backoff=round(backoff, 3))

    @staticmethod
    def _watch_heartbeat(slot: Slot, run: _Run, now: float) -> None:
        change = slot.heartbeat(run.ctx.last_beat, now)
        if change is HeartbeatChange.HUNG:
            log.error("worker_hung", worker=slot.name,
                      heartbeat_age=round(now - run.ctx.last_beat, 3),
                      heartbeat_timeout=slot.heartbeat_timeout)
        elif change is HeartbeatChange.RESUMED:
            log.warning("worker_resumed", worker=slot.name,
                        heartbeat_age=round(now - run.ctx.last_beat, 3))

    def healthy(self, now: float | None = None) -> bool:
        """True while every running worker has a fresh heartbeat (for WATCHDOG=1)."""
        return not self.hung(now)

    def hung(self, now: float | None = None) -> list[str]:
        now = self._clock.monotonic() if now is None else now
        with self._lock:
            return [name for name, slot in self._slots.items()
                    if slot.is_hung(self._runs[name].ctx.last_beat, now)]

    def status(self, now: float | None = None) -> list[dict[str, object]]:
        now = self._clock.monotonic() if now is None else now
        out: list[dict[str, object]] = []
        with self._lock:
            for name, slot in self._slots.items():
                run = self._runs[name]
                out.append({
                    "name": name,
                    "state": slot.state.value,
                    "alive": bool(run.thread and run.thread.is_alive()),
                    "restarts": slot.restarts,
                    "heartbeat_age": round(now - run.ctx.last_beat, 3),
                    "last_error": slot.last_error,
                })
        return out

    def names(self) -> list[str]:
        with self._lock:
            return list(self._slots)
