"""The tcp probe: connect to a port, optionally send a string and expect a reply.

Up when the connection opens and, with ``expect``, the reply contains the
expected string (read until it appears, the peer closes, 64 KiB have been
read, or the time is up). Otherwise the probe's ``level``. Values: ``up``
and ``latency_seconds`` (the time to connect). One deadline covers connect,
send and expect: every socket operation gets the time that is left, and a
read returns as soon as bytes arrive, so a slow peer cannot stretch the
check past ``timeout`` (name resolution excepted: give an address).
"""

from __future__ import annotations

import socket

from pharosd.clock import Clock
from pharosd.probes.base import CheckResult, Probe
from pharosd.probes.config import TcpProbeConfig
from pharosd.probes.status import OK, UNKNOWN_STATE
from pharosd.units import format_duration

MAX_READ = 64 * 1024


class TcpProbe(Probe):
    kind = "tcp"
    cfg: TcpProbeConfig

    def __init__(self, cfg: TcpProbeConfig, every: float, clock: Clock | None = None) -> None:
        super().__init__(cfg, every, clock)
        self.fail_status = UNKNOWN_STATE[cfg.level]
        host = f"[{cfg.host}]" if ":" in cfg.host else cfg.host
        self.what = f"{host}:{cfg.port}"

    def check(self, now: float) -> CheckResult:
        cfg = self.cfg
        clock = self.clock
        started = clock.monotonic()
        deadline = started + float(cfg.timeout)
        try:
            sock = socket.create_connection((cfg.host, cfg.port), timeout=float(cfg.timeout))
        except TimeoutError:
            return self._fail(f"connect timed out after {format_duration(cfg.timeout)}")
        except OSError as e:
            return self._fail(_os_reason(e))
        latency = clock.monotonic() - started
        values = [("latency_seconds", latency)]
        with sock:
            try:
                if cfg.send is not None:
                    sock.settimeout(_left(deadline, clock))
                    sock.sendall(cfg.send.encode())
                if cfg.expect is not None:
                    found, got = _expect(sock, cfg.expect.encode(), deadline, clock)
                    if not found:
                        return self._fail(f"expected {cfg.expect!r}, got {_show(got)}", values)
            except TimeoutError:
                return self._fail(f"no expected reply within {format_duration(cfg.timeout)}",
                                  values)
            except OSError as e:
                return self._fail(_os_reason(e), values)
        text = f"{self.what}: connected in {latency:.3f}s"
        if cfg.expect is not None:
            text += f", got {cfg.expect!r}"
        return CheckResult(OK, text, (("up", 1.0), *values))

    def _fail(self, reason: str, values: list[tuple[str, float]] | None = None) -> CheckResult:
        return CheckResult(self.fail_status, f"{self.what}: {reason}",
                           (("up", 0.0), *(values or ())))


def _left(deadline: float, clock: Clock) -> float:
    left = deadline - clock.monotonic()
    if left <= 0:
        raise TimeoutError("deadline passed")
    return left


def _expect(sock: socket.socket, want: bytes, deadline: float,
            clock: Clock) -> tuple[bool, bytes]:
    got = b""
    while want not in got and len(got) < MAX_READ:
        sock.settimeout(_left(deadline, clock))
        chunk = sock.recv(MAX_READ - len(got))
        if not chunk:
            break
        got += chunk
    return want in got, got


def _show(data: bytes) -> str:
    if not data:
        return "nothing"
    text = data[:80].decode("utf-8", errors="replace")
    return repr(text) + ("…" if len(data) > 80 else "")


def _os_reason(e: OSError) -> str:
    return e.strerror or str(e) or type(e).__name__
