"""Run a real ``pharosd`` subprocess with a real ``NOTIFY_SOCKET``.

``NotifySocket`` binds an AF_UNIX datagram socket, as systemd does, and
records every message with its arrival time. ``PharosProcess`` starts
``python -m pharosd run`` with a config written to a temporary directory,
captures its log lines, and sends it real signals.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


class NotifySocket:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(1.0)          # a safety net: close() wakes the reader at once
        self.messages: list[tuple[float, str]] = []
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            with self._changed:
                for line in data.decode().splitlines():
                    self.messages.append((time.monotonic(), line))
                self._changed.notify_all()

    def lines(self) -> list[str]:
        with self._changed:
            return [m for _, m in self.messages]

    def count(self, line: str) -> int:
        return sum(1 for m in self.lines() if m == line)

    def wait_for(self, pred: Callable[[list[str]], bool], timeout: float = 20.0) -> bool:
        """Wait until ``pred(lines)`` holds, woken by each datagram; False at the deadline."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                if pred([m for _, m in self.messages]):
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError), \
                socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as wake:
            wake.sendto(b"", str(self.path))        # the reader returns from recv now
        self._thread.join(2)
        self.sock.close()


def wait_until(pred: Callable[[], Any], timeout: float = 20.0, step: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            return value
        time.sleep(step)


class PharosProcess:
    def __init__(self, tmp: Path, config_text: str, *, env: dict[str, str] | None = None,
                 watchdog_usec: int | None = 2_000_000, args: list[str] | None = None) -> None:
        self.tmp = tmp
        self.config = tmp / "pharos.yaml"
        self.config.write_text(config_text)
        n = sum(1 for _ in tmp.glob("notify-*.sock"))
        self.notify = NotifySocket(tmp / f"notify-{n}.sock")
        self.log_path = tmp / f"pharosd-{n}.log"
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("PHAROS")}
        full_env.update({"NOTIFY_SOCKET": str(self.notify.path), "PYTHONUNBUFFERED": "1",
                         "RUNTIME_DIRECTORY": str(tmp / "run")})
        if watchdog_usec:
            full_env["WATCHDOG_USEC"] = str(watchdog_usec)
        full_env.update(env or {})
        self._log = open(self.log_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pharosd", "run", "-c", str(self.config),
             "--log-format", "logfmt", "--log-level", "debug", *(args or [])],
            stdout=self._log, stderr=subprocess.STDOUT, env=full_env, cwd=str(tmp))

    def write_config(self, text: str) -> None:
        tmp = self.config.with_suffix(".new")
        tmp.write_text(text)
        tmp.replace(self.config)

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def reload(self, text: str) -> None:
        """Write the new config and SIGHUP; returns once the daemon applied it."""
        done = self.log().count("event=reload_done")
        self.write_config(text)
        self.signal(signal.SIGHUP)
        assert wait_until(lambda: self.log().count("event=reload_done") > done), self.log()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_log(self, text: str, timeout: float = 20.0) -> bool:
        return bool(wait_until(lambda: text in self.log(), timeout))

    def wait_ready(self, timeout: float = 20.0) -> bool:
        """READY=1 sent and the control socket there (READY=1 waits for the socket's
        first bind, which may fail: then the socket is not there)."""
        deadline = time.monotonic() + timeout
        return (self.notify.wait_for(lambda m: "READY=1" in m, timeout)
                and bool(wait_until((self.tmp / "run" / "control.sock").exists,
                                    max(0.0, deadline - time.monotonic()))))

    def stop(self, timeout: float = 10.0) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.notify.close()
        self._log.close()
        return self.proc.returncode


def read_events(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
