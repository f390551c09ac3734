"""A private rsyslogd: imuxsock on a temporary socket, imudp and imtcp on 127.0.0.1.

Every message it receives is written as one JSON object per line with the
fields a syslog sender controls (see ``FIELDS``), read back by
``messages()``. Set up so that it never disturbs the machine's own syslog
and keeps what the sender wrote: ``SysSock.Use="off"`` so ``/dev/log`` is
never touched, ``UseSpecialParser="off"`` so RFC 5424 is parsed on the unix
socket, and ``IgnoreTimestamp="off"`` so the sender's timestamp is kept.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from peers import free_port
from peers.process import PeerProcess

FIELDS = {
    "input": "inputname",
    "protocol": "protocol-version",
    "facility": "syslogfacility-text",
    "severity": "syslogseverity-text",
    "hostname": "hostname",
    "app": "app-name",
    "procid": "procid",
    "msgid": "msgid",
    "sd": "structured-data",
    "msg": "msg",
}


def _config(tmp: Path, udp: int, tcp: int) -> str:
    props = "\n".join(
        f'  property(outname="{k}" name="{v}" format="jsonf")' for k, v in FIELDS.items())
    return f"""
global(workDirectory="{tmp}" net.enableDNS="off" maxMessageSize="64k")
module(load="imuxsock" SysSock.Use="off")
module(load="imudp")
module(load="imtcp")
input(type="imuxsock" Socket="{tmp}/log.sock" CreatePath="on" UseSpecialParser="off"
      IgnoreTimestamp="off" RateLimit.Interval="0")
input(type="imudp" address="127.0.0.1" port="{udp}")
input(type="imtcp" address="127.0.0.1" port="{tcp}")
template(name="fields" type="list" option.jsonf="on") {{
{props}
  property(outname="timestamp" name="timereported" dateFormat="rfc3339" format="jsonf")
}}
action(type="omfile" file="{tmp}/messages.jsonl" template="fields")
"""


class Rsyslog(PeerProcess):
    name = "rsyslogd"
    program = ("rsyslogd", "/usr/sbin/rsyslogd")
    ready_timeout = 20.0
    stop_timeout = 10.0

    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp)
        self.udp_port = free_port()
        self.tcp_port = free_port()
        self.socket_path = str(tmp / "log.sock")
        self.output = tmp / "messages.jsonl"
        self.conf = tmp / "rsyslog.conf"

    def _command(self) -> list[str]:
        self.conf.write_text(_config(self.tmp, self.udp_port, self.tcp_port))
        check = subprocess.run([self.binary, "-N1", "-f", str(self.conf)],
                               capture_output=True, timeout=30)
        assert check.returncode == 0, check.stderr.decode()
        return [self.binary, "-n", "-f", str(self.conf), "-i", str(self.tmp / "rsyslogd.pid")]

    def _ready(self) -> bool:
        if not os.path.exists(self.socket_path):
            return False
        try:
            with socket.create_connection(("127.0.0.1", self.tcp_port), timeout=0.5):
                pass
        except OSError:
            return False
        # imudp binds before the main loop: a marker through it proves it listens
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(b"<14>1 - - probe - - - ready", ("127.0.0.1", self.udp_port))
        time.sleep(0.05)
        return any(m.get("msg") == "ready" for m in self.messages())

    def messages(self) -> list[dict[str, Any]]:
        if not self.output.exists():
            return []
        out = []
        # rsyslogd may be writing the last line right now: only whole lines count
        for line in self.output.read_text(errors="replace").split("\n")[:-1]:
            if line.strip():
                out.append(json.loads(line))
        return out
