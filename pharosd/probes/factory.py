"""Build the running probe of a ``ProbeConfig``: the one entry point the daemon wires.

``build_probe(cfg, default_every)`` returns a ``pharosd.source.Source``
(blocking, named after the probe, with a ``key`` equal for equal configs so
a reload can keep an unchanged probe and its state). ``status_thresholds``
and ``reserved_threshold_issues`` (from status.py and config.py) are re-exported here: the
daemon appends the first to the configured thresholds and adds the second to
the config's checks. Each kind's module is imported only when a probe of
that kind is built, so the daemon loads only what its config uses.
"""

from __future__ import annotations

from pharosd.probes.base import Probe
from pharosd.probes.config import (
    ExecProbeConfig,
    FileProbeConfig,
    HttpProbeConfig,
    ProbeConfig,
    ProcessProbeConfig,
    TcpProbeConfig,
    reserved_threshold_issues,
)
from pharosd.probes.status import status_thresholds

__all__ = ["build_probe", "reserved_threshold_issues", "status_thresholds"]


def build_probe(cfg: ProbeConfig, default_every: float) -> Probe:
    """The probe for ``cfg``, polled every ``cfg.every`` or ``default_every`` seconds."""
    every = float(default_every)
    if isinstance(cfg, ProbeConfig) and cfg.every is not None:
        every = float(cfg.every)
    if isinstance(cfg, ExecProbeConfig):
        from pharosd.probes.exec import ExecProbe

        return ExecProbe(cfg, every)
    if isinstance(cfg, HttpProbeConfig):
        from pharosd.probes.http import HttpProbe

        return HttpProbe(cfg, every)
    if isinstance(cfg, TcpProbeConfig):
        from pharosd.probes.tcp import TcpProbe

        return TcpProbe(cfg, every)
    if isinstance(cfg, ProcessProbeConfig):
        from pharosd.probes.process import ProcessProbe

        return ProcessProbe(cfg, every)
    if isinstance(cfg, FileProbeConfig):
        from pharosd.probes.file import FileProbe

        return FileProbe(cfg, every)
    raise TypeError(f"not a probe config: {cfg!r}")
