"""The uplink worker and the ``Pipeline`` facade the daemon wires in::

    pipeline = Pipeline(config, state_dir=..., host=...)
    pipeline.enabled             # False without uplink.remote_write: offer() is a no-op
    pipeline.offer(samples)      # collector thread: O(n), never blocks, never raises
    pipeline.workers()           # [the "uplink" worker] (empty when disabled)
    pipeline.reconfigure(config) # SIGHUP: new uplink/buffer/spill settings, nothing lost
    pipeline.status()            # buffer, spill, receivers, counters
    pipeline.close()             # after the workers stopped: memory -> spill

``config`` is anything with ``buffer``, ``spill`` and ``uplink`` sections
(``PipelineSettings``; the top-level ``Config`` is one). Every offered sample
is interned in a ``SeriesRegistry`` and appended to each receiver's
``HotBuffer`` (see ``uplink.Lane``); the one ``UplinkWorker`` steps every
lane (requests run on their own threads, so one slow receiver does not hold
up another; tests pass a ``transport`` and ``launcher`` instead, see
``transport``), infers ended series once a second (stale markers, see
``series``) and expires old spill rows every 10 s. It sleeps until a lane's
step is due (``Lane.step`` says when) or an offer wakes it (a lane's buffer
was empty or holds a full batch), so at a 1 s interval it wakes about once a
collection; the sweep, when due within ``SWEEP_SLACK``, runs on that wakeup.
A spill that cannot be opened (read-only, full disk, not a directory) is not
fatal: the samples wait in the hot buffers (bounded), ``status()`` says why,
and the open is retried every ``SPILL_RETRY`` seconds.
"""

from __future__ import annotations

import os
import threading
from array import array
from typing import TYPE_CHECKING, Any

import structlog

from pharosd.clock import Clock, SystemClock
from pharosd.errors import describe_error
from pharosd.pipeline.config import PipelineSettings
from pharosd.worker import IDLE_WAIT, WorkerContext

# The uplink's machinery (about 2 MiB) is imported only once an uplink is
# configured: a daemon without one never loads it (docs/benchmarks.md).
if TYPE_CHECKING:
    from pharosd.model import Sample
    from pharosd.pipeline.receiver import ReceiverSettings
    from pharosd.pipeline.series import SeriesRegistry
    from pharosd.pipeline.spill import Spill
    from pharosd.pipeline.transport import Launcher, Transport
    from pharosd.pipeline.uplink import Lane

log = structlog.get_logger(__name__)

SWEEP_EVERY = 1.0
SWEEP_SLACK = 0.05          # a sweep due within this runs on the current wakeup
EXPIRE_EVERY = 10.0
SPILL_RETRY = 5.0           # seconds between attempts to open a spill that would not open
REFUSED_LOG_EVERY = 60.0

__all__ = ["Pipeline", "UplinkWorker"]


class UplinkWorker:
    """Steps every receiver's lane when one is due or an offer wakes it."""

    name = "uplink"
    heartbeat_timeout = 15.0

    def __init__(self, pipeline: Pipeline) -> None:
        self._pipeline = pipeline

    def run(self, ctx: WorkerContext) -> None:
        wake = self._pipeline._wake
        ctx.on_stop(wake.set)
        while not ctx.stopping:
            ctx.beat()
            wait = self._pipeline._step()
            if wait > 0:
                wake.wait(wait)
            wake.clear()


class Pipeline:
    def __init__(self, config: PipelineSettings, *, state_dir: str, host: str,
                 clock: Clock | None = None, transport: Transport | None = None,
                 launcher: Launcher | None = None) -> None:
        from pharosd.pipeline.series import SeriesRegistry

        self._clock: Clock = clock or SystemClock()
        self._transport, self._launcher = transport, launcher   # None: the real ones
        self._state_dir = state_dir
        self._host = host
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._lanes: dict[str, Lane] = {}
        self._registry: SeriesRegistry = SeriesRegistry(
            floor=float(config.uplink.stale_floor), max_series=config.uplink.max_series,
            max_per_source=config.uplink.max_series_per_source)
        self._refused_logged: dict[str, int] = {}
        self._refused_log_at = -1e18
        self._markers = config.uplink.stale_markers
        self._seq = 0
        self._spill: Spill | None = None
        self._spill_path = ""
        self._config = config
        self._next_sweep = 0.0
        self._next_expire = 0.0
        self._closed = False
        self._offer_errors = 0
        self._last_offer_log = -1e18
        self._dropped_elsewhere: dict[str, int] = {}   # receivers removed on reload
        self._worker = UplinkWorker(self)
        self._next_spill_open = 0.0
        self.spill_error: str | None = None     # why the spill is not open, if it is not
        self.enabled = False
        if config.uplink.remote_write:
            self._enable(config)

    # -- building --------------------------------------------------------------

    def _settings(self, config: PipelineSettings) -> list[ReceiverSettings]:
        from pharosd.pipeline.receiver import resolve_settings

        return [resolve_settings(rw, index=i, host=self._host, capacity=config.buffer.capacity)
                for i, rw in enumerate(config.uplink.remote_write)]

    def _enable(self, config: PipelineSettings) -> None:
        from pharosd.pipeline import compression
        from pharosd.pipeline.spill import Spill
        from pharosd.pipeline.uplink import Lane

        compression.codec()          # fail now, not on the first request, without snappy
        settings = self._settings(config)
        path = config.spill.path or os.path.join(self._state_dir, "spill.db")
        spill = Spill(path, int(config.spill.max_size), float(config.spill.max_age),
                      on_drop=self._spill_dropped, clock=self._clock)
        self._spill, self._spill_path = spill, path
        for s in settings:
            self._lanes[s.name] = Lane(s, spill, self._registry.key_of, self._clock,
                                       self._wake, base_seq=self._seq,
                                       transport=self._transport, launcher=self._launcher)
        self._open_spill()
        self.enabled = True
        log.info("uplink_enabled", receivers=[s.name for s in settings],
                 urls=[s.safe_url for s in settings], spill=path)

    def _open_spill(self) -> bool:
        """Open the spill; when it cannot be (read-only, full, not a directory), samples
        stay in memory (bounded, drops counted), the uplink goes on, and the open is
        retried every ``SPILL_RETRY`` seconds. True once open."""
        from pharosd.errors import UplinkError

        spill = self._spill
        assert spill is not None
        try:
            spill.open()
        except UplinkError as e:
            self._next_spill_open = self._clock.monotonic() + SPILL_RETRY
            if self.spill_error is None:
                log.error("spill_unavailable", path=self._spill_path, error=str(e),
                          retry_every=SPILL_RETRY, note="samples are kept in memory")
            self.spill_error = str(e)
            return False
        if self.spill_error is not None:
            log.info("spill_recovered", path=self._spill_path)
        self.spill_error = None
        for lane_name in spill.lanes():
            if lane_name not in self._lanes:
                n = spill.drop_lane(lane_name, "receiver_removed")
                log.warning("spill_receiver_removed", receiver=lane_name, dropped_samples=n)
        return True

    def _spill_dropped(self, lane: str, reason: str, n: int) -> None:
        target = self._lanes.get(lane)
        if target is not None:
            target.count_drop(reason, n)
        else:
            self._dropped_elsewhere[reason] = self._dropped_elsewhere.get(reason, 0) + n

    # -- the collector's side ------------------------------------------------------

    def offer(self, samples: list[Sample]) -> None:
        """Queue samples for every receiver: never blocks on I/O, never raises.

        When a receiver's hot buffer is full its oldest samples are dropped
        (counted ``buffer_full``).
        """
        if not self.enabled or self._closed or not samples:
            return
        try:
            sid: array[int] = array("q")
            ts: array[int] = array("q")
            val: array[float] = array("d")
            wake = False
            with self._lock:
                self._registry.observe(samples, self._clock.monotonic(), sid, ts, val)
                self._seq += len(ts)
                for lane in self._lanes.values():
                    was_empty = not len(lane.buffer)
                    lane.count_drop("buffer_full", lane.buffer.extend(sid, ts, val))
                    wake = wake or was_empty or len(lane.buffer) >= lane.settings.batch
            if wake:
                self._wake.set()
        except Exception as e:
            self._offer_errors += 1
            now = self._clock.monotonic()
            if now - self._last_offer_log >= 60.0:
                self._last_offer_log = now
                log.error("pipeline_offer_failed", error=describe_error(e),
                          failures=self._offer_errors)

    # -- the worker's side -------------------------------------------------------

    def workers(self) -> list[UplinkWorker]:
        """The one uplink worker (the same object on every call), or none when disabled."""
        return [self._worker] if self.enabled else []

    def _step(self) -> float:
        """Step every lane, sweep, retry the spill, expire; the seconds until the next
        step is due (an offer or a finished request may wake the worker earlier)."""
        now = self._clock.monotonic()
        with self._lock:
            lanes = list(self._lanes.values())
        wait = IDLE_WAIT
        for lane in lanes:
            wait = min(wait, lane.step(now))
        if now >= self._next_sweep - SWEEP_SLACK:
            self._next_sweep = now + SWEEP_EVERY
            self._sweep(now)
        if self.spill_error is not None and now >= self._next_spill_open:
            with self._lock:
                self._open_spill()
        if now >= self._next_expire and self._spill is not None:
            self._next_expire = now + EXPIRE_EVERY
            self._spill.expire()
        due = [self._next_sweep + SWEEP_SLACK, self._next_expire]   # an offer may come first
        if self.spill_error is not None:
            due.append(self._next_spill_open)
        return max(0.0, min(wait, *(t - now for t in due)))

    def _sweep(self, now: float) -> None:
        """Stale markers for series that stopped; forget long-gone series."""
        from pharosd.pipeline.remote_write import stale_nan

        sid: array[int] = array("q")
        ts: array[int] = array("q")
        val: array[float] = array("d")
        with self._lock:
            n = self._registry.sweep(now, int(self._clock.wall() * 1000), self._seq,
                                     self._markers, sid, ts, val, stale_nan())
            if n:
                self._seq += n
                for lane in self._lanes.values():
                    lane.count_drop("buffer_full", lane.buffer.extend(sid, ts, val))
            consumed = min((lane.buffer.consumed_seq for lane in self._lanes.values()),
                           default=self._seq)
            self._registry.free(consumed)
            refused = dict(self._registry.refused)
        if n:
            log.debug("stale_markers", series=n)
        self._log_refused(refused, now)

    def _log_refused(self, refused: dict[str, int], now: float) -> None:
        """Samples of new series past a bound: a warning at most once a minute."""
        if refused == self._refused_logged or now - self._refused_log_at < REFUSED_LOG_EVERY:
            return
        since = {src: n - self._refused_logged.get(src, 0) for src, n in refused.items()
                 if n != self._refused_logged.get(src, 0)}
        self._refused_logged, self._refused_log_at = refused, now
        reg = self._registry
        log.warning("series_limit_reached", max_series=reg.max_series,
                    max_series_per_source=reg.max_per_source, series=len(reg),
                    refused_samples=since, note="samples of new series are not shipped")

    def retry_now(self) -> None:
        """SIGHUP: try a spill that would not open on the next step, not after the wait."""
        self._next_spill_open = 0.0
        self._wake.set()

    # -- control ---------------------------------------------------------------------

    def reconfigure(self, config: PipelineSettings) -> None:
        """Apply new uplink, buffer and spill settings; buffered and spilled samples
        of receivers that stay (same name) are kept. A removed receiver's samples are
        dropped (counted ``receiver_removed``). Raises ``ConfigError`` (a secret file
        cannot be read) before changing anything."""
        from pharosd.pipeline.uplink import Lane

        if not config.uplink.remote_write and not self.enabled:
            self._config = config
            return
        if not self.enabled:
            self._enable(config)
            self._config = config
            log.info("uplink_enabled_on_reload", note="the uplink worker must be started")
            return
        settings = self._settings(config)
        spill = self._spill
        assert spill is not None
        new_path = config.spill.path or os.path.join(self._state_dir, "spill.db")
        if new_path != self._spill_path:
            log.warning("reload_needs_restart", keys="spill.path", running=self._spill_path)
        with self._lock:
            self._registry.floor = float(config.uplink.stale_floor)
            self._registry.max_series = config.uplink.max_series
            self._registry.max_per_source = config.uplink.max_series_per_source
            self._markers = config.uplink.stale_markers
            spill.max_size = int(config.spill.max_size)
            spill.max_age = float(config.spill.max_age)
            wanted = {s.name: s for s in settings}
            for name in list(self._lanes):
                if name not in wanted:
                    lane = self._lanes.pop(name)
                    lane.removed = True
                    hot = lane.buffer.clear()
                    self._dropped_elsewhere["receiver_removed"] = (
                        self._dropped_elsewhere.get("receiver_removed", 0) + hot)
                    spilled = spill.drop_lane(name, "receiver_removed")   # counted by callback
                    log.warning("receiver_removed", receiver=name,
                                dropped_samples=hot + spilled)
            for name, s in wanted.items():
                kept = self._lanes.get(name)
                if kept is None:
                    self._lanes[name] = Lane(s, spill, self._registry.key_of, self._clock,
                                             self._wake, base_seq=self._seq,
                                             transport=self._transport,
                                             launcher=self._launcher)
                    log.info("receiver_added", receiver=name, url=s.safe_url)
                else:
                    kept.apply(s)
            self._config = config
            if not self._lanes:
                self.enabled = False
        self._wake.set()

    def close(self) -> None:
        """Move what is in memory (hot buffers, unfinished deliveries) to the spill and
        close it. Call after the uplink worker stopped; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._spill is None:
            return
        with self._lock:
            total = 0
            for lane in self._lanes.values():
                total += lane.flush_to_spill()
            self._spill.close()
        log.info("pipeline_closed", spilled_samples=total)

    def status(self) -> dict[str, Any]:
        with self._lock:
            lanes = list(self._lanes.values())
            series = len(self._registry)
            markers = self._registry.markers_sent
            refused = self._registry.refused_samples
        receivers = [lane.status() for lane in lanes]
        dropped: dict[str, int] = dict(self._dropped_elsewhere)
        if refused:
            dropped["series_limit"] = refused      # before the buffers: for every receiver
        for r in receivers:
            for reason, n in r["dropped"].items():
                dropped[reason] = dropped.get(reason, 0) + n
        spill: dict[str, Any] | None = None
        if self._spill is not None:
            sp = self._spill
            spill = {
                "path": sp.path,
                "bytes": sp.total_bytes,
                "file_bytes": sp.file_bytes(),
                "max_size": sp.max_size,
                "max_age": sp.max_age,
                "rows": sum(r["spill_rows"] for r in receivers),
                "samples": sum(r["spill_samples"] for r in receivers),
                "oldest_age_seconds": max((r["spill_oldest_age_seconds"] for r in receivers),
                                          default=0.0),
                "errors": sp.errors,
                "last_error": sp.last_error,
                "open": self.spill_error is None,
                "unavailable": self.spill_error,
            }
        return {
            "enabled": self.enabled,
            "series": series,
            "stale_markers": markers,
            "buffer": {"samples": sum(r["buffer_samples"] for r in receivers),
                       "capacity": self._config.buffer.capacity},
            "spill": spill,
            "receivers": receivers,
            "sent": sum(r["sent"] for r in receivers),
            "retried": sum(r["retried"] for r in receivers),
            "dropped": dropped,
            "offer_errors": self._offer_errors,
        }
