"""A real SMTP server for the email sink: Debian's aiosmtpd on 127.0.0.1.

``Smtpd`` runs ``smtp_server.py`` (next to this file) with the system
``/usr/bin/python3``, where the ``python3-aiosmtpd`` package lives, on a free
port; ``messages()`` reads back what it accepted (envelope, TLS, login, the
raw message parsed with ``email``). Without aiosmtpd a test is skipped, or
fails with CI=true (.ci/run installs it).
"""

from __future__ import annotations

import email
import email.policy
import json
import subprocess
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from peers import free_port
from peers.process import PeerProcess

SCRIPT = Path(__file__).with_name("smtp_server.py")


class Smtpd(PeerProcess):
    name = "aiosmtpd"
    program = ("/usr/bin/python3",)
    ready_timeout = 30.0
    stop_timeout = 10.0

    def __init__(self, tmp: Path, *options: str) -> None:
        super().__init__(tmp)
        probe = subprocess.run([self.binary, "-c", "import aiosmtpd"], capture_output=True,
                               timeout=30)
        if probe.returncode != 0:
            from conftest import IN_CI

            msg = "python3-aiosmtpd is not installed (.ci/run installs it)"
            if IN_CI:
                pytest.fail(msg)
            pytest.skip(msg)
        self.port = free_port()
        self.options = list(options)
        self.inbox = tmp / "inbox"
        self.inbox.mkdir(parents=True, exist_ok=True)

    def _command(self) -> list[str]:
        return [self.binary, "-u", str(SCRIPT), "--port", str(self.port),
                "--dir", str(self.inbox), *self.options]

    def _ready(self) -> bool:
        return f"READY {self.port}" in self.log()

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(p.read_text(encoding="utf-8"))
                for p in sorted(self.inbox.glob("*.json"))]

    def messages(self) -> list[EmailMessage]:
        out = []
        for r in self.records():
            text = r["content"].replace("\r\n", "\n")
            msg = email.message_from_string(text, policy=email.policy.default)
            assert isinstance(msg, EmailMessage)
            out.append(msg)
        return out
