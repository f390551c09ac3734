"""The process management every real peer helper shares: ``PeerProcess``.

A subclass names its program and how long it may take, writes its config and
returns its command line in ``_command()``, and says when it is serving in
``_ready()`` (``HttpPeer`` does that for an HTTP server on ``port``). The
base finds the binary (``require_binary``: a skip, or a failure with
CI=true), runs it with stdout and stderr in ``<tmp>/<name>.log`` (appended
across restarts), waits until ready, and stops it with SIGTERM, then SIGKILL
after ``stop_timeout``. A peer that exits or never becomes ready raises
``RuntimeError`` with the exit code and the tail of its log. ``stop()``
followed by ``start()`` reuses the same directory and ports.
"""

from __future__ import annotations

import signal
import subprocess
import urllib.request
from pathlib import Path
from typing import IO, Self

from peers import free_port, require_binary, wait_for

LOG_TAIL = 2000  # characters of the peer's log quoted in an error


def http_ok(url: str) -> bool:
    """True when ``url`` answers 200 within a second (for ``_ready``)."""
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            return bool(r.status == 200)
    except OSError:
        return False


class PeerProcess:
    name = ""                          # for messages and the log file: <tmp>/<name>.log
    program: tuple[str, ...] = ()      # require_binary(name, *candidates)
    ready_timeout = 30.0
    stop_timeout = 20.0

    def __init__(self, tmp: Path) -> None:
        self.binary = require_binary(*self.program)
        self.tmp = tmp
        tmp.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.tmp / f"{self.name}.log"

    def _command(self) -> list[str]:
        """Write the config files and return the command line."""
        raise NotImplementedError

    def _ready(self) -> bool:
        """True once the running program serves what the tests need."""
        raise NotImplementedError

    def start(self) -> Self:
        args = self._command()
        self._log = open(self.log_path, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT)
        try:
            ready = wait_for(self._running_and_ready, timeout=self.ready_timeout)
        except BaseException:
            self.stop()
            raise
        if not ready:
            self.stop()
            raise RuntimeError(f"{self.name} did not become ready in {self.ready_timeout:g}s; "
                               f"{self._log_tail()}")
        return self

    def _running_and_ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited with code {self.proc.returncode} before it "
                               f"was ready; {self._log_tail()}")
        return self._ready()

    def _log_tail(self) -> str:
        return f"end of {self.log_path}:\n{self.log()[-LOG_TAIL:]}"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self._log is not None:
            self._log.close()
            self._log = None
        self.proc = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log(self) -> str:
        """Everything the program wrote to stdout and stderr so far."""
        p = self.log_path
        return p.read_text(errors="replace") if p.exists() else ""


class HttpPeer(PeerProcess):
    """A peer serving HTTP on ``port``: ready when ``ready_path`` answers 200."""

    ready_path = "/-/ready"

    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp)
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _ready(self) -> bool:
        return http_ok(self.url + self.ready_path)
