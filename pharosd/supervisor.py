"""The supervisor: runs each worker on its own thread and restarts it when it crashes.

Restart policy, after OTP and supervisord: a crashed worker (``run`` raised,
or returned while not asked to stop) is logged with its traceback and
started again after a ``pharosd.backoff.Backoff`` that doubles from
``backoff_initial`` up to ``backoff_max`` (no jitter); a worker that then
runs for a whole ``period`` gets its backoff reset. More than
``max_restarts`` crashes across all workers within ``period`` raises
``SupervisorGaveUp``: the daemon exits 70 and systemd, the next supervisor
up, decides what comes next.

Everything here is driven from the main thread by ``check()``; worker
threads never touch the supervisor's state beyond their own slot.
"""

from __future__ import annotations

import threading
import traceback
from collections import deque
from dataclasses import dataclass

import structlog

from pharosd.backoff import Backoff
from pharosd.clock import Clock, SystemClock
from pharosd.errors import SupervisorGaveUp, describe_error
from pharosd.worker import Worker, WorkerContext

log = structlog.get_logger(__name__)


@dataclass
class _Slot:
    worker: Worker
    ctx: WorkerContext
    thread: threading.Thread | None = None
    state: str = "starting"        # running | backoff | stopped
    restarts: int = 0
    backoff: float = 0.0
    crashes_in_row: int = 0        # since the last reset of the backoff
    restart_at: float = 0.0
    started_at: float = 0.0
    crashed: bool = False          # set by the thread when run() raised/returned
    last_error: str | None = None
    stopping: bool = False


class Supervisor:
    def __init__(self, max_restarts: int = 5, period: float = 60.0,
                 backoff_initial: float = 0.5, backoff_max: float = 30.0,
                 clock: Clock | None = None) -> None:
        self.max_restarts = max_restarts
        self.period = period
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self._backoff = Backoff(backoff_initial, backoff_max, jitter=0.0)
        self._clock: Clock = clock or SystemClock()
        self._slots: dict[str, _Slot] = {}
        self._crashes: deque[float] = deque()
        self.total_restarts = 0

    # -- lifecycle -----------------------------------------------------------

    def start(self, worker: Worker) -> None:
        if worker.name in self._slots:
            raise ValueError(f"a worker named {worker.name!r} is already supervised")
        slot = _Slot(worker=worker, ctx=WorkerContext(threading.Event(), self._clock))
        self._slots[worker.name] = slot
        self._spawn(slot)

    def _spawn(self, slot: _Slot) -> None:
        slot.ctx = WorkerContext(threading.Event(), self._clock)
        slot.crashed = False
        slot.started_at = self._clock.monotonic()
        slot.state = "running"
        thread = threading.Thread(target=self._run, args=(slot, slot.ctx),
                                  name=f"pharosd-{slot.worker.name}", daemon=True)
        slot.thread = thread
        thread.start()

    @staticmethod
    def _run(slot: _Slot, ctx: WorkerContext) -> None:
        try:
            slot.worker.run(ctx)
        except BaseException as exc:
            slot.last_error = describe_error(exc)
            log.error("worker_crashed", worker=slot.worker.name, error=slot.last_error,
                      traceback=traceback.format_exc())
            slot.crashed = True
            return
        if not ctx.stopping:
            slot.last_error = "run() returned while not stopping"
            log.error("worker_exited", worker=slot.worker.name)
            slot.crashed = True

    def stop(self, name: str, timeout: float = 4.0) -> bool:
        """Stop one worker (on reload); True if its thread ended in time."""
        slot = self._slots.pop(name, None)
        if slot is None:
            return True
        return self._join([slot], self._clock.monotonic() + timeout)

    def stop_all(self, timeout: float = 4.0) -> bool:
        """Ask every worker to stop and join them within ``timeout`` in all."""
        slots = list(self._slots.values())
        self._slots.clear()
        return self._join(slots, self._clock.monotonic() + timeout)

    def _join(self, slots: list[_Slot], deadline: float) -> bool:
        for slot in slots:
            slot.stopping = True
            slot.state = "stopped"
            slot.ctx.stop()
        ok = True
        for slot in slots:
            if slot.thread is not None:
                slot.thread.join(max(0.0, deadline - self._clock.monotonic()))
                if slot.thread.is_alive():
                    ok = False
                    log.warning("worker_stop_timeout", worker=slot.worker.name)
        return ok

    # -- the main thread's duty ---------------------------------------------

    def check(self, now: float | None = None) -> None:
        """Notice crashes and restart due workers; raises SupervisorGaveUp."""
        now = self._clock.monotonic() if now is None else now
        for slot in list(self._slots.values()):
            if slot.state == "running" and slot.crashed:
                self._record_crash(slot, now)
            elif slot.state == "running" and slot.thread and not slot.thread.is_alive():
                slot.crashed = True
                self._record_crash(slot, now)
            elif slot.state == "backoff" and now >= slot.restart_at:
                slot.restarts += 1
                self.total_restarts += 1
                log.info("worker_restarted", worker=slot.worker.name, restarts=slot.restarts)
                self._spawn(slot)
            elif (slot.state == "running" and slot.backoff
                  and now - slot.started_at >= self.period):
                slot.backoff = 0.0
                slot.crashes_in_row = 0

    def _record_crash(self, slot: _Slot, now: float) -> None:
        self._crashes.append(now)
        while self._crashes and now - self._crashes[0] > self.period:
            self._crashes.popleft()
        if len(self._crashes) > self.max_restarts:
            raise SupervisorGaveUp(
                f"{len(self._crashes)} worker crashes within {self.period:g}s "
                f"(max_restarts {self.max_restarts}); last: {slot.worker.name}: "
                f"{slot.last_error}")
        slot.backoff = self._backoff.delay(slot.crashes_in_row, 0.0)
        slot.crashes_in_row += 1
        slot.restart_at = now + slot.backoff
        slot.state = "backoff"
        log.warning("worker_restart_scheduled", worker=slot.worker.name,
                    backoff=round(slot.backoff, 3))

    def healthy(self, now: float | None = None) -> bool:
        """True while every running worker has a fresh heartbeat (for WATCHDOG=1)."""
        return not self.hung(now)

    def hung(self, now: float | None = None) -> list[str]:
        now = self._clock.monotonic() if now is None else now
        return [name for name, slot in self._slots.items()
                if slot.state == "running"
                and now - slot.ctx.last_beat > slot.worker.heartbeat_timeout]

    def status(self, now: float | None = None) -> list[dict[str, object]]:
        now = self._clock.monotonic() if now is None else now
        return [
            {
                "name": name,
                "state": slot.state,
                "alive": bool(slot.thread and slot.thread.is_alive()),
                "restarts": slot.restarts,
                "heartbeat_age": round(now - slot.ctx.last_beat, 3),
                "last_error": slot.last_error,
            }
            for name, slot in self._slots.items()
        ]

    def names(self) -> list[str]:
        return list(self._slots)
