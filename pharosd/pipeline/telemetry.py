"""The "self" source: samples about pharosd itself, shipped beside the host's.

Read from ``Pipeline.status()``, the supervisor's counters (a callable the
daemon passes, e.g. ``{"restarts": 3}``) and ``psutil.Process()``. Metric
names (dotted; ``pharos_pharosd_...`` on the wire), listed in docs/uplink.md:

=====================================================  ==========================================
``pharosd.buffer_samples{receiver}``                   samples in the hot buffer
``pharosd.buffer_capacity``                            the hot buffer's bound (per receiver)
``pharosd.spill_bytes``                                payload bytes in the spill (all receivers)
``pharosd.spill_file_bytes``                           the spill file and its WAL on disk
``pharosd.spill_samples{receiver}``                    samples waiting in the spill
``pharosd.spill_oldest_age_seconds{receiver}``         age of the oldest spilled sample (0: empty)
``pharosd.samples_sent_total{receiver}``               samples the receiver acknowledged
``pharosd.samples_retried_total{receiver}``            samples in requests that failed and will be
                                                       sent again
``pharosd.samples_dropped_total{receiver,reason}``     samples given up, by reason
``pharosd.uplink_up{receiver}``                        1 if the last request succeeded, else 0
``pharosd.uplink_seconds_since_success{receiver}``     since the last acknowledged request (or
                                                       since start)
``pharosd.uplink_requests_total{receiver}``            requests made
``pharosd.uplink_failures_total{receiver}``            requests that failed and will be retried
``pharosd.uplink_series``                              series the pipeline tracks
``pharosd.worker_restarts``                            worker restarts by the supervisor
``pharosd.supervisor_<key>``                           any other supervisor counter
``pharosd.cpu_percent``                                CPU of pharosd, % of one core, since the
                                                       previous collection
``pharosd.rss_bytes``                                  resident memory of pharosd
=====================================================  ==========================================
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from pharosd.clock import Clock, SystemClock
from pharosd.model import Labels, Sample
from pharosd.pipeline.config import DROP_REASONS

HELP: dict[str, str] = {
    "pharosd.buffer_samples": "samples in the hot buffer of a remote_write receiver",
    "pharosd.buffer_capacity": "the hot buffer's bound, per receiver",
    "pharosd.spill_bytes": "payload bytes in the spill, all receivers",
    "pharosd.spill_file_bytes": "bytes of the spill file and its WAL on disk",
    "pharosd.spill_samples": "samples waiting in the spill",
    "pharosd.spill_oldest_age_seconds": "age of the oldest spilled sample (0: empty)",
    "pharosd.samples_sent_total": "samples the receiver acknowledged",
    "pharosd.samples_retried_total": "samples in requests that failed and will be sent again",
    "pharosd.samples_dropped_total": "samples given up, by reason",
    "pharosd.uplink_up": "1 if the last remote_write request succeeded, else 0",
    "pharosd.uplink_seconds_since_success": "seconds since the last acknowledged request",
    "pharosd.uplink_requests_total": "remote_write requests made",
    "pharosd.uplink_failures_total": "remote_write requests that failed and will be retried",
    "pharosd.uplink_series": "series the uplink pipeline tracks",
    "pharosd.worker_restarts": "worker restarts by the supervisor since start",
    "pharosd.cpu_percent": "CPU time of pharosd, percent of one core, since the previous "
                           "collection",
    "pharosd.rss_bytes": "resident memory of pharosd in bytes",
}
"""HELP texts of the metrics above (for ``/metrics``)."""


class _StatusSource(Protocol):
    def status(self) -> dict[str, Any]: ...


class TelemetrySource:
    """A ``Source`` (pharosd.source) named ``self``; never blocks."""

    blocking = False

    def __init__(self, pipeline: _StatusSource,
                 supervisor_stats: Callable[[], Mapping[str, float]] | None = None,
                 every: float = 10.0, name: str = "self", clock: Clock | None = None) -> None:
        self.name = name
        self._clock: Clock = clock or SystemClock()
        self.every = float(every)
        self._pipeline = pipeline
        self._supervisor_stats = supervisor_stats
        self._proc: Any = None
        self._last_cpu: tuple[float, float] | None = None   # (monotonic, cpu seconds)

    def collect(self, now: float) -> Sequence[Sample]:
        out: list[Sample] = []

        def add(metric: str, value: float, labels: Labels = ()) -> None:
            out.append(Sample(metric, labels, float(value), now))

        st = self._pipeline.status()
        if st.get("enabled") or st.get("receivers"):
            self._pipeline_samples(st, add)
        if self._supervisor_stats is not None:
            for key, value in sorted(self._supervisor_stats().items()):
                metric = "pharosd.worker_restarts" if key == "restarts" \
                    else f"pharosd.supervisor_{key}"
                add(metric, value)
        self._process_samples(add)
        return out

    @staticmethod
    def _pipeline_samples(st: Mapping[str, Any], add: Callable[..., None]) -> None:
        spill = st.get("spill") or {}
        add("pharosd.buffer_capacity", st["buffer"]["capacity"])
        add("pharosd.spill_bytes", spill.get("bytes", 0))
        add("pharosd.spill_file_bytes", spill.get("file_bytes", 0))
        add("pharosd.uplink_series", st.get("series", 0))
        for r in st.get("receivers", ()):
            lab: Labels = (("receiver", r["name"]),)
            add("pharosd.buffer_samples", r["buffer_samples"], lab)
            add("pharosd.spill_samples", r["spill_samples"], lab)
            add("pharosd.spill_oldest_age_seconds", r["spill_oldest_age_seconds"], lab)
            add("pharosd.samples_sent_total", r["sent"], lab)
            add("pharosd.samples_retried_total", r["retried"], lab)
            dropped = r["dropped"]
            for reason in sorted(set(DROP_REASONS) | set(dropped)):
                add("pharosd.samples_dropped_total", dropped.get(reason, 0),
                    (("reason", reason), ("receiver", r["name"])))
            add("pharosd.uplink_up", 1.0 if r["up"] else 0.0, lab)
            add("pharosd.uplink_seconds_since_success", r["seconds_since_success"], lab)
            add("pharosd.uplink_requests_total", r["requests"], lab)
            add("pharosd.uplink_failures_total", r["failures"], lab)
        for reason in ("receiver_removed", "series_limit"):
            n = st.get("dropped", {}).get(reason)
            if n:
                add("pharosd.samples_dropped_total", n, (("reason", reason),))

    def _process_samples(self, add: Callable[..., None]) -> None:
        try:
            if self._proc is None:
                import psutil

                self._proc = psutil.Process()
            times = self._proc.cpu_times()
            cpu = float(times.user + times.system)
            mono = self._clock.monotonic()
            if self._last_cpu is not None and mono > self._last_cpu[0]:
                add("pharosd.cpu_percent",
                    100.0 * (cpu - self._last_cpu[1]) / (mono - self._last_cpu[0]))
            self._last_cpu = (mono, cpu)
            add("pharosd.rss_bytes", self._proc.memory_info().rss)
        except Exception:   # psutil.Error, or no /proc: the pipeline's samples still go
            self._proc = None
